"""A request admitted before is admitted again from memory, but never past a change or a deadline.

Every worker remembers the requests it admitted (dash_enterprise_auth/admissions.py). These
tests admit a session's requests many times on one backend, then change the session the way
another worker or host would (through the package's store, from another process, on a real
SQLite file and a real redis-server), or move the clock past one of the session's deadlines,
and check the very next request sees it.
"""
from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
import time

import flask
import pytest
import redis
from dash import Input, Output

import dash_enterprise_auth as auth
from dash_enterprise_auth.admissions import ADMISSIONS_MAX, COOKIE_HEADER_MAX_LENGTH, PATH_MAX_LENGTH, PATHS_MAX
from dash_enterprise_auth.install import installed_on
from dash_enterprise_auth.session import COOKIE_NAME
from dash_enterprise_auth.throttle import PER_ACCOUNT

from .clients import client_of, make_app_on_every_backend  # noqa: F401  (a fixture: every test on every backend)
from .conftest import PASSWORDS, UPDATE_GREETING, sign_in
from .test_sessions import jarless as jarless_client

ADMITTED_TIMES = 20


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path) -> str:
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url
        redis.Redis.from_url(url).flushdb()
        return url
    return f"sqlite:///{tmp_path}/sessions.sqlite3"


def in_another_worker(url: str, code: str) -> None:
    """Run ``code`` with ``store`` opened on ``url`` in a fresh interpreter, as another worker would."""
    script = f"from dash_enterprise_auth.stores import open_store\nstore = open_store({url!r})\n"
    script += textwrap.dedent(code) + "\nstore.close()\n"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def greeting(client, **headers: str):
    return client.post("/_dash-update-component", json=UPDATE_GREETING, headers=headers or None)


def admitted_many_times(client) -> None:
    for _ in range(ADMITTED_TIMES):
        answer = greeting(client)
        assert answer.status_code == 200 and "Hello alice" in answer.text


@pytest.mark.parametrize("change, status", [
    ('for r in store.list_sessions("alice"): store.delete(r.key)', 401),  # signed out elsewhere
    ('store.delete_user("alice")', 401),  # sessions revoked by the operator
    ('for r in store.list_sessions("alice"): store.update(r.key, {"expires_at": 1.0})', 401),
    # re-validated elsewhere: no longer in the allowed group
    ('for r in store.list_sessions("alice"): store.update(r.key, {"identity": {**r.identity, "groups": []}})', 403),
])
def test_a_change_made_by_another_worker_decides_the_next_request(make_app, store_url, change, status):
    client = client_of(make_app(session_store=store_url))
    sign_in(client, "alice")
    admitted_many_times(client)
    in_another_worker(store_url, change)
    assert greeting(client).status_code == status
    assert greeting(client).status_code == status  # and stays so


THEME = {"output": "city.title", "outputs": {"id": "city", "property": "title"},
         "inputs": [{"id": "city", "property": "children", "value": "NYC"}],
         "changedPropIds": ["city.children"], "state": []}


def test_user_data_saved_by_another_worker_is_read_at_the_next_request(make_app, store_url):
    app = make_app(session_store=store_url)

    @app.callback(Output("city", "title"), Input("city", "children"))
    def theme(_):
        return str(auth.get_user_data().get("theme"))

    client = client_of(app)
    sign_in(client, "alice")
    for _ in range(ADMITTED_TIMES):
        assert client.post("/_dash-update-component", json=THEME).get_json()["response"]["city"]["title"] == "None"
    in_another_worker(store_url, 'for r in store.list_sessions("alice"): store.update(r.key, {"user_data": {"theme": "dark"}})')
    assert client.post("/_dash-update-component", json=THEME).get_json()["response"]["city"]["title"] == "dark"


def test_requests_within_the_idle_timeout_keep_the_session_alive(make_app, monkeypatch):
    """The idle timer is written every tenth of the idle timeout (12 s here) by a request, even
    when the requests in between are admitted from memory: without that, the session would end
    120 s after sign-in however busy its page."""
    client = client_of(make_app(session_idle_timeout=120))
    sign_in(client, "alice")
    start = time.time()
    for second in range(0, 400, 5):
        monkeypatch.setattr(time, "time", lambda s=second: start + s)
        assert greeting(client).status_code == 200, f"refused {second} s after sign-in"
    monkeypatch.setattr(time, "time", lambda: start + 400 + 121)
    assert greeting(client).status_code == 401


def test_the_session_ends_at_its_max_age_however_often_it_was_admitted(make_app, monkeypatch):
    client = client_of(make_app(session_max_age=300))
    sign_in(client, "alice")
    start = time.time()
    for second in range(0, 300, 3):
        monkeypatch.setattr(time, "time", lambda s=second: start + s)
        assert greeting(client).status_code == 200
    monkeypatch.setattr(time, "time", lambda: start + 300)
    assert greeting(client).status_code == 401


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_an_authorization_header_counts_over_an_admitted_cookie(make_app):
    client = client_of(make_app())
    sign_in(client, "alice")
    admitted_many_times(client)
    assert greeting(client, Authorization=basic("alice", "not-her-password")).status_code == 401
    assert greeting(client, Authorization=basic("bob", PASSWORDS["bob"])).status_code == 403
    assert greeting(client).status_code == 200


