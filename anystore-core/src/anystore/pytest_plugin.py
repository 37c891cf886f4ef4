"""pytest plugin of the conformance kit (`pip install "anystore-core[testing]"`).

pytest loads it through the `pytest11` entry point, so a plugin author's test suite knows the
kit's markers without configuring them.
"""

from __future__ import annotations

from typing import Any


def pytest_configure(config: Any) -> None:
    """Register the markers the kit's tests use."""
    config.addinivalue_line("markers", "slow: moves 100 MB or more (deselect with -m 'not slow')")
