"""Redis session store, for apps served by several hosts.

Every record is one hash with Redis's own expiry, so nothing needs purging;
its fields can be changed one by one, so a request refreshing the idle timer
never writes back user data another request has just changed;
every write publishes the record's key on a channel that lets each process
serve records it has read from memory while they have not changed
(``redis_channel``); a per-user set of record keys serves ``delete_user`` and ``sessions list``
and is pruned of ended sessions as it is read; a set per logout id serves
``delete_by_logout_id`` and expires with the last session in it. Any Redis failure becomes
SessionStoreUnavailable within the socket timeout, and the connection pool
reconnects by itself once Redis is back.
"""
from __future__ import annotations

import json
import time
from typing import Any

import redis
from redis.exceptions import RedisError

from ..errors import SessionStoreUnavailable
from .base import UPDATABLE, SessionRecord, SessionStore, failures_mark_key, redact
from .redis_channel import CHANNEL, ChannelMarks


PREFIX = "dash-auth:"
TIMEOUT = 2.0  # seconds for connecting and for each command: a dead Redis answers 503 fast
PRUNE_ABOVE = 64  # sessions per user before put() sweeps ended ones from the user's set, now and then
FIELDS = ("key", "username", "identity", "created_at", "last_seen", "expires_at", "user_data", "validated_at")
REQUIRED = len(FIELDS) - 1  # validated_at is missing from records written before re-validation existed
JSON_FIELDS = ("identity", "user_data")

# Change fields of a session hash only if it still exists (an ended session
# must not come back) and, when ARGV[3] is given, only if its validated_at (else created_at)
# is still that number (a compare-and-set), move its expiry with it, and tell every process.
# KEYS: the hash, the channel. ARGV: the record key, expiry ms or "", expected validated_at or "",
# field, value, ...
UPDATE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] ~= '' then
  local seen = redis.call('HGET', KEYS[1], 'validated_at') or redis.call('HGET', KEYS[1], 'created_at')
  if tonumber(seen) ~= tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[2] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1