def test_failures_counted_by_another_worker_throttle_a_script_at_its_next_request(make_app, store_url):
    """A script sends its right password on every request; after the first, its password and the
    throttle's counts are known from memory (on FastAPI and Quart it is answered on the event
    loop). Another worker counting the account's limit of failures refuses it at the very next
    request, and clearing them lets it in at the next one."""
    client = client_of(make_app(session_store=store_url))
    right = basic("alice", PASSWORDS["alice"])
    for _ in range(ADMITTED_TIMES):
        assert greeting(client, Authorization=right).status_code == 200
    in_another_worker(store_url, f'for _ in range({PER_ACCOUNT}): store.add_failure("account:alice", 900)')
    refused = greeting(client, Authorization=right)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    in_another_worker(store_url, 'store.clear_failures("account:alice")')
    assert greeting(client, Authorization=right).status_code == 200


def test_is_authorized_hooks_decide_every_basic_header_request(make_app):
    """The app's hooks are the app's code, which may wait: they still run for every request with
    an Authorization header, whose password check is otherwise answered from memory."""
    app = make_app()
    banned: set[str] = set()

    @auth.is_authorized_hook
    def not_banned(data: dict) -> bool:
        return data["username"] not in banned

    try:
        client = client_of(app)
        right = basic("alice", PASSWORDS["alice"])
        for _ in range(ADMITTED_TIMES):
            assert greeting(client, Authorization=right).status_code == 200
        banned.add("alice")
        assert greeting(client, Authorization=right).status_code == 401
    finally:
        from dash_enterprise_auth.protection import _global_hooks
        _global_hooks.remove(not_banned)


def test_a_refused_request_is_never_remembered(make_app):
    """bob is signed in but outside the allowed group: every request is decided, and refused."""
    client = client_of(make_app())
    sign_in(client, "bob")
    for _ in range(ADMITTED_TIMES):
        assert greeting(client).status_code == 403


def test_what_a_process_remembers_stays_bounded_whatever_it_is_sent(make_app):
    """Signed in, a client can vary its Cookie header and paths at will: each variation is
    admitted by the whole check, and the memory kept of them stays within fixed bounds."""
    app = make_app()
    client = jarless_client(app)
    signer = client_of(app)
    sign_in(signer, "alice")
    session = f"{COOKIE_NAME}={signer.get_cookie(COOKIE_NAME).value}"
    for i in range(ADMISSIONS_MAX + 100):
        assert client.post("/_dash-update-component", json=UPDATE_GREETING,
                           headers={"Cookie": f"{session}; n={i}"}).status_code == 200
    for i in range(PATHS_MAX + 10):
        assert client.get(f"/assets/missing-{i}.css", headers={"Cookie": session}).status_code == 404
    long_path = "/assets/" + "x" * PATH_MAX_LENGTH
    assert client.get(long_path, headers={"Cookie": session}).status_code == 404
    long_cookie = f"{session}; pad={'p' * COOKIE_HEADER_MAX_LENGTH}"
    assert client.post("/_dash-update-component", json=UPDATE_GREETING, headers={"Cookie": long_cookie}).status_code == 200
    admitted = installed_on(app.server).admissions._admitted
    assert 0 < len(admitted) <= ADMISSIONS_MAX
    assert all(len(a.paths) <= PATHS_MAX and all(len(p) <= PATH_MAX_LENGTH for p in a.paths)
               for a in admitted.values())
    assert not any(len(key[0]) > COOKIE_HEADER_MAX_LENGTH for key in admitted)


def test_the_event_loop_never_connects_the_change_channel(make_app, redis_server, monkeypatch):
    """An admitted request checks the Redis change channel; when the channel must be connected
    again (here: cut by Redis), that connect may wait, so on FastAPI and Quart it happens on the
    guard's thread, never on the event loop."""
    import threading

    from dash_enterprise_auth.stores import redis_channel

    redis.Redis.from_url(redis_server.url).flushdb()
    app = make_app(session_store=redis_server.url)
    client = client_of(app)
    sign_in(client, "alice")
    admitted_many_times(client)
    threads: list[str] = []
    subscribe = redis_channel.ChannelMarks._subscribe

    def recorded(self, now):
        threads.append(threading.current_thread().name)
        return subscribe(self, now)
    monkeypatch.setattr(redis_channel.ChannelMarks, "_subscribe", recorded)
    monkeypatch.setattr(redis_channel, "RETRY_EVERY", 0.05)
    redis.Redis.from_url(redis_server.url).client_kill_filter(_type="pubsub")
    for _ in range(10):  # the first request after each pause finds the channel due to be connected
        assert greeting(client).status_code == 200
        time.sleep(0.1)
    assert threads, "the channel was never connected again"
    if not isinstance(app.server, flask.Flask):
        assert all(name.startswith("dash-auth-guard") for name in threads), threads
