"""Change marks: how a process knows that a session record it read earlier is still the stored one.

Every process keeps the records it read recently (see ``SessionStore.get``),
each with the *mark* its slot had just before the read. Every write through
the package changes the mark of the record's slot after the write is stored,
for every process of every host; so a record whose slot still shows the same
mark cannot have changed, and anything else is read again from the store.
Keys share slots (a fixed number of them): a write to one record only costs
its neighbours one extra read.
"""
from __future__ import annotations

import mmap
import os
import zlib
from pathlib import Path
from typing import Protocol

SLOTS = 8192  # power of two; 64 KiB of marks in the shared file


def slot_of(key: str) -> int:
    """The same slot in every process (``hash()`` of a str differs between processes)."""
    return zlib.crc32(key.encode()) & (SLOTS - 1)


class Marks(Protocol):
    def mark(self, key: str) -> int | None:
        """The current mark of ``key``'s slot; None when this process cannot know whether
        records changed (then nothing may be served from memory)."""

    def known(self, key: str) -> int | None:
        """``mark(key)`` when it can be told without waiting on anything (it never connects,
        so it may be asked on an event loop); else None."""

    def changed(self, key: str) -> None:
        """Called after a write of ``key`` is stored."""


class FileMarks:
    """Marks in a file beside the SQLite store, mapped into the memory of every worker on the
    host: reading a mark is one memory read, and a write of a mark is seen by every other
    process at once. A writer stores a fresh random value, never an increment, so two
    processes changing one slot at the same moment cannot leave it at a value some reader
    already holds."""

    def __init__(self, path: Path) -> None:
        size = SLOTS * 8
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                # Real pages now: a write to the map can never fault later on a full disk.
                os.posix_fallocate(fd, 0, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self._marks = memoryview(self._map).cast("Q")

    def mark(self, key: str) -> int:
        return self._marks[slot_of(key)]

    known = mark  # a memory read never waits

    def changed(self, key: str) -> None:
        self._marks[slot_of(key)] = int.from_bytes(os.urandom(8), "little")
