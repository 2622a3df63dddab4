"""Writing output files so that a crash never leaves a half-written file or a mix of two runs.

* :func:`write_atomic`: one file; its missing folders are made, the data goes to a temporary file
  in the same folder, is flushed to disk, and ``os.replace`` puts it in place.
* :func:`write_folder`: a whole set of files (Gradescope results, variants), written into a new
  sibling folder with a manifest (``run.json``: run id, time, every file with its SHA-256), then
  swapped with the old folder in one step (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two
  renames, with the previous folder kept aside until the new one is in place).  A reader sees the
  previous complete set or the new complete set, never a mix, whatever moment the run is killed.

A folder that exists and was not written by this module (it has files but no ``run.json``) is
refused, so that a mistyped ``-o`` never replaces someone's folder.  Every failure is an
:class:`OutputError`: one line naming the path (exit status 2).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from derive.core.errors import SpecError

MANIFEST = "run.json"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class OutputError(SpecError):
    """A target that cannot be written (one line for the user, exit 2); crosses the sandbox as a SpecError."""

    def __init__(self, message: str):
        super().__init__("", message)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path``: its missing folders are made, the text goes to a temporary file
    in the same folder, is flushed to disk, and ``os.replace`` puts it in place, so a reader sees the
    old file or the new one, never half.  Raises :class:`OutputError` when it cannot be written."""
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
            f.write(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode(path))      # mkstemp makes 0600; give the mode a plain open() would
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {err.strerror or err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def shown(name: str) -> str:
    """A file name as valid UTF-8: bytes that were not UTF-8 (surrogate escapes) become \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False when the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE) == 0


def _ours(folder: Path) -> bool:
    """An empty folder, or one holding a manifest this module wrote."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    return not entries or (folder / MANIFEST).is_file()


def check_folder(target: Path) -> None:
    """Raise :class:`OutputError` unless ``target`` can be replaced by :func:`write_folder`."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: exists and is not a folder")
    if target.is_dir() and not _ours(target):
        raise OutputError(f"{target}: folder exists, is not empty and has no {MANIFEST} from an earlier run; "
                          "give a new or empty folder")


def write_folder(target: Path, files: dict[str, str | bytes], command: str) -> dict:
    """Replace ``target`` by a folder holding ``files`` (relative path -> text) and a manifest.

    Returns the manifest.  Stale files of the previous run disappear with the old folder.
    """
    target = Path(target)
    check_folder(target)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{target}: cannot create the folder {parent}: {err.strerror or err}") from None
    run_id = uuid.uuid4().hex
    staging = parent / f".{target.name}.{run_id[:12]}.new"
    old = parent / f".{target.name}.{run_id[:12]}.old"
    try:
        staging.mkdir()
        listed = []
        for rel in sorted(files):
            dest = staging / rel
            if staging.resolve() not in dest.resolve().parents:
                raise OutputError(f"{rel}: not a path inside the output folder")
            dest.parent.mkdir(parents=True, exist_ok=True)
            body = files[rel]
            data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogateescape")
            with open(dest, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            listed.append({"path": shown(rel), "sha256": hashlib.sha256(data).hexdigest()})
        manifest = {"run_id": run_id, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "command": command, "files": listed}
        with open(staging / MANIFEST, "w", encoding="utf-8") as f:
            f.write(json.dumps(manifest, ensure_ascii=True, indent=2))
            f.flush()
            os.fsync(f.fileno())
        if target.exists():
            if not _exchange(staging, target):
                os.rename(target, old)
                os.rename(staging, target)
            else:
                os.rename(staging, old)     # after the exchange, staging holds the previous run
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, target)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"{target}: cannot write: {err.strerror or err}") from None
    except OutputError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def verify_folder(target: Path) -> bool:
    """The folder holds exactly the files of its manifest, with their recorded contents."""
    target = Path(target)
    try:
        manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    want = {f["path"]: f["sha256"] for f in manifest["files"]}
    have = {}
    for p in target.rglob("*"):
        if p.is_file() and p.name != MANIFEST:
            have[shown(str(p.relative_to(target)))] = _digest(p)
    return have == want


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
