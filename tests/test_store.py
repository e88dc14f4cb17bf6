"""The session store contract. Each backend runs this same class (SQLite today)."""
from __future__ import annotations

import os
import sqlite3
import time

import pytest
import redis

from dash_enterprise_auth.errors import ConfigurationError, SessionStoreUnavailable
from dash_enterprise_auth.stores import SessionRecord, SessionStore, SQLiteStore, open_store


def record(key: str = "k1", username: str = "alice", ttl: float = 60, **data) -> SessionRecord:
    now = time.time()
    return SessionRecord(key, username, {"username": username}, now, now, now + ttl, data)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        redis.Redis.from_url(server.url).flushdb()
        s = open_store(server.url)
    else:
        s = open_store(f"sqlite:///{tmp_path}/store.sqlite3")
    yield s
    s.close()


class TestStoreContract:
    def test_put_then_get_returns_the_same_record(self, store):
        store.put(record(note="hi"))
        got = store.get("k1")
        assert got.username == "alice" and got.user_data == {"note": "hi"}

    def test_missing_key_is_no_session(self, store):
        assert store.get("nope") is None

    def test_a_new_record_counts_as_validated_when_it_was_created(self, store):
        store.put(record())
        got = store.get("k1")
        assert got.validated_at == got.created_at

    def test_a_compare_and_set_on_validated_at_lets_only_the_first_of_two_writers_through(self, store):
        """Two workers re-validate the same session (each read validated_at = t0): the first one's
        identity (its rotated refresh token) is stored, the second one's is refused, not written over it."""
        store.put(record())
        t0 = store.get("k1").validated_at
        first = {"identity": {"username": "alice", "private": {"refresh_token": "rt-2"}}, "validated_at": t0 + 5}
        second = {"identity": {"username": "alice", "private": {"refresh_token": "rt-2b"}}, "validated_at": t0 + 6}
        assert store.update("k1", first, if_validated_at=t0)
        assert not store.update("k1", second, if_validated_at=t0)
        got = store.get("k1")
        assert got.validated_at == t0 + 5 and got.identity["private"]["refresh_token"] == "rt-2"
        assert store.update("k1", second, if_validated_at=t0 + 5)

    def test_a_record_written_before_re_validation_existed_reads_and_compares_as_validated_at_creation(self, store):
        store.put(record())
        if isinstance(store, SQLiteStore):
            with sqlite3.connect(store.path) as db:
                db.execute("UPDATE sessions SET body = json_remove(body, '$.validated_at')")
        else:
            store._redis.hdel(store._session("k1"), "validated_at")
        store._recent.clear()
        got = store.get("k1")
        assert got is not None and got.validated_at == got.created_at
        assert store.update("k1", {"validated_at": got.created_at + 1}, if_validated_at=got.created_at)
        store._recent.clear()
        assert store.get("k1").validated_at == got.created_at + 1

    def test_a_compare_and_set_on_an_ended_session_does_not_bring_it_back(self, store):
        store.put(record())
        t0 = store.get("k1").validated_at
        store.delete("k1")
        assert not store.update("k1", {"validated_at": t0 + 1}, if_validated_at=t0)
        assert store.get("k1") is None

    def test_expired_record_is_no_session_and_is_purged(self, store):
        store.put(record("old", ttl=-1))
        store.put(record("live"))
        assert store.get("old") is None
        store.purge_expired()  # SQLite sweeps; Redis expires keys by itself
        assert [r.key for r in store.list_sessions()] == ["live"]

    def test_delete_user_ends_all_of_their_sessions_only(self, store):
        store.put(record("a1"))
        store.put(record("a2"))
        store.put(record("b1", "bob"))
        assert store.delete_user("alice") == 2
        assert store.get("a1") is None and store.get("b1") is not None

    def test_delete_by_logout_id_ends_the_sessions_that_carry_it_only(self, store):
        def indexed(key: str, *logout_ids: str) -> SessionRecord:
            r = record(key)
            r.identity = {"username": "alice", "logout_ids": list(logout_ids)}
            return r

        store.put(indexed("idp-1", "saml:name", "saml:name+session-1"))
        store.put(indexed("idp-2", "saml:name", "saml:name+session-2"))
        store.put(indexed("other", "saml:someone-else"))
        assert store.delete_by_logout_id("saml:name+session-1") == 1
        assert store.get("idp-1") is None and store.get("idp-2") is not None
        assert store.delete_by_logout_id("saml:name") == 1  # idp-1 is already gone
        assert store.get("idp-2") is None and store.get("other") is not None
        assert store.delete_by_logout_id("saml:never-seen") == 0

    def test_failures_count_within_a_window_and_reset_after(self, store):
        assert [store.add_failure("account:x", 60) for _ in range(3)] == [1, 2, 3]
        assert store.failures("account:x")[0] == 3
        assert store.add_failure("account:y", -1) == 1  # a window already over
        assert store.failures("account:y") == (0, 0.0)
        store.clear_failures("account:x")
        assert store.failures("account:x") == (0, 0.0)


