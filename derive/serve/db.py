"""The course's SQLite database (WAL mode): users, sessions, attempts.

An attempt is inserted (and committed, ``synchronous=FULL``) as ``pending`` before it is graded;
grading writes its result in a second transaction.  So a crash of the grader or of the server loses
no committed attempt, and :func:`Database.pending` lists the ones to grade again on restart.
Only token and session *hashes* are stored: a copy of the database signs nobody in.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('student', 'lecturer')),
    token_hash TEXT UNIQUE
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES users(id),
    problem TEXT NOT NULL,
    version TEXT NOT NULL,
    answers TEXT NOT NULL,
    created REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'graded')),
    result TEXT,
    score REAL,
    max_score REAL,
    graded REAL
);
CREATE INDEX IF NOT EXISTS attempts_by_user ON attempts(user_id, problem, id);
CREATE INDEX IF NOT EXISTS attempts_pending ON attempts(status) WHERE status = 'pending';
"""

SESSION_SECONDS = 14 * 24 * 3600


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class Database:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        with self._conn() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            c.row_factory = sqlite3.Row
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA foreign_keys=ON")
            self._local.conn = c
        return c

    def _tx(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            cur = c.execute(sql, args)
            c.execute("COMMIT")
            return cur
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, args).fetchall()

    # -- users and tokens
    def set_user(self, user_id: str, name: str, role: str) -> str:
        """Create or update a user with a fresh sign-in token (returned; only its hash is kept)."""
        token = secrets.token_urlsafe(24)
        self._tx("INSERT INTO users (id, name, role, token_hash) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT(id) DO UPDATE SET name = excluded.name, role = excluded.role, "
                 "token_hash = excluded.token_hash", (user_id, name, role, digest(token)))
        self._tx("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        return token

    def user_by_token(self, token: str) -> sqlite3.Row | None:
        rows = self._all("SELECT * FROM users WHERE token_hash = ?", (digest(token),))
        return rows[0] if rows else None

    def users(self, role: str = "student") -> list[sqlite3.Row]:
        return self._all("SELECT * FROM users WHERE role = ? ORDER BY id", (role,))

    # -- sessions
    def new_session(self, user_id: str) -> tuple[str, str]:
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._tx("DELETE FROM sessions WHERE created < ?", (time.time() - SESSION_SECONDS,))
        self._tx("INSERT INTO sessions (id_hash, user_id, csrf, created) VALUES (?, ?, ?, ?)",
                 (digest(sid), user_id, csrf, time.time()))
        return sid, csrf

    def session(self, sid: str) -> sqlite3.Row | None:
        rows = self._all("SELECT s.csrf, s.created, u.id, u.name, u.role FROM sessions s JOIN users u "
                         "ON u.id = s.user_id WHERE s.id_hash = ?", (digest(sid),))
        if not rows or time.time() - rows[0]["created"] > SESSION_SECONDS:
            return None
        return rows[0]

    def end_session(self, sid: str) -> None:
        self._tx("DELETE FROM sessions WHERE id_hash = ?", (digest(sid),))

    # -- attempts
    def add_attempt(self, user_id: str, problem: str, version: str, answers: dict) -> int:
        cur = self._tx("INSERT INTO attempts (user_id, problem, version, answers, created) VALUES (?, ?, ?, ?, ?)",
                       (user_id, problem, version, json.dumps(answers, ensure_ascii=False), time.time()))
        return int(cur.lastrowid)

    def recent_attempts(self, user_id: str, seconds: float) -> int:
        return self._all("SELECT COUNT(*) AS n FROM attempts WHERE user_id = ? AND created > ?",
                         (user_id, time.time() - seconds))[0]["n"]

    def set_result(self, attempt_id: int, result: dict) -> None:
        self._tx("UPDATE attempts SET status = 'graded', result = ?, score = ?, max_score = ?, graded = ? "
                 "WHERE id = ? AND status = 'pending'",
                 (json.dumps(result, ensure_ascii=False), result["score"], result["max_score"], time.time(),
                  attempt_id))

    def attempt(self, attempt_id: int) -> sqlite3.Row | None:
        rows = self._all("SELECT * FROM attempts WHERE id = ?", (attempt_id,))
        return rows[0] if rows else None

    def attempt_of(self, user_id: str, attempt_id: int) -> sqlite3.Row | None:
        """The attempt only when it is this user's own."""
        rows = self._all("SELECT * FROM attempts WHERE id = ? AND user_id = ?", (attempt_id, user_id))
        return rows[0] if rows else None

    def attempts_of(self, user_id: str, problem: str) -> list[sqlite3.Row]:
        return self._all("SELECT * FROM attempts WHERE user_id = ? AND problem = ? ORDER BY id DESC",
                         (user_id, problem))

    def pending(self) -> list[int]:
        return [r["id"] for r in self._all("SELECT id FROM attempts WHERE status = 'pending' ORDER BY id")]

    def latest_graded(self) -> list[sqlite3.Row]:
        """Each (student, problem)'s latest graded attempt."""
        return self._all("SELECT a.* FROM attempts a JOIN (SELECT user_id, problem, MAX(id) AS id FROM attempts "
                         "WHERE status = 'graded' GROUP BY user_id, problem) m ON a.id = m.id ORDER BY a.user_id")

    def counts(self) -> dict[str, tuple[int, int]]:
        """problem -> (attempts, students who tried)."""
        return {r["problem"]: (r["n"], r["s"]) for r in self._all(
            "SELECT problem, COUNT(*) AS n, COUNT(DISTINCT user_id) AS s FROM attempts GROUP BY problem")}
