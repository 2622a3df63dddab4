"""Writing output files: the folders are created, and the write is atomic."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputError(OSError):
    """An output file that cannot be written, as one line naming it."""


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path``: its missing folders are made, the text goes to a temporary file
    in the same folder, and ``os.replace`` puts it in place, so a reader sees the old file or the
    new one, never half.  Raises :class:`OutputError` (one line) when the path cannot be written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path}: cannot create the folder {path.parent}: {err.strerror or err}") from None
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, not a file")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise OutputError(f"{path}: cannot write in {path.parent}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, _mode(path))      # mkstemp makes 0600; give the mode a plain open() would
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {err.strerror or err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
