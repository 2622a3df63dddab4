"""The slides' worked examples as spec files, one TOML file each (see docs/examples.md)."""
from __future__ import annotations

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent


def names() -> list[str]:
    """Names of the bundled examples, in catalogue order."""
    return sorted(p.stem for p in DIRECTORY.glob("*.toml"))


def path(name: str) -> Path:
    """The file of a bundled example."""
    p = DIRECTORY / f"{name}.toml"
    if not p.is_file():
        raise KeyError(name)
    return p


def resolve(arg: str) -> Path:
    """A spec path as given, or the file of the bundled example of that name."""
    p = Path(arg)
    if p.suffix.lower() in (".toml", ".json") or p.exists():
        return p
    return path(arg)
