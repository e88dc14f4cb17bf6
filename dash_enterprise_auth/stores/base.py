"""The server-side session store: a small template every backend fills in.

Records are JSON, never pickle. A backend raises SessionStoreUnavailable when
it cannot answer, so the guard fails closed with a clear 503 page.
"""
from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Hashable

from ..blocking import refuse_io
from ..identity import Identity
from .marks import Marks

log = logging.getLogger("dash_enterprise_auth")

RECENT_MAX = 2048  # records each process keeps in memory, per store (about 3 KB each)
FAILURE_COUNTS_MAX = 4096  # failure counters each process keeps in memory, per store (~200 bytes each)


def failures_mark_key(key: str) -> str:
    """The name a failure counter's writes change marks under: apart from every session key,
    which has no colon."""
    return "failures:" + key


def _keep(recent: OrderedDict, key: str, value: Any, most: int) -> None:
    """Remember ``value`` under ``key``, forgetting the oldest entries beyond ``most``."""
    recent[key] = value
    while len(recent) > most:
        try:
            recent.popitem(last=False)
        except KeyError:  # emptied by another thread meanwhile
            break


# Fields of a record that SessionStore.update may change; the rest is fixed at sign-in.
# ``identity`` changes when the connector's private data does (a renewed Kerberos ticket, a
# rotated refresh token) and when re-validation finds new groups (with ``validated_at``).
UPDATABLE = ("last_seen", "expires_at", "user_data", "identity", "validated_at")


def redact(url: str) -> str:
    """A store URL fit for messages and logs: the password (anything before ``@``) hidden."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}***@{rest.rsplit('@', 1)[1]}" if "@" in rest else url


@dataclass
class SessionRecord:
    """One signed-in session. ``key`` is a hash of the cookie's id, never the id."""

    key: str
    username: str
    identity: dict[str, Any]
    created_at: float
    last_seen: float
    expires_at: float
    user_data: dict[str, Any] = field(default_factory=dict)
    validated_at: float = None  # type: ignore[assignment]  # last time the provider said yes; None: created_at
    _identity: Identity | None = field(default=None, init=False, repr=False, compare=False)
    # The change mark of its slot just before it was read (None: unknown; see ``SessionStore.get``):
    # this copy is what the store holds for as long as the slot still shows that mark.
    read_mark: int | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.validated_at is None:  # a record from before re-validation existed
            self.validated_at = self.created_at

    def as_identity(self) -> Identity:
        """The stored identity as an :class:`Identity`, built once per parsed record."""
        if self._identity is None:
            self._identity = Identity.from_dict(self.identity)
        return self._identity

    def to_json(self) -> str:
        data = asdict(self)
        del data["_identity"], data["read_mark"]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "SessionRecord | None":
        """The record, or None when the stored bytes are not a record (corrupt = no session)."""
        try:
            data = json.loads(text)
            return cls(
                key=str(data["key"]),
                username=str(data["username"]),
                identity=dict(data["identity"]),
                created_at=float(data["created_at"]),
                last_seen=float(data["last_seen"]),
                expires_at=float(data["expires_at"]),
                user_data=dict(data.get("user_data") or {}),
                validated_at=float(data.get("validated_at") or data["created_at"]),
            )
        except (ValueError, TypeError, KeyError):
            return None

    def copy(self) -> "SessionRecord":
        """A shallow copy (several times cheaper than ``copy.copy``): its fields may be reassigned,
        the identity and user data inside are shared and read-only."""
        fresh = object.__new__(SessionRecord)
        fresh.__dict__.update(self.__dict__)
        return fresh

    @property
    def logout_ids(self) -> list[str]:
        """The index entries of this session (see ``Identity.logout_ids``)."""
        return [str(i) for i in self.identity.get("logout_ids") or ()]

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


