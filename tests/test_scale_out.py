"""Several app processes ("hosts") on one session store behave as one: sessions, logout,
idle timers and user data, on SQLite (one host) and on Redis (many hosts)."""
from __future__ import annotations

import secrets
import threading
import time

import pytest
import redis
import requests

from .conftest import UPDATE_GREETING
from .servers.app_server import ROOT, start_app


@pytest.fixture(params=["sqlite", "redis"])
def two_hosts(request, tmp_path, redis_server):
    """Two gunicorn processes with two workers each, sharing one store and one key."""
    if request.param == "redis":
        redis.Redis.from_url(redis_server.url).flushdb()
        store = redis_server.url
    else:
        store = f"sqlite:///{tmp_path}/sessions.sqlite3"
    env = {
        "DASH_AUTH_CONNECTOR": "basic", "DASH_AUTH_USERS_FILE": str(ROOT / "examples/demo-users.json"),
        "DASH_AUTH_ALLOWED_GROUPS": "analysts", "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
        "DASH_AUTH_SESSION_STORE": store, "DASH_AUTH_SESSION_IDLE_TIMEOUT": "6",
    }
    a = start_app("tests.apps.user_data_app:server", env, tmp_path / "a.log")
    try:
        b = start_app("tests.apps.user_data_app:server", env, tmp_path / "b.log")
    except BaseException:
        a.stop()
        raise
    yield a.url, b.url
    a.stop()
    b.stop()


def sign_in(url: str) -> requests.Session:
    session = requests.Session()
    response = session.post(url + "/_dash-auth/login", data={"username": "alice", "password": "wonderland"},
                            allow_redirects=False, timeout=10)
    assert response.status_code == 302
    return session


def greet(session: requests.Session, url: str) -> int:
    return session.post(url + "/_dash-update-component", json=UPDATE_GREETING, timeout=10).status_code


def test_session_from_one_host_works_on_the_other(two_hosts):
    a, b = two_hosts
    session = sign_in(a)
    assert greet(session, b) == 200


def test_logout_on_one_host_is_refused_on_the_other_at_the_next_request(two_hosts):
    a, b = two_hosts
    session = sign_in(a)
    cookie = dict(session.cookies)
    assert greet(session, b) == 200
    session.get(a + "/_dash-auth/logout", headers={"Sec-Fetch-Site": "same-origin"}, timeout=10)
    replay = requests.post(b + "/_dash-update-component", json=UPDATE_GREETING, cookies=cookie, timeout=10)
    assert replay.status_code == 401


def test_activity_on_one_host_keeps_the_session_alive_on_the_other(two_hosts):
    a, b = two_hosts  # idle timeout 6 s
    session = sign_in(a)
    time.sleep(4)
    assert greet(session, a) == 200  # refreshes the idle timer in the shared store
    time.sleep(4)  # 8 s after sign-in, 4 s after the refresh
    assert greet(session, b) == 200
    time.sleep(7)
    assert greet(session, b) == 401


def test_concurrent_user_data_writes_from_two_hosts_never_corrupt_the_record(two_hosts):
    a, b = two_hosts
    session = sign_in(a)
    cookies = dict(session.cookies)
    written, errors = [], []

    def well_formed(got: dict) -> bool:
        """One writer's whole value: never parts of two writes mixed."""
        return (isinstance(got.get("writer"), int) and got.get("i") in range(10)
                and got.get("payload") == "x" * (got["writer"] * 37))

    def writer(n: int) -> None:
        url = a if n % 2 else b
        for i in range(10):
            value = {"writer": n, "i": i, "payload": "x" * (n * 37)}
            r = requests.put(url + "/user-data", json=value, cookies=cookies, timeout=20)
            if r.status_code != 200:
                errors.append(r.status_code)
                continue
            written.append(value)
            seen = requests.get(url + "/user-data", cookies=cookies, timeout=20).json()
            got = {k: seen.get(k) for k in ("writer", "i", "payload")}
            if not well_formed(got) or seen["username"] != "alice" or seen["groups"] != ["analysts"]:
                errors.append(("torn read", got))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(written) == 160
    final = requests.get(b + "/user-data", cookies=cookies, timeout=10).json()
    assert {k: final[k] for k in ("writer", "i", "payload")} in written  # last write wins, whole
