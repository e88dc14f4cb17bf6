"""Session records served from each process's memory: never a record another process has changed.

Every worker keeps the records it read and serves them again while no write
touched them (stores/marks.py, stores/redis_channel.py). These tests change
records from other processes, through the package's stores as the workers
do, and check that the next read sees every change, against real SQLite
files and a real redis-server.
"""
from __future__ import annotations

import multiprocessing
import os
import random
import subprocess
import sys
import textwrap
import time

import pytest
import redis

from dash_enterprise_auth.errors import SessionStoreUnavailable
from dash_enterprise_auth.stores import SessionRecord, SQLiteStore, open_store
from dash_enterprise_auth.stores.marks import SLOTS, slot_of
from dash_enterprise_auth.stores.redis_channel import CHANNEL, LIVE_FOR

from .servers.redis_server import RedisServer


def record(key: str, username: str = "alice", ttl: float = 600, **data) -> SessionRecord:
    now = time.time()
    identity = {"username": username, "logout_ids": [f"idp:{username}"]}
    return SessionRecord(key, username, identity, now, now, now + ttl, data)


@pytest.fixture(params=["sqlite", "redis"])
def url(request, tmp_path) -> str:
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        redis.Redis.from_url(server.url).flushdb()
        return server.url
    return f"sqlite:///{tmp_path}/sessions.sqlite3"


@pytest.fixture
def store(url):
    """This test's worker: the package's store on ``url``."""
    opened = open_store(url)
    yield opened
    opened.close()


def read_until_served_from_memory(store, key: str) -> SessionRecord:
    """The Redis channel is confirmed by the read after the one that subscribes it."""
    deadline = time.monotonic() + 5
    while store.marks.mark(key) is None:
        assert time.monotonic() < deadline, "the store never started serving from memory"
        time.sleep(0.01)
    return store.get(key)


def in_another_process(url: str, code: str) -> None:
    """Run ``code`` with ``store`` opened on ``url`` in a fresh interpreter: another worker."""
    script = f"from dash_enterprise_auth.stores import open_store\nstore = open_store({url!r})\n"
    script += textwrap.dedent(code) + "\nstore.close()\n"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


WRITES = {
    "user data saved": ('store.update("k1", {"user_data": {"theme": "dark"}})',
                        lambda got: got is not None and got.user_data == {"theme": "dark"}),
    "idle timer moved": ('store.update("k1", {"last_seen": 12.5, "expires_at": 4e9})',
                         lambda got: got is not None and got.last_seen == 12.5),
    "signed out": ('store.delete("k1")', lambda got: got is None),
    "sessions revoked": ('store.delete_user("alice")', lambda got: got is None),
    "ended by the provider": ('store.delete_by_logout_id("idp:alice")', lambda got: got is None),
    "expired": ('store.update("k1", {"expires_at": 1.0})', lambda got: got is None),
}


@pytest.mark.parametrize("write", WRITES)
def test_a_write_from_another_worker_is_seen_at_the_next_read(url, store, write):
    store.put(record("k1", theme="light"))
    assert read_until_served_from_memory(store, "k1").user_data == {"theme": "light"}
    assert store.get("k1").user_data == {"theme": "light"}  # from memory now
    code, seen = WRITES[write]
    in_another_process(url, code)
    assert seen(store.get("k1"))


@pytest.mark.parametrize("code, count", [
    ('store.add_failure("account:alice", 900)', 3),  # a wrong password on another worker
    ('store.clear_failures("account:alice")', 0),  # the right one there
])
def test_a_failure_count_changed_by_another_worker_is_seen_at_the_next_read(url, store, code, count):
    """Failure counts are kept like records (a script's throttle check on every request reads
    nothing), and every change made elsewhere is read at the next check."""
    from dash_enterprise_auth.blocking import without_waiting

    for _ in range(2):
        store.add_failure("account:alice", 900)
    deadline = time.monotonic() + 5
    while without_waiting(store.failures, "account:alice") is None:  # None: it would read the store
        assert time.monotonic() < deadline, "failure counts were never served from memory"
        store.failures("account:alice")
        time.sleep(0.01)
    assert without_waiting(store.failures, "account:alice")[0] == 2
    in_another_process(url, code)
    assert store.failures("account:alice")[0] == count


def test_a_replaced_record_is_read_again(url, store):
    store.put(record("k1"))
    read_until_served_from_memory(store, "k1")
    in_another_process(url, """
        import time
        from dash_enterprise_auth.stores import SessionRecord
        now = time.time()
        store.put(SessionRecord("k1", "bob", {"username": "bob"}, now, now, now + 60))
    """)
    assert store.get("k1").username == "bob"


def test_records_in_memory_are_not_read_from_the_store_again(store):
    store.put(record("k1"))
    read_until_served_from_memory(store, "k1")
    reads = _store_reads(store)
    for _ in range(50):
        assert store.get("k1").username == "alice"
    # Redis is read again only when its channel has gone unconfirmed for LIVE_FOR (a stall
    # of this process on a busy machine); SQLite never.
    assert _store_reads(store) - reads <= (0 if isinstance(store, SQLiteStore) else 5)


