"""Processes creating the tables of a new store at once: the loser of the race never gives up on
a half-made schema (it saw the value table made and the chunk table not yet)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, create_engine, inspect
from sqlalchemy.exc import OperationalError

from anystore_sql.schema import ensure_tables, make_tables


def test_losing_the_create_race_waits_for_the_other_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'race.db'}")
    table, chunks = make_tables("t_race")
    real_create_all = MetaData.create_all
    calls: list[int] = []

    def another_process_won(self: MetaData, bind: Any, tables: Any = None, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            # The winner has made the value table, not yet the chunk table; this process's
            # CREATE TABLE for the value table fails as it does on a real race.
            real_create_all(self, bind, tables=[table])
            raise OperationalError("CREATE TABLE t_race", {}, Exception("table already exists"))
        real_create_all(self, bind, tables=tables, **kwargs)

    monkeypatch.setattr(MetaData, "create_all", another_process_won)
    ensure_tables(engine, table, chunks)
    assert len(calls) == 2
    inspector = inspect(engine)
    assert inspector.has_table(table.name) and inspector.has_table(chunks.name)
    engine.dispose()


def test_a_create_that_keeps_failing_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'broken.db'}")
    table, chunks = make_tables("t_broken")

    def always_fails(self: MetaData, bind: Any, tables: Any = None, **kwargs: Any) -> None:
        raise OperationalError("CREATE TABLE t_broken", {}, Exception("disk I/O error"))

    monkeypatch.setattr(MetaData, "create_all", always_fails)
    with pytest.raises(OperationalError, match="disk I/O error"):
        ensure_tables(engine, table, chunks)
    engine.dispose()