"""


def _encode(record: SessionRecord) -> dict[str, str]:
    return {
        "key": record.key, "username": record.username,
        "identity": json.dumps(record.identity, separators=(",", ":")),
        "created_at": repr(record.created_at), "last_seen": repr(record.last_seen),
        "expires_at": repr(record.expires_at),
        "user_data": json.dumps(record.user_data, separators=(",", ":")),
        "validated_at": repr(record.validated_at),
    }


def _decode(raw: tuple) -> SessionRecord | None:
    try:
        values = {name: v.decode() for name, v in zip(FIELDS, raw) if v is not None}
        return SessionRecord(
            key=values["key"], username=values["username"], identity=dict(json.loads(values["identity"])),
            created_at=float(values["created_at"]), last_seen=float(values["last_seen"]),
            expires_at=float(values["expires_at"]), user_data=dict(json.loads(values["user_data"])),
            validated_at=float(values["validated_at"]) if "validated_at" in values else None,  # type: ignore[arg-type]
        )
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
        return None


class RedisStore(SessionStore):
    def __init__(self, url: str) -> None:
        self.url = url
        # No periodic health check: it costs every command a clock read and a branch,
        # and a stale pooled connection after a Redis restart is retried anyway.
        self._redis = redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        self.where = redact(url)
        self._update = self._redis.register_script(UPDATE_SCRIPT)
        self._channel = ChannelMarks(self._redis)
        super().__init__(self._channel)

    def _fail(self, exc: Exception) -> SessionStoreUnavailable:
        return SessionStoreUnavailable(log_detail=f"session store {self.where}: {exc}")

    @staticmethod
    def _session(key: str) -> str:
        return f"{PREFIX}s:{key}"

    @staticmethod
    def _user(username: str) -> str:
        return f"{PREFIX}u:{username}"

    @staticmethod
    def _logout_id(logout_id: str) -> str:
        return f"{PREFIX}l:{logout_id}"

    def _read(self, key: str) -> tuple | None:
        try:
            raw = tuple(self._redis.hmget(self._session(key), FIELDS))
        except RedisError as exc:
            if "WRONGTYPE" in str(exc):  # garbage where a session should be
                return (b"",) * len(FIELDS)
            raise self._fail(exc) from None
        return None if raw[0] is None else raw

    def _parse(self, stored: tuple) -> SessionRecord | None:  # type: ignore[override]
        return None if None in stored[:REQUIRED] else _decode(stored)

    def put(self, record: SessionRecord) -> None:
        ttl_ms = int((record.expires_at - time.time()) * 1000)
        if ttl_ms <= 0:
            return self.delete(record.key)
        user = self._user(record.username)
        expires_at = int(record.expires_at) + 1
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._session(record.key))
                pipe.hset(self._session(record.key), mapping=_encode(record))
                pipe.pexpire(self._session(record.key), ttl_ms)
                for index in (*map(self._logout_id, record.logout_ids), user):
                    pipe.sadd(index, record.key)
                    pipe.expireat(index, expires_at, nx=True)  # a new set gets the record's expiry...
                    pipe.expireat(index, expires_at, gt=True)  # ...and an old one keeps the latest
                pipe.publish(CHANNEL, record.key)
                pipe.scard(user)
                size = pipe.execute()[-1]
        except RedisError as exc:
            raise self._fail(exc) from None
        self._changed(record.key)
        if size > PRUNE_ABOVE and size & (size - 1) == 0:  # at 128, 256, 512...: a sweep costs as many
            self._live_keys(record.username)  # reads as the set has members, so O(1) per sign-in overall

    def update(self, key: str, changes: dict[str, Any], if_validated_at: float | None = None) -> bool:
        fields: list[str] = []
        for name in UPDATABLE:
            if name in changes:
                value = changes[name]
                fields += [name, json.dumps(value, separators=(",", ":")) if name in JSON_FIELDS else repr(value)]
        if not fields:
            return True
        expiry = str(int(changes["expires_at"] * 1000)) if "expires_at" in changes else ""
        try:
            expected = "" if if_validated_at is None else repr(if_validated_at)
            updated = bool(self._update(keys=[self._session(key), CHANNEL], args=[key, expiry, expected, *fields]))
        except RedisError as exc:
            raise self._fail(exc) from None
        self._changed(key)
        return updated

    def delete(self, key: str) -> None:
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._session(key))
                pipe.publish(CHANNEL, key)
                pipe.execute()
        except RedisError as exc:
            raise self._fail(exc) from None
        self._changed(key)

    def _live_keys(self, username: str) -> list[str]:
        """The user's record keys that still exist; ended ones leave the set."""
        user = self._user(username)
        try:
            keys = sorted(k.decode() for k in self._redis.smembers(user))
            if not keys:
                return []
            with self._redis.pipeline(transaction=False) as pipe:
                for k in keys:
                    pipe.exists(self._session(k))
                exists = pipe.execute()
            gone = [k for k, live in zip(keys, exists) if not live]
            if gone:
                self._redis.srem(user, *gone)
        except RedisError as exc:
            raise self._fail(exc) from None
        return [k for k, live in zip(keys, exists) if live]

    def delete_user(self, username: str) -> int:
        keys = self._live_keys(username)
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.delete(self._session(key))
                    pipe.publish(CHANNEL, key)
                pipe.delete(self._user(username))
                deleted = pipe.execute()[:-1:2]
        except RedisError as exc:
            raise self._fail(exc) from None
        self._changed(*keys)
        return sum(deleted)

    def delete_by_logout_id(self, logout_id: str) -> int:
        index = self._logout_id(logout_id)
        try:
            keys = [k.decode() for k in self._redis.smembers(index)]
            with self._redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.delete(self._session(key))
                    pipe.publish(CHANNEL, key)
                pipe.delete(index)
                deleted = pipe.execute()[:-1:2]
        except RedisError as exc:
            raise self._fail(exc) from None
        self._changed(*keys)
        return sum(deleted)

    def list_sessions(self, username: str | None = None) -> list[SessionRecord]:
        try:
            if username is None:
                users = sorted({k.decode()[len(PREFIX) + 2:] for k in self._redis.scan_iter(f"{PREFIX}u:*")})
            else:
                users = [username]
        except RedisError as exc:
            raise self._fail(exc) from None
        records = []
        for user in users:
            for key in self._live_keys(user):
                record = self.get(key)
                if record is not None:
                    records.append(record)
        return records

    def purge_expired(self) -> int:
        return 0  # Redis expires every key by itself

    def add_failure(self, key: str, window: int) -> int:
        name = f"{PREFIX}f:{key}"
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window, nx=True)  # the window starts at the first failure
                pipe.publish(CHANNEL, failures_mark_key(key))
                count = pipe.execute()[0]
        except RedisError as exc:
            raise self._fail(exc) from None
        self._changed(failures_mark_key(key))
        return int(count)

    def _read_failures(self, key: str) -> tuple[int, float]:
        name = f"{PREFIX}f:{key}"
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(name)
                pipe.pttl(name)
                count, ttl_ms = pipe.execute()
        except RedisError as exc:
            raise self._fail(exc) from None
        if count is None or ttl_ms is None or ttl_ms <= 0:
            return 0, 0.0
        return int(count), time.time() + ttl_ms / 1000

    def clear_failures(self, key: str) -> None:
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(f"{PREFIX}f:{key}")
                pipe.publish(CHANNEL, failures_mark_key(key))
                pipe.execute()
        except RedisError as exc:
            raise self._fail(exc) from None
        self._changed(failures_mark_key(key))

    def put_pending(self, key: str, value: dict[str, Any], ttl: int) -> None:
        try:
            if ttl <= 0:
                self._redis.delete(f"{PREFIX}p:{key}")
                return
            self._redis.set(f"{PREFIX}p:{key}", json.dumps(value, separators=(",", ":")), ex=ttl)
        except RedisError as exc:
            raise self._fail(exc) from None

    def take_pending(self, key: str) -> dict[str, Any] | None:
        try:
            body = self._redis.getdel(f"{PREFIX}p:{key}")
        except RedisError as exc:
            raise self._fail(exc) from None
        try:
            value = json.loads(body) if body is not None else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def remember_once(self, key: str, ttl: float) -> bool:
        try:
            return bool(self._redis.set(f"{PREFIX}once:{key}", b"1", nx=True, px=max(1, int(ttl * 1000))))
        except RedisError as exc:
            raise self._fail(exc) from None

    def ping(self) -> None:
        try:
            self._redis.ping()
        except RedisError as exc:
            raise self._fail(exc) from None

    def close(self) -> None:
        self._channel.close()
        self._redis.close()
