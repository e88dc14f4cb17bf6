"""SQLite session store: one file, shared by every worker on a host, survives restarts.

WAL mode lets readers run while one worker writes; each thread of each
process has its own connection (a connection never crosses a fork).
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from ..blocking import refuse_io
from ..errors import ConfigurationError, SessionStoreUnavailable
from .base import UPDATABLE, SessionRecord, SessionStore, failures_mark_key
from .marks import FileMarks


SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    key TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    expires_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_username ON sessions (username);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
CREATE TABLE IF NOT EXISTS logout_ids (
    logout_id TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (logout_id, key)
);
CREATE TABLE IF NOT EXISTS pending (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    window_end REAL NOT NULL
);
"""


START_UP_WAIT = 10.0  # seconds a new store waits for other workers creating the same file


class SQLiteStore(SessionStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            self._create_schema()
            super().__init__(FileMarks(self.path.with_name(self.path.name + "-marks")))
        except (OSError, SessionStoreUnavailable) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else exc.log_detail
            raise ConfigurationError(
                f"DASH_AUTH_SESSION_STORE=sqlite:///{self.path} cannot be used: {reason}; "
                "point it at a writable file on a local disk"
            ) from None

    def _create_schema(self) -> None:
        """WAL mode and the tables. Workers of one server start at the same moment, and SQLite
        answers "database is locked" to all but one of them switching a new file to WAL without
        waiting (its busy timeout does not cover that): so a locked start-up is tried again for a
        few seconds, on a fresh connection, before it counts as an unusable store."""
        deadline = time.monotonic() + START_UP_WAIT
        while True:
            try:
                with self._run() as db:
                    db.executescript(SCHEMA)
                return
            except SessionStoreUnavailable as exc:
                if "locked" not in exc.log_detail or time.monotonic() >= deadline:
                    raise
                self.close()
                time.sleep(0.02)

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _run(self) -> "_Guarded":
        return _Guarded(self)

    def _read(self, key: str) -> str | None:
        with self._run() as db:
            row = db.execute("SELECT body, expires_at FROM sessions WHERE key = ?", (key,)).fetchone()
        return row[0] if row is not None and row[1] > time.time() else None

    def _parse(self, stored: str) -> SessionRecord | None:  # type: ignore[override]
        return SessionRecord.from_json(stored)

    def put(self, record: SessionRecord) -> None:
        with self._run() as db:
            db.execute(
                "INSERT OR REPLACE INTO sessions (key, username, expires_at, body) VALUES (?, ?, ?, ?)",
                (record.key, record.username, record.expires_at, record.to_json()),
            )
            if record.logout_ids:
                db.executemany("INSERT OR IGNORE INTO logout_ids (logout_id, key) VALUES (?, ?)",
                               [(logout_id, record.key) for logout_id in record.logout_ids])
        self._changed(record.key)

    def update(self, key: str, changes: dict, if_validated_at: float | None = None) -> bool:
        paths, args = [], []
        for name in UPDATABLE:
            if name in changes:
                paths.append(f"'$.{name}', json(?)")
                args.append(json.dumps(changes[name], separators=(",", ":")))
        if not paths:
            return True
        expires = ", expires_at = ?" if "expires_at" in changes else ""
        extra = [changes["expires_at"]] if expires else []
        compare, expected = "", []
        if if_validated_at is not None:
            compare = (" AND coalesce(json_extract(body, '$.validated_at'), json_extract(body, '$.created_at'))"
                       " = ?")
            expected = [if_validated_at]
        with self._run() as db:
            cursor = db.execute(
                f"UPDATE sessions SET body = json_set(body, {', '.join(paths)}){expires} "
                f"WHERE key = ? AND expires_at > ?{compare}",
                (*args, *extra, key, time.time(), *expected),
            )
        self._changed(key)
        return cursor.rowcount == 1

    def delete(self, key: str) -> None:
        with self._run() as db:
            db.execute("DELETE FROM sessions WHERE key = ?", (key,))
        self._changed(key)

    def delete_user(self, username: str) -> int:
        with self._run() as db:
            keys = [row[0] for row in db.execute("DELETE FROM sessions WHERE username = ? RETURNING key",
                                                 (username,)).fetchall()]
        self._changed(*keys)
        return len(keys)

    def delete_by_logout_id(self, logout_id: str) -> int:
        with self._run() as db:
            keys = [row[0] for row in db.execute(
                "DELETE FROM sessions WHERE key IN (SELECT key FROM logout_ids WHERE logout_id = ?) RETURNING key",
                (logout_id,)).fetchall()]
            db.execute("DELETE FROM logout_ids WHERE logout_id = ?", (logout_id,))
        self._changed(*keys)
        return len(keys)

    def list_sessions(self, username: str | None = None) -> list[SessionRecord]:
        query = "SELECT body FROM sessions WHERE expires_at > ?"
        args: tuple = (time.time(),)
        if username is not None:
            query, args = query + " AND username = ?", args + (username,)
        with self._run() as db:
            rows = db.execute(query + " ORDER BY username", args).fetchall()
        return [r for r in (SessionRecord.from_json(row[0]) for row in rows) if r is not None]

    def purge_expired(self) -> int:
        now = time.time()
        with self._run() as db:
            db.execute("DELETE FROM failures WHERE window_end <= ?", (now,))
            db.execute("DELETE FROM pending WHERE expires_at <= ?", (now,))
            count = db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,)).rowcount
            db.execute("DELETE FROM logout_ids WHERE key NOT IN (SELECT key FROM sessions)")
            return count

    def add_failure(self, key: str, window: int) -> int:
        now = time.time()
        with self._run() as db:
            row = db.execute(
                """INSERT INTO failures (key, count, window_end) VALUES (?, 1, ?)
                   ON CONFLICT (key) DO UPDATE SET
                     count = CASE WHEN window_end <= ? THEN 1 ELSE count + 1 END,
                     window_end = CASE WHEN window_end <= ? THEN excluded.window_end ELSE window_end END
                   RETURNING count""",
                (key, now + window, now, now),
            ).fetchone()
        self._changed(failures_mark_key(key))
        return int(row[0])

    def _read_failures(self, key: str) -> tuple[int, float]:
        with self._run() as db:
            row = db.execute("SELECT count, window_end FROM failures WHERE key = ?", (key,)).fetchone()
        if row is None or row[1] <= time.time():
            return 0, 0.0
        return int(row[0]), float(row[1])

    def clear_failures(self, key: str) -> None:
        with self._run() as db:
            db.execute("DELETE FROM failures WHERE key = ?", (key,))
        self._changed(failures_mark_key(key))

    def put_pending(self, key: str, value: dict, ttl: int) -> None:
        with self._run() as db:
            db.execute("INSERT OR REPLACE INTO pending (key, expires_at, body) VALUES (?, ?, ?)",
                       (key, time.time() + ttl, json.dumps(value, separators=(",", ":"))))

    def take_pending(self, key: str) -> dict | None:
        with self._run() as db:
            row = db.execute("DELETE FROM pending WHERE key = ? RETURNING body, expires_at", (key,)).fetchone()
        if row is None or row[1] <= time.time():
            return None
        try:
            value = json.loads(row[0])
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def remember_once(self, key: str, ttl: float) -> bool:
        now, key = time.time(), "once:" + key
        with self._run() as db:
            db.execute("DELETE FROM pending WHERE key = ? AND expires_at <= ?", (key, now))
            cursor = db.execute("INSERT OR IGNORE INTO pending (key, expires_at, body) VALUES (?, ?, 'null')",
                                (key, now + ttl))
        return cursor.rowcount == 1

    def ping(self) -> None:
        with self._run() as db:
            db.execute("SELECT 1 FROM sessions LIMIT 1").fetchall()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _Guarded:
    """Turns any SQLite failure (locked, disk full, read-only) into SessionStoreUnavailable."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        refuse_io("the SQLite session store")
        try:
            return self.store._connection()
        except sqlite3.Error as exc:
            raise SessionStoreUnavailable(log_detail=f"session store {self.store.path}: {exc}") from None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and issubclass(exc_type, sqlite3.Error):
            raise SessionStoreUnavailable(log_detail=f"session store {self.store.path}: {exc}") from None
