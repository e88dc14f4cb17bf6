"""Credentials the basic connector has verified recently, so a script sending HTTP Basic
on every request pays for Argon2id once, not 50-100 ms of a worker's CPU per request.

Why it cannot accept a stale password: an entry is found only under the MAC of the users
file's version (device, inode, size, mtime, ctime), the user's stored hash, the username and
the password, looked up with the hash the file holds now. Argon2id's answer depends only on
the hash and the password, so a hit means this password matches the current hash; and any
edit of the file (a changed password, a removed user, changed groups) gives a new version,
so every entry made before it stops matching and the next request is verified in full. The
identity (groups, name) is built from the file's current entry, never from the cache. Only
successes are stored (a wrong password is always verified in full, behind the throttle),
entries expire ``TTL`` seconds after their verification and there are at most
``MAX_ENTRIES`` (the oldest go first).

Why no password can be read from it: the keys are keyed BLAKE2b digests (a MAC) under a
random key made per process and never stored; the values are expiry times.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from typing import Callable

MAX_ENTRIES = 1024
TTL = 300.0  # seconds an entry is trusted after its full verification

Credentials = tuple[tuple[int, ...], str, str, str]  # (users file version, stored hash, username, password)


class VerifiedCredentials:
    """A bounded set of (file version, stored hash, username, password) that passed Argon2id."""

    def __init__(self, max_entries: int = MAX_ENTRIES, ttl: float = TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, float] = OrderedDict()  # digest -> expiry (clock time)
        self._lock = threading.Lock()

    def _digest(self, credentials: Credentials) -> bytes:
        # The repr of a tuple of strings and numbers tells every such tuple apart (strings come
        # quoted and escaped, lone surrogates too). BLAKE2b with a key is a MAC in one call.
        return hashlib.blake2b(repr(credentials).encode(), key=self._key, digest_size=32).digest()

    def __contains__(self, credentials: Credentials) -> bool:
        expiry = self._entries.get(self._digest(credentials))  # one atomic read: no lock
        return expiry is not None and expiry > self._clock()

    def add(self, credentials: Credentials) -> None:
        """Record credentials that have just passed the full verification."""
        digest = self._digest(credentials)
        with self._lock:
            now = self._clock()
            entries = self._entries
            entries[digest] = now + self.ttl
            entries.move_to_end(digest)  # oldest first: in the order they expire
            while entries and (len(entries) > self.max_entries or next(iter(entries.values())) <= now):
                entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