def _store_reads(store) -> int:
    """Session reads the store itself has answered (Redis's own command counters; for SQLite,
    statements its connection ran)."""
    if isinstance(store, SQLiteStore):
        conn = store._connection()
        if not hasattr(store, "statements"):
            store.statements = []
            conn.set_trace_callback(store.statements.append)
        return sum(1 for s in store.statements if s.startswith("SELECT body"))
    stats = redis.Redis.from_url(store.url).info("commandstats")
    return stats.get("cmdstat_hmget", {}).get("calls", 0)


def _writer(url: str, key: str, count: int, done: "multiprocessing.connection.Connection") -> None:
    store = open_store(url)
    for n in range(1, count + 1):
        store.update(key, {"user_data": {"n": n}})
        done.send(n)  # the write has returned: every read that starts now must see it
    store.close()


def _noise(url: str, stop: "multiprocessing.synchronize.Event") -> None:
    """Writes to other records, some of them sharing the watched record's slot."""
    store = open_store(url)
    keys = [f"other-{i}" for i in range(200)]
    for key in keys:
        store.put(record(key, username="bob"))
    while not stop.is_set():
        store.update(random.choice(keys), {"last_seen": time.time()})
    store.close()


def test_reads_racing_writes_of_other_processes_never_see_an_older_record(url):
    """A worker writes a counter 300 times while another updates other records; after each write
    returns, a third process reads: it must never see a value older than the one just written.
    SQLite marks are shared memory, so the very next read sees a write; the Redis channel's
    messages arrive a little after the write, and a read that starts LIVE_FOR after it must see
    it (any earlier read too, or it reads Redis)."""
    settle = 0.0 if url.startswith("sqlite") else LIVE_FOR
    store = open_store(url)
    store.put(record("watched", n=0))
    read_until_served_from_memory(store, "watched")
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    stop = context.Event()
    noise = context.Process(target=_noise, args=(url, stop))
    writer = context.Process(target=_writer, args=(url, "watched", 300, send))
    noise.start()
    writer.start()
    try:
        stale = []
        for _ in range(300):
            assert receive.poll(60), "the writer stopped"
            written = receive.recv()
            time.sleep(settle)
            seen = store.get("watched").user_data["n"]
            if seen < written:
                stale.append((written, seen))
            for _ in range(random.randrange(3)):  # some reads served from memory in between
                store.get("watched")
        assert stale == []
    finally:
        stop.set()
        writer.join(30)
        noise.join(30)
        store.close()


def test_sqlite_marks_live_in_a_private_file_beside_the_store(tmp_path):
    SQLiteStore(tmp_path / "s.sqlite3")
    marks = tmp_path / "s.sqlite3-marks"
    assert oct(os.stat(marks).st_mode & 0o777) == "0o600"
    assert os.stat(marks).st_size == SLOTS * 8
    assert os.stat(marks).st_blocks * 512 >= SLOTS * 8  # allocated now: a full disk later cannot fault a write


def test_a_new_worker_sees_marks_written_before_it_started(tmp_path):
    """Marks are shared through the file, so a worker started later agrees with the others."""
    path = tmp_path / "s.sqlite3"
    first = SQLiteStore(path)
    first.put(record("k1"))
    first.update("k1", {"user_data": {"v": 1}})
    second = SQLiteStore(path)
    assert second.marks.mark("k1") == first.marks.mark("k1") != 0
    assert slot_of("k1") == slot_of("k1") and 0 <= slot_of("k1") < SLOTS


# -- Redis: the channel must be known to work, or every read goes to Redis -----------------------

@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis-data")
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()


def test_redis_stopped_fails_closed_even_for_a_record_in_memory_and_recovers(own_redis):
    store = open_store(own_redis.url)
    try:
        store.put(record("k1"))
        read_until_served_from_memory(store, "k1")
        own_redis.stop()
        with pytest.raises(SessionStoreUnavailable):
            store.get("k1")
        own_redis.start()  # empty: the session is gone, and nobody is served from memory
        assert store.get("k1") is None
        store.put(record("k1"))
        assert read_until_served_from_memory(store, "k1").username == "alice"
    finally:
        store.close()


def test_a_lost_channel_means_plain_reads_until_it_is_back(own_redis):
    store, other = open_store(own_redis.url), open_store(own_redis.url)
    admin = redis.Redis.from_url(own_redis.url)
    try:
        store.put(record("k1"))
        read_until_served_from_memory(store, "k1")
        admin.client_kill_filter(_type="pubsub")  # the channels of both stores are cut
        other.update("k1", {"user_data": {"after": "cut"}})  # published to nobody
        assert store.get("k1").user_data == {"after": "cut"}
        assert read_until_served_from_memory(store, "k1").user_data == {"after": "cut"}
        other.delete("k1")
        assert store.get("k1") is None
    finally:
        store.close()
        other.close()


