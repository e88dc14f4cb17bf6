"""Change marks for the Redis store: an invalidation channel every write publishes to.

Each process holds one subscribed connection and, before any record is served
from memory, reads what has arrived on it (a non-blocking ``poll`` of the
socket, one system call; redis-py's own check costs several, and an
exception, on every request). Marks are per process: a message about a key
moves its slot's mark.

Messages arrive a little after the write, so the channel alone cannot say
"nothing changed up to now". It can say "nothing changed up to T": Redis
answers a PING on the channel after every message published before it, so
once the answer to a PING sent at T has been read, so has every write made
before T. The process PINGs every ``PING_EVERY`` seconds while it serves, and
serves records from memory only while T is at most ``LIVE_FOR`` seconds old:
a write is seen by every worker within that bound, usually within
microseconds. Otherwise every read goes to Redis, as without the channel:
until the subscription is confirmed, after any error on it (the
subscription is then made again and every mark moves, since messages may
have been lost), when a worker has been idle (its first request after the
pause reads Redis and PINGs), and when Redis stops answering (a frozen
server, a backlog of messages, a connection that silently died).

Subscribing may wait (up to the socket timeout on a frozen server), so it is
never done on an event loop, and a loop never waits for a thread that holds
the channel while subscribing: the loop's read is then "not known".
"""
from __future__ import annotations

import os
import select
import threading
import time
from collections import deque

import redis
from redis.exceptions import RedisError

from ..blocking import refuse_io
from .marks import SLOTS, slot_of

CHANNEL = "dash-auth:changed"
PING_EVERY = 0.01  # seconds between the channel's PINGs while the process is serving
# A record is served from memory only while every message published up to this many seconds
# ago has been read (a PING sent then has been answered): the most a write can go unseen.
LIVE_FOR = 0.05
RETRY_EVERY = 1.0  # seconds between attempts to subscribe again after a failure

_forks = 0  # forks this process has come from: a connection made before one belongs to the parent


def _count_fork() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_count_fork)  # (a global read per request, not a getpid call)


class ChannelMarks:
    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._lock = threading.Lock()
        self._marks = [0] * SLOTS
        self._conn: redis.connection.AbstractConnection | None = None
        self._readable = select.poll()  # the subscribed connection's socket, once connected
        self._forks = -1  # the value of _forks when subscribed
        self._alive_at = 0.0  # the channel surely worked at this monotonic time (a PING sent then was answered)
        self._asked: deque[float] = deque()  # when the PINGs (and the SUBSCRIBE) not yet answered were sent
        self._pinged = 0.0
        self._next_try = 0.0

    def mark(self, key: str) -> int | None:
        if not self._lock.acquire(blocking=False):
            refuse_io("waiting for the change channel")  # its holder may be connecting it
            self._lock.acquire()
        try:
            if not self._read_channel(time.monotonic()):
                return None
            return self._marks[slot_of(key)]
        finally:
            self._lock.release()

    def known(self, key: str) -> int | None:
        if not self._lock.acquire(blocking=False):  # its holder may be connecting it
            return None
        try:
            if not self._read_channel(time.monotonic(), may_connect=False):
                return None
            return self._marks[slot_of(key)]
        finally:
            self._lock.release()

    def changed(self, key: str) -> None:
        with self._lock:  # this process's own message is on its way; this process knows already
            self._marks[slot_of(key)] += 1

    def close(self) -> None:
        with self._lock:
            self._drop(time.monotonic())

    def _read_channel(self, now: float, may_connect: bool = True) -> bool:
        """Apply what the channel brought; whether it is known to work right now."""
        if self._conn is None or self._forks != _forks:
            if not may_connect or (now < self._next_try and self._forks == _forks):
                return False
            refuse_io("subscribing to the change channel")  # connecting may wait: never on an event loop
            self._subscribe(now)
            return False  # confirmed by the next read, not this one
        try:
            # After the loop below, redis-py holds no whole reply unread: a new one needs new bytes.
            if self._readable.poll(0):
                while self._conn.can_read(timeout=0):
                    self._apply(self._conn.read_response())
            if now - self._pinged >= PING_EVERY:
                self._conn.send_command("PING")
                self._asked.append(now)
                self._pinged = now
        except (RedisError, OSError, ValueError, IndexError):
            self._drop(now)
            return False
        return now - self._alive_at < LIVE_FOR

    def _apply(self, message: list) -> None:
        kind = message[0]
        if kind == b"message":
            self._marks[slot_of(message[2].decode("latin-1"))] += 1
            return
        # The answer to our SUBSCRIBE or to a PING: every message published before it was asked is read.
        self._alive_at = self._asked.popleft()
        if kind == b"subscribe":  # what was published before is unknown here: move every mark once
            self._marks = [m + 1 for m in self._marks]

    def _subscribe(self, now: float) -> None:
        self._forks = _forks  # a connection inherited over fork belongs to the parent: never used
        # RESP2, where messages and PING answers are plain replies (RESP3 makes them pushes).
        self._conn = self._pool.connection_class(**{**self._pool.connection_kwargs, "protocol": 2})
        try:
            self._conn.connect()
            self._readable = select.poll()
            self._readable.register(self._conn._sock, select.POLLIN)  # redis-py has no public accessor
            self._conn.send_command("SUBSCRIBE", CHANNEL)
            self._asked = deque([now])
            self._pinged = now
        except (RedisError, OSError):
            self._drop(now)

    def _drop(self, now: float) -> None:
        if self._conn is not None and self._forks == _forks:
            try:
                self._conn.disconnect()
            except (RedisError, OSError):
                pass
        self._conn = None
        self._alive_at = 0.0
        self._asked.clear()
        self._next_try = now + RETRY_EVERY
