"""100,000 sign-ins later, the store holds the live sessions and nothing else, with no cron job."""
from __future__ import annotations

import sqlite3
import time

import pytest
import redis

from dash_enterprise_auth.connectors import Identity
from dash_enterprise_auth.session import PURGE_EVERY, SessionLayer, Timeouts
from dash_enterprise_auth.settings import Secret
from dash_enterprise_auth.stores import SQLiteStore, open_store

SIGN_INS = 100_000


def stored_sessions(store) -> int:
    """What really lies in the backend, expired or not."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as db:
            return db.execute("SELECT count(*) FROM sessions").fetchone()[0]
    client = redis.Redis.from_url(store.url)
    return sum(1 for _ in client.scan_iter("dash-auth:*", count=10_000))


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_hundred_thousand_sign_ins_leave_only_live_sessions(backend, tmp_path, redis_server, monkeypatch):
    if backend == "redis":
        redis.Redis.from_url(redis_server.url).flushdb()
        store = open_store(redis_server.url)
    else:
        store = open_store(f"sqlite:///{tmp_path}/s.sqlite3")
    sessions = SessionLayer(store, Secret("k" * 40), Timeouts(idle=1, max_age=2))
    for n in range(SIGN_INS):
        sessions.start(Identity(f"user{n % 1000}"))
    assert stored_sessions(store) > 0

    if backend == "redis":  # Redis drops keys on its own clock: give them the seconds they have left
        time.sleep(3.5)
        sessions.start(Identity("still-here"))
        assert stored_sessions(store) <= 2  # the live session and its user's index
    else:  # SQLite is swept by sign-ins and idle refreshes, at most every PURGE_EVERY seconds
        later = time.time() + PURGE_EVERY + 5  # every one of them has expired; a sweep is due
        monkeypatch.setattr(time, "time", lambda: later)
        sessions.start(Identity("still-here"))
        assert stored_sessions(store) == 1
    assert [r.username for r in store.list_sessions()] == ["still-here"]


def test_one_person_signing_in_again_and_again_costs_redis_no_more_per_sign_in(redis_server):
    """A script that signs in through the form on every run, or a sign-in storm of one account,
    leaves that person many live sessions. Redis keeps their keys in a per-person set that a
    sign-in sweeps of ended sessions now and then: overall a fixed few reads per sign-in, never
    one per live session on every sign-in (which made the 3,000th sign-in read 3,000 keys)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    store = open_store(redis_server.url)
    sessions = SessionLayer(store, Secret("k" * 40), Timeouts(idle=600, max_age=3600))
    try:
        client.config_resetstat()
        for _ in range(3000):
            sessions.start(Identity("alice"))
        exists_calls = client.info("commandstats").get("cmdstat_exists", {}).get("calls", 0)
        assert exists_calls <= 3 * 3000, f"{exists_calls} key reads for 3000 sign-ins"
        assert len(store.list_sessions("alice")) == 3000  # every one of them still valid

        for record in store.list_sessions("alice")[:2990]:  # signed out
            store.delete(record.key)
        for _ in range(1100):  # reaching 4096 members sweeps the set: only live sessions stay
            sessions.start(Identity("alice"))
        assert client.scard("dash-auth:u:alice") <= 10 + 1100
    finally:
        store.close()
