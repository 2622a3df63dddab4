"""Which variant each student gets: an HMAC of the student id under a secret course key.

A seed is no secret (it is small, and it used to be printed on every variant), so a student who
knows it can compute every variant and hand in whichever key they like.  With a roster the
variant of a student is ``HMAC-SHA256(course key, student id)`` modulo the number of variants:
without the key nobody can tell which variant belongs to whom, and ``check --roster`` grades each
file against the variant of its student id, whatever variant the file names.

The key is read from ``--course-key FILE`` or the ``NNDERIVE_COURSE_KEY`` environment variable, and
is never written anywhere by nnderive.  The roster is a CSV file with a ``student_id`` column.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
from pathlib import Path

from derive.core.errors import SpecError

KEY_ENV = "NNDERIVE_COURSE_KEY"
MIN_KEY = 16
MAX_ROSTER_BYTES = 4_000_000
MAX_STUDENTS = 100_000
ID_COLUMNS = ("student_id", "id")


def course_key(path: str | None) -> bytes:
    """The secret key: the contents of ``path``, else ``$NNDERIVE_COURSE_KEY``; at least 16 bytes."""
    if path:
        try:
            key = Path(path).read_bytes().strip()
        except OSError as err:
            raise SpecError("--course-key", f"{path}: cannot read: {err.strerror or err}") from None
    else:
        key = os.environ.get(KEY_ENV, "").strip().encode("utf-8", "surrogateescape")
        if not key:
            raise SpecError("--course-key", f"a roster needs the course key: give --course-key FILE or set {KEY_ENV}")
    if len(key) < MIN_KEY:
        raise SpecError("--course-key", f"the course key must be at least {MIN_KEY} bytes (a long random string, "
                                        "e.g. from 'openssl rand -hex 32')")
    return key


def read_roster(path: str) -> list[str]:
    """The student ids of a roster CSV (column ``student_id`` or ``id``), each once."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise SpecError("--roster", f"{path}: cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_ROSTER_BYTES:
        raise SpecError("--roster", f"{path}: larger than {MAX_ROSTER_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SpecError("--roster", f"{path}: not UTF-8 text") from None
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as err:
        raise SpecError("--roster", f"{path}: not a CSV file ({err})") from None
    fields = [f.strip().lower() for f in (rows[0].keys() if rows else [])] if rows else []
    column = next((c for c in ID_COLUMNS if c in fields), None)
    if column is None:
        raise SpecError("--roster", f"{path}: expected a header row with a 'student_id' column")
    ids: list[str] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, start=2):
        value = {(k or "").strip().lower(): (v or "") for k, v in row.items()}[column].strip()
        if not value:
            raise SpecError("--roster", f"{path}: line {n}: empty student id")
        if value in seen:
            raise SpecError("--roster", f"{path}: line {n}: student id {value!r} listed twice")
        seen.add(value)
        ids.append(value)
    if not ids or len(ids) > MAX_STUDENTS:
        raise SpecError("--roster", f"{path}: expected 1 to {MAX_STUDENTS} students, got {len(ids)}")
    return ids


def variant_of(key: bytes, student_id: str, count: int) -> int:
    """The variant number (1 to ``count``) of a student: HMAC-SHA256 of the id, modulo ``count``."""
    digest = hmac.new(key, b"nnderive variant\0" + student_id.strip().encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def variant_name(k: int, count: int) -> str:
    return f"variant_{k:0{max(3, len(str(count)))}d}"
