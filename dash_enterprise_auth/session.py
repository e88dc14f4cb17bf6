"""The session layer: an identity becomes a signed cookie and a server-side record.

The cookie holds only a random id signed with itsdangerous; the store keys
records by a SHA-256 of that id, so a leaked store cannot be replayed as
cookies. A new id is issued at every sign-in (no fixation). Logout deletes
the record, so a copied cookie stops working everywhere at once.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, Signer

from .blocking import refuse_io
from .identity import Identity
from .errors import SessionEnded
from .settings import Secret
from .stores import SessionRecord, SessionStore

COOKIE_NAME = "dash-auth-session"
SECURE_COOKIE_NAME = "__Host-dash-auth-session"  # the browser refuses it unless Secure, Path=/
MAX_COOKIE_LENGTH = 256  # a real cookie is ~90 characters; anything longer is refused unread
PURGE_EVERY = 300  # seconds between cheap sweeps of expired records, per process
VERIFIED_MAX = 4096  # cookie values whose signature this process has already checked


@dataclass(frozen=True)
class Timeouts:
    idle: int  # seconds without a request before the session ends
    max_age: int  # seconds after sign-in when the session ends regardless

    @property
    def touch_every(self) -> float:
        """How stale ``last_seen`` may get before a request writes it: at most 60 s,
        so the idle timeout is honoured to within a minute without a write per request."""
        return min(60.0, self.idle / 10)


class SessionLayer:
    def __init__(self, store: SessionStore, secret_key: Secret, timeouts: Timeouts) -> None:
        self.store = store
        self.timeouts = timeouts
        # No timestamp in the cookie: expiry is the record's business, decided server-side.
        self._signer = Signer(secret_key.reveal(), salt="dash-enterprise-auth.session")
        self._next_purge = 0.0
        self._verified: dict[str, str] = {}  # exact cookie value -> record key

    @staticmethod
    def record_key(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    def start(self, identity: Identity) -> tuple[str, SessionRecord]:
        """A fresh session for ``identity``: the cookie value and the stored record."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        record = SessionRecord(
            key=self.record_key(session_id),
            username=identity.username,
            identity=identity.to_dict(),
            created_at=now,
            last_seen=now,
            expires_at=min(now + self.timeouts.idle, now + self.timeouts.max_age),
        )
        self.store.put(record)
        self._purge_now_and_then(now)
        return self._signer.sign(session_id).decode(), record

    def resume(self, cookie_value: str | None) -> SessionRecord | None:
        """The live record behind a cookie, or None for a missing, forged, expired or
        ended session. Refreshes the idle timer at most once a minute."""
        key = self._record_key_of(cookie_value)
        if key is None:
            return None
        record = self.store.get(key)
        if record is None:
            return None
        now = time.time()
        if now - record.last_seen >= self.timeouts.touch_every:
            refuse_io("refreshing the idle timer")
            record.last_seen = now
            record.expires_at = min(now + self.timeouts.idle, record.created_at + self.timeouts.max_age)
            if not self.store.update(record.key, {"last_seen": now, "expires_at": record.expires_at}):
                return None  # ended by another request meanwhile
            self._purge_now_and_then(now)
        return record

    def _record_key_of(self, cookie_value: str | None) -> str | None:
        """The record key named by a validly signed cookie, else None.

        A cookie value seen before skips the HMAC check: the exact same string
        was verified already. Whether its session still exists is always
        asked of the store, so logout elsewhere takes effect at once.
        """
        if not cookie_value or len(cookie_value) > MAX_COOKIE_LENGTH:
            return None
        key = self._verified.get(cookie_value)
        if key is None:
            try:
                session_id = self._signer.unsign(cookie_value).decode()
            except (BadSignature, UnicodeDecodeError):
                return None
            key = self.record_key(session_id)
            if len(self._verified) >= VERIFIED_MAX:
                self._verified.clear()
            self._verified[cookie_value] = key
        return key

    def end(self, record: SessionRecord) -> None:
        self.store.delete(record.key)

    def replace_identity(self, record: SessionRecord, identity: Identity) -> bool:
        """Store a changed identity (a renewed ticket in its private part); False when the
        session has ended meanwhile, or was re-validated since ``record`` was read (the stored
        identity may hold a rotated refresh token that this one would overwrite)."""
        if not self.store.update(record.key, {"identity": identity.to_dict()}, if_validated_at=record.validated_at):
            return False
        record.identity = identity.to_dict()
        record._identity = identity
        return True

    def mark_validated(self, record: SessionRecord, identity: Identity, now: float) -> bool:
        """Store the identity the provider has just confirmed, and when, if nobody else did since
        ``record`` was read (a compare-and-set on ``validated_at``: a rotated refresh token is
        never overwritten by an older one). False when another request did, or the session ended."""
        if not self.store.update(record.key, {"identity": identity.to_dict(), "validated_at": now},
                                 if_validated_at=record.validated_at):
            return False
        record.identity = identity.to_dict()
        record._identity = identity
        record.validated_at = now
        return True

    def save_user_data(self, record: SessionRecord, data: dict[str, Any]) -> None:
        """Replace the record's custom data, and nothing else of it; SessionEnded when the
        session has ended meanwhile, so a write is never reported done when it is not."""
        if not self.store.update(record.key, {"user_data": data}):
            raise SessionEnded(log_detail="the session has ended (signed out or expired); the data was not saved")
        record.user_data = data

    def _purge_now_and_then(self, now: float) -> None:
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY
            self.store.purge_expired()
