"""`Stats` built on the hot path without validation is the same model a validated one is."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from anystore.stats import Stats, guess_mimetype


def test_trusted_stats_equal_validated_ones() -> None:
    now = datetime.now(timezone.utc)
    values = dict(
        key="a/b.json",
        store="memory://x",
        size=3,
        created_at=now,
        updated_at=now,
        mimetype="application/json",
        uri="memory://x/a/b.json",
        expires_at=None,
    )
    trusted, validated = Stats.trusted(**values), Stats(**values)  # type: ignore[arg-type]
    assert trusted == validated and hash(trusted) == hash(validated)
    assert trusted.model_dump() == validated.model_dump()
    assert trusted.model_dump_json() == validated.model_dump_json()
    assert trusted.model_copy(update={"size": 4}).size == 4
    with pytest.raises(ValidationError):
        trusted.size = 5  # frozen, like the validated model


@pytest.mark.parametrize(
    ("key", "mimetype"),
    [
        ("a/b.json", "application/json"),
        ("x.CSV", "text/csv"),
        ("archive.tar.gz", "application/x-tar"),
        ("no-extension", "application/octet-stream"),
        ("dir.d/file", "application/octet-stream"),
        (".hidden", "application/octet-stream"),
    ],
)
def test_mimetype_guess_by_extension(key: str, mimetype: str) -> None:
    assert guess_mimetype(key) == mimetype