def write_garbage(store, key: str) -> None:
    """Put bytes that are no record where the record ``key`` lives, behind the store's back."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as db:
            db.execute("UPDATE sessions SET body = ? WHERE key = ?", (b"\x00\xffgarbage", key))
    else:
        client = redis.Redis.from_url(store.url)
        client.delete(f"dash-auth:s:{key}")
        client.set(f"dash-auth:s:{key}", b"\x00\xffgarbage")


@pytest.mark.parametrize("field_garbage", [False, True])
def test_corrupt_record_is_no_session_and_logged_once(store, caplog, field_garbage):
    store.put(record("bad"))
    if field_garbage and not isinstance(store, SQLiteStore):
        redis.Redis.from_url(store.url).hset("dash-auth:s:bad", "identity", b"{not json")
    else:
        write_garbage(store, "bad")
    assert store.get("bad") is None
    assert store.get("bad") is None
    assert caplog.text.count("unreadable session record") == 1


class ReadOnlySQLiteStore(SQLiteStore):
    """The same file opened read-only, as on a read-only disk (root ignores file modes)."""

    def _connection(self):
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)


def test_read_only_store_fails_closed_with_store_unavailable(tmp_path):
    path = tmp_path / "ro.sqlite3"
    SQLiteStore(path).put(record())
    store = ReadOnlySQLiteStore.__new__(ReadOnlySQLiteStore)
    store.path = path
    SessionStore.__init__(store)  # no change marks: every read goes to the file
    with pytest.raises(SessionStoreUnavailable):
        store.put(record("k2"))
    assert store.get("k1") is not None  # reading still works


def test_uncreatable_store_path_stops_start_up_with_the_reason(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigurationError, match="DASH_AUTH_SESSION_STORE=.*cannot be used: "):
        SQLiteStore(tmp_path / "file" / "sessions.sqlite3")


def test_store_file_is_private_to_its_owner(tmp_path):
    SQLiteStore(tmp_path / "p.sqlite3")
    assert oct(os.stat(tmp_path / "p.sqlite3").st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("url", ["sqlite://", "postgres://x", "sessions.db", "redis://h:notaport/0"])
def test_unsupported_store_urls_are_a_configuration_error(url):
    with pytest.raises(ConfigurationError, match="DASH_AUTH_SESSION_STORE=.*is not valid"):
        open_store(url)


def test_store_url_password_never_appears_in_errors():
    with pytest.raises(ConfigurationError) as err:
        open_store("redis://:hunter2@h:notaport/0")
    assert "hunter2" not in str(err.value)


def test_relative_and_absolute_sqlite_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert open_store("sqlite:///rel/s.sqlite3").path == (tmp_path / "rel/s.sqlite3").relative_to(tmp_path)
    assert open_store(f"sqlite:///{tmp_path}/abs.sqlite3").path == tmp_path / "abs.sqlite3"


class TestPendingSignIns:  # part of the store contract, run on every backend
    def test_pending_state_can_be_taken_once(self, store):
        store.put_pending("state:a", {"next": "/x"}, ttl=60)
        assert store.take_pending("state:a") == {"next": "/x"}
        assert store.take_pending("state:a") is None

    def test_pending_state_expires(self, store):
        store.put_pending("state:b", {"next": "/x"}, ttl=-1)
        assert store.take_pending("state:b") is None


class TestReplayCache:  # part of the store contract, run on every backend
    def test_an_identifier_is_accepted_once_until_it_expires(self, store):
        assert store.remember_once("assertion-1", 0.5) is True
        assert store.remember_once("assertion-1", 0.5) is False
        assert store.remember_once("assertion-2", 0.5) is True
        time.sleep(0.6)
        assert store.remember_once("assertion-1", 0.5) is True


class TestPartialUpdates:  # part of the store contract, run on every backend
    def test_update_changes_only_the_named_fields(self, store):
        store.put(record(note="keep"))
        assert store.update("k1", {"user_data": {"theme": "dark"}})
        later = time.time() + 30
        assert store.update("k1", {"last_seen": later, "expires_at": later + 60})
        got = store.get("k1")
        assert got.user_data == {"theme": "dark"} and got.last_seen == later and got.expires_at == later + 60
        assert got.identity == {"username": "alice"} and got.username == "alice"

    def test_a_changed_identity_replaces_the_stored_one_and_nothing_else(self, store):
        store.put(record(note="keep"))
        renewed = {"username": "alice", "private": {"krb5": {"expires_at": 123.0}}}
        assert store.update("k1", {"identity": renewed})
        got = store.get("k1")
        assert got.identity == renewed and got.user_data == {"note": "keep"} and got.username == "alice"

    def test_update_of_an_ended_session_does_not_bring_it_back(self, store):
        store.put(record())
        store.delete("k1")
        assert store.update("k1", {"user_data": {"x": 1}}) is False
        assert store.get("k1") is None

    def test_moved_expiry_is_honoured(self, store):
        store.put(record(ttl=60))
        assert store.update("k1", {"expires_at": time.time() - 1})
        assert store.get("k1") is None


def test_redis_over_tls_with_a_password(tmp_path):
    from .servers.redis_server import RedisServer

    server = RedisServer(tmp_path, password="s3cret-pass", tls=True).start()
    try:
        store = open_store(server.url)
        store.put(record())
        assert store.get("k1").username == "alice"
        wrong = open_store(server.url.replace("s3cret-pass", "wrong"))
        with pytest.raises(SessionStoreUnavailable) as err:
            wrong.get("k1")
        assert "s3cret-pass" not in err.value.log_detail and "wrong" not in err.value.log_detail
        plain = open_store(server.url.replace("rediss://", "redis://").split("?")[0])
        with pytest.raises(SessionStoreUnavailable):
            plain.get("k1")  # a TLS-only server refuses plain connections
    finally:
        server.stop()


def test_over_tls_the_change_channel_keeps_its_bound(tmp_path):
    """The change channel over TLS, where Redis may write to the writer before the subscriber:
    a record is served from memory between writes, and a write is never missed longer than
    LIVE_FOR after it was made (a read then either saw the message or went to Redis)."""
    from dash_enterprise_auth.stores.redis_channel import LIVE_FOR

    from .servers.redis_server import RedisServer
    from .test_store_memory import read_until_served_from_memory

    server = RedisServer(tmp_path, password="s3cret-pass", tls=True).start()
    store, other = open_store(server.url), open_store(server.url)
    try:
        store.put(record())
        for n in range(20):
            read_until_served_from_memory(store, "k1")
            other.update("k1", {"user_data": {"n": n}})
            written = time.monotonic()
            while store.get("k1").user_data.get("n") != n:
                assert time.monotonic() - written < LIVE_FOR, f"write {n} unseen for longer than LIVE_FOR"
        other.delete("k1")
        deadline = time.monotonic() + LIVE_FOR
        while store.get("k1") is not None:
            assert time.monotonic() < deadline, "a deleted session was still served after LIVE_FOR"
    finally:
        store.close()
        other.close()
        server.stop()


@pytest.mark.parametrize("url, shown", [
    ("redis://:hunter2@h:6379/0", "redis://***@h:6379/0"),
    ("rediss://user:p@ss@h:6380/1?ssl_ca_certs=/ca.pem", "rediss://***@h:6380/1?ssl_ca_certs=/ca.pem"),
    ("sqlite:////srv/s.sqlite3", "sqlite:////srv/s.sqlite3"),
])
def test_store_urls_are_shown_without_passwords(url, shown):
    from dash_enterprise_auth.stores import redact

    assert redact(url) == shown


def _open_at_the_barrier(path: str, barrier, results) -> None:
    barrier.wait()
    try:
        SQLiteStore(path)
        results.put("ok")
    except Exception as exc:  # reported to the test, whatever it is
        results.put(repr(exc)[:300])


def test_workers_starting_together_on_a_new_sqlite_file_all_start(tmp_path):
    """Two to eight workers of one server open the same new store at the same moment: none may
    die with "database is locked" (SQLite refuses concurrent switches to WAL without waiting)."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    for trial in range(15):
        barrier, results = fork.Barrier(8), fork.Queue()
        workers = [fork.Process(target=_open_at_the_barrier, args=(str(tmp_path / f"{trial}.sqlite3"), barrier,
                                                                   results)) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        outcomes = [results.get(timeout=5) for _ in workers]
        assert outcomes == ["ok"] * 8, outcomes