def test_a_channel_that_stops_answering_is_not_trusted(own_redis):
    """A subscription whose connection silently died (a frozen server, a lost network) gets no
    answer to its PINGs: after LIVE_FOR seconds the store reads Redis again, and fails closed."""
    store = open_store(own_redis.url)
    try:
        store.put(record("k1"))
        read_until_served_from_memory(store, "k1")
        os.kill(own_redis.process.pid, 19)  # SIGSTOP: connections stay open, nothing answers
        try:
            time.sleep(LIVE_FOR + 0.2)
            assert store.marks.mark("k1") is None
            with pytest.raises(SessionStoreUnavailable):
                store.get("k1")
        finally:
            os.kill(own_redis.process.pid, 18)  # SIGCONT
        assert read_until_served_from_memory(store, "k1").username == "alice"
    finally:
        store.close()


def test_the_event_loop_never_waits_to_subscribe(redis_server):
    """On an ASGI event loop a store read that would connect the channel is refused (the guard then
    asks on a thread), so an unreachable Redis can never hold the loop for a connect timeout."""
    from dash_enterprise_auth.blocking import without_waiting

    store = open_store(redis_server.url)
    try:
        store.put(record("k1"))
        assert without_waiting(store.get, "k1") is None  # would have to subscribe: not on the loop
        assert store._channel._conn is None
        assert store.get("k1").username == "alice"  # on a thread: subscribes and reads
        read_until_served_from_memory(store, "k1")  # on a thread: kept with a confirmed mark
        deadline = time.monotonic() + 5
        while (got := without_waiting(store.get, "k1")) is None:  # then from memory, on the loop
            assert time.monotonic() < deadline, "a record in memory was never served on the loop"
            time.sleep(0.01)
        assert got.username == "alice"
    finally:
        store.close()


def test_the_event_loop_never_waits_for_another_threads_subscribe(own_redis):
    """While a thread is subscribing again to a frozen Redis (its connect waits up to the
    socket timeout), the loop's reads are answered at once: "from memory" is not known, so
    the guard asks on a thread; the loop is never held for the other thread's connect."""
    import threading

    from dash_enterprise_auth.blocking import without_waiting

    store = open_store(own_redis.url)
    channel = store._channel
    try:
        store.put(record("k1"))
        read_until_served_from_memory(store, "k1")
        os.kill(own_redis.process.pid, 19)  # SIGSTOP: the kernel still accepts connections, nobody answers
        try:
            with channel._lock:  # as after the channel broke: the next read subscribes again
                channel._drop(time.monotonic())
                channel._next_try = 0.0
            subscribing = threading.Thread(target=channel.mark, args=("k1",))
            subscribing.start()
            while channel._conn is None and subscribing.is_alive():
                time.sleep(0.001)
            assert subscribing.is_alive(), "the subscribing thread did not wait on the frozen Redis"
            assert store.marks.known("k1") is None
            assert without_waiting(store.get, "k1") is None
            assert subscribing.is_alive(), "the loop's reads waited for the other thread's connect"
        finally:
            os.kill(own_redis.process.pid, 18)  # SIGCONT
        subscribing.join()
        assert read_until_served_from_memory(store, "k1").username == "alice"
    finally:
        store.close()


def _read_in_the_child(store, url: str, results) -> None:
    try:
        in_another_process(url, 'store.update("k1", {"user_data": {"seen": "by the child"}})')
        results.put(store.get("k1").user_data)
        results.put(read_until_served_from_memory(store, "k1").user_data)  # its own channel, confirmed
        results.put(redis.Redis.from_url(url).pubsub_numsub(CHANNEL)[0][1])  # the parent's and its own
    except BaseException as exc:  # noqa: BLE001  (reported to the parent)
        results.put(repr(exc))


def test_a_forked_worker_never_reads_the_parents_channel(own_redis):
    """gunicorn forks workers from a master that may have used the store (``--preload``): a child
    subscribes on a connection of its own, so it neither trusts marks it cannot see being moved
    nor takes messages off the parent's socket."""
    import multiprocessing

    store = open_store(own_redis.url)  # a server of its own: no other test's subscribers
    try:
        store.put(record("k1", seen="by nobody"))
        read_until_served_from_memory(store, "k1")
        fork = multiprocessing.get_context("fork")
        results = fork.Queue()
        child = fork.Process(target=_read_in_the_child, args=(store, own_redis.url, results))
        child.start()
        child.join(60)
        assert [results.get(timeout=5) for _ in range(3)] == [{"seen": "by the child"}] * 2 + [2]
        in_another_process(own_redis.url, 'store.update("k1", {"user_data": {"seen": "by the parent"}})')
        assert store.get("k1").user_data == {"seen": "by the parent"}
    finally:
        store.close()