class SessionStore(ABC):
    """Where session records and sign-in failure counters live, shared by all workers.

    A store whose writes change :class:`~.marks.Marks` (``self.marks``, set by the
    subclass) lets every process answer most :meth:`get` calls from memory: a record read
    before is served again only while no write has touched its slot since (failure counters
    too). A subclass calls :meth:`_changed` after each stored write of a session record or
    a counter.
    """

    def __init__(self, marks: Marks | None = None) -> None:
        self.marks = marks
        # key -> (mark when read, stored form, record); -1: read while marks were unknown
        self._recent: OrderedDict[str, tuple[int, Hashable, SessionRecord]] = OrderedDict()
        # failure counter key -> (mark when read, count, end of its window)
        self._recent_failures: OrderedDict[str, tuple[int, int, float]] = OrderedDict()

    def get(self, key: str) -> SessionRecord | None:
        """The live record, or None (missing, expired or unreadable)."""
        marks = self.marks
        mark = marks.mark(key) if marks is not None else None  # taken before the read, never after
        known = self._recent.get(key)
        if mark is not None and known is not None and known[0] == mark:
            record = known[2]
        else:
            refuse_io("reading a session record")
            stored = self._read(key)
            if stored is None:
                return None
            # Unchanged bytes (a neighbour in the slot changed, or the channel is down): no parse.
            record = known[2] if known is not None and known[1] == stored else self._parse(stored)
            if record is None or record.key != key:
                log.warning("dash-enterprise-auth: unreadable session record %s… dropped", key[:8])
                self.delete(key)
                return None
            record.as_identity()  # built once, shared by every copy
            self._remember(key, -1 if mark is None else mark, stored, record)
        if record.expires_at <= time.time():
            return None
        fresh = record.copy()
        fresh.read_mark = mark
        return fresh

    def _remember(self, key: str, mark: int, stored: Hashable, record: SessionRecord) -> None:
        _keep(self._recent, key, (mark, stored, record), RECENT_MAX)

    def failures(self, key: str) -> tuple[int, float]:
        """The count under ``key`` and when its window ends ((0, 0.0) when none).

        Served from memory while no write touched the counter, as records are: a script
        that sends its password on every request (HTTP Basic) has its throttle checked
        without a read, and on an event loop."""
        marks = self.marks
        mark = marks.mark(failures_mark_key(key)) if marks is not None else None  # before the read
        known = self._recent_failures.get(key)
        if mark is not None and known is not None and known[0] == mark:
            count, window_end = known[1], known[2]
        else:
            refuse_io("reading sign-in failures")
            count, window_end = self._read_failures(key)
            if mark is not None:
                _keep(self._recent_failures, key, (mark, count, window_end), FAILURE_COUNTS_MAX)
        if window_end <= time.time():
            return 0, 0.0
        return count, window_end

    def _changed(self, *keys: str) -> None:
        """After a write of these records is stored: every process reads them again."""
        if self.marks is not None:
            for key in keys:
                self.marks.changed(key)

    @abstractmethod
    def _read(self, key: str) -> Hashable | None:
        """The record's stored form as it is now (anything hashable), or None when there is no
        live record."""

    @abstractmethod
    def _parse(self, stored: Hashable) -> SessionRecord | None:
        """The record in a stored form, or None when it is not one (corrupt = no session)."""

    @abstractmethod
    def put(self, record: SessionRecord) -> None:
        """Create or replace the record; it disappears by itself at ``expires_at``."""

    @abstractmethod
    def update(self, key: str, changes: dict[str, Any], if_validated_at: float | None = None) -> bool:
        """Change some of the ``UPDATABLE`` fields of a live record in one atomic step,
        leaving the rest as stored; False when the record is gone.

        Requests of one session run at once on many workers: a request that
        refreshes the idle timer must not write back user data it read
        before another request changed it. With ``if_validated_at``, a compare-and-set:
        the change is made only if the record's ``validated_at`` is still that value (else
        False), so a re-validation never overwrites another's rotated refresh token.
        """

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def delete_user(self, username: str) -> int:
        """End every session of ``username``; returns how many."""

    @abstractmethod
    def delete_by_logout_id(self, logout_id: str) -> int:
        """End every session whose identity carries ``logout_id`` (the provider ended that
        sign-in); returns how many."""

    @abstractmethod
    def list_sessions(self, username: str | None = None) -> list[SessionRecord]: ...

    @abstractmethod
    def purge_expired(self) -> int:
        """Drop expired records and counters; returns how many records went."""

    @abstractmethod
    def add_failure(self, key: str, window: int) -> int:
        """Count one failure under ``key`` in a window of ``window`` seconds; the new count."""

    @abstractmethod
    def _read_failures(self, key: str) -> tuple[int, float]:
        """The count under ``key`` and when its window ends, as stored now (0, 0.0 when none).
        Writes of counters call :meth:`_changed` with :func:`failures_mark_key`."""

    @abstractmethod
    def clear_failures(self, key: str) -> None: ...

    @abstractmethod
    def put_pending(self, key: str, value: dict[str, Any], ttl: int) -> None:
        """Keep a sign-in round trip's state for ``ttl`` seconds."""

    @abstractmethod
    def take_pending(self, key: str) -> dict[str, Any] | None:
        """Read and delete in one step, so a second take of the same key gets None."""

    @abstractmethod
    def remember_once(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; False when it was already recorded (atomic, across
        workers and hosts): the replay cache of one-time identifiers such as SAML assertion ids."""

    @abstractmethod
    def ping(self) -> None:
        """Raise SessionStoreUnavailable when the store does not answer."""

    def close(self) -> None:
        """Release connections (tests and the CLI)."""
