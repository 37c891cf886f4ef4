"""The type-checked README idioms also run (mypy and pyright check them in .ci/run)."""

from tests.typing.readme_examples import main


def test_readme_idioms_run() -> None:
    main()
