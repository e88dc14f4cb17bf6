"""The basic connector's cache of verified credentials: HTTP Basic on every request costs one
Argon2id verification, and no edit of the users file is ever answered from the cache."""
from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from dash_enterprise_auth.connectors.basic import BasicConnector, read_users_file
from dash_enterprise_auth.errors import InvalidCredentials
from dash_enterprise_auth.install import installed_on
from dash_enterprise_auth.users_file import add_user

from .clients import client_of, make_app_on_every_backend  # noqa: F401  (a fixture: every test on every backend)
from .conftest import PASSWORDS


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


@pytest.fixture(autouse=True)
def _no_app_context_left_behind() -> Any:
    """A Flask test-client request sets Dash's app_context in this thread and leaves it set, which
    would make dash.get_app() in later test modules (test_api's logout button) find our app."""
    from dash._get_app import app_context

    token = app_context.set(None)
    yield
    app_context.reset(token)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts calls of argon2's real PasswordHasher.verify (it still runs and decides)."""
    calls: list[str] = []
    real = PasswordHasher.verify

    def counting(self: PasswordHasher, stored_hash: Any, password: Any) -> bool:
        calls.append(str(stored_hash))
        return real(self, stored_hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return calls


@pytest.fixture
def own_users(tmp_path: Path, users_file: Path) -> Path:
    """A users file of this test's own, to edit."""
    path = tmp_path / "own-users.json"
    shutil.copy(users_file, path)
    return path


def connector_of(app: Any) -> BasicConnector:
    protection = installed_on(app.server)
    assert protection is not None and isinstance(protection.connector, BasicConnector)
    return protection.connector


def test_a_second_header_request_does_not_verify_argon2_again(make_app, own_users, verifications):
    client = client_of(make_app(users_file=str(own_users)))
    for _ in range(5):
        assert client.get("/_dash-layout", headers=basic("alice", "wonderland")).status_code == 200
    assert len(verifications) == 1


def test_a_changed_password_refuses_the_old_one_on_the_next_request(make_app, own_users, verifications):
    client = client_of(make_app(users_file=str(own_users)))
    assert client.get("/_dash-layout", headers=basic("alice", "wonderland")).status_code == 200
    add_user(own_users, "alice", "looking-glass", ["analysts"])
    assert client.get("/_dash-layout", headers=basic("alice", "wonderland")).status_code == 401
    assert client.get("/_dash-layout", headers=basic("alice", "looking-glass")).status_code == 200


def test_a_removed_user_is_refused_at_once_even_after_an_in_place_edit(make_app, own_users):
    client = client_of(make_app(users_file=str(own_users)))
    assert client.get("/_dash-layout", headers=basic("carol", "c4r0l-secret")).status_code == 200
    before = os.stat(own_users)
    users = read_users_file(own_users)
    del users["carol"]
    with open(own_users, "w") as out:  # by hand, in place: same inode
        json.dump({"users": users}, out)
    os.utime(own_users, ns=(before.st_atime_ns, before.st_mtime_ns))  # even with the mtime set back
    assert client.get("/_dash-layout", headers=basic("carol", "c4r0l-secret")).status_code == 401


def test_same_size_in_place_edit_with_the_old_mtime_is_read_again(own_users):
    """A password changed in place, to a hash of the same length, with the mtime restored:
    the size and mtime alone would not see it; the ctime does."""
    connector = BasicConnector(own_users)
    assert connector.authenticate("alice", "wonderland").username == "alice"
    before = os.stat(own_users)
    data = json.loads(own_users.read_text())
    data["users"]["alice"]["password_hash"] = data["users"]["bob"]["password_hash"]  # alice now has bob's
    text = json.dumps(data)
    assert len(text.encode()) == before.st_size
    with open(own_users, "w") as out:
        out.write(text)
    os.utime(own_users, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(InvalidCredentials):
        connector.authenticate("alice", "wonderland")
    assert connector.authenticate("alice", PASSWORDS["bob"]).username == "alice"


def test_changed_groups_show_at_once(make_app, own_users):
    app = make_app(users_file=str(own_users))
    client = client_of(app)
    assert client.get("/_dash-layout", headers=basic("alice", "wonderland")).status_code == 200
    add_user(own_users, "alice", "wonderland", ["contractors"])  # out of the allowed group
    assert client.get("/_dash-layout", headers=basic("alice", "wonderland")).status_code == 403
    add_user(own_users, "alice", "wonderland", ["analysts", "admins"])
    assert client.get("/_dash-layout", headers=basic("alice", "wonderland")).status_code == 200
    identity = connector_of(app).authenticate("alice", "wonderland")
    assert identity.groups == ("analysts", "admins")


def test_get_user_data_shows_changed_groups_on_the_next_request(tmp_path, own_users, secret_key):
    import flask

    import dash_enterprise_auth as auth

    server = flask.Flask(__name__)

    @server.route("/groups")
    def groups() -> Any:
        return {"groups": auth.get_user_data()["groups"]}

    auth.protect(server, connector="basic", users_file=str(own_users), privacy="authorized",
                 secret_key=secret_key, session_store=f"sqlite:///{tmp_path}/sessions.sqlite3")
    client = server.test_client()
    assert client.get("/groups", headers=basic("alice", "wonderland")).get_json() == {"groups": ["analysts"]}
    add_user(own_users, "alice", "wonderland", ["auditors"])
    assert client.get("/groups", headers=basic("alice", "wonderland")).get_json() == {"groups": ["auditors"]}


def test_wrong_passwords_are_verified_in_full_and_throttled_even_when_the_right_one_is_cached(
        make_app, own_users, verifications):
    client = client_of(make_app(users_file=str(own_users)))
    right, wrong = basic("carol", "c4r0l-secret"), basic("carol", "nope")
    assert client.get("/_dash-layout", headers=right).status_code == 200
    assert client.get("/_dash-layout", headers=right).status_code == 200
    assert len(verifications) == 1
    for _ in range(10):
        assert client.get("/_dash-layout", headers=wrong).status_code == 401
    assert len(verifications) == 11  # every wrong password went through Argon2id
    response = client.get("/_dash-layout", headers=right)
    assert response.status_code == 429 and "Retry-After" in response.headers


def test_the_cache_never_holds_the_password(make_app, own_users):
    app = make_app(users_file=str(own_users))
    client = client_of(app)
    assert client.get("/_dash-layout", headers=basic("carol", "c4r0l-secret")).status_code == 200
    entries = connector_of(app)._verified._entries
    assert len(entries) == 1
    for key, value in entries.items():
        assert isinstance(key, bytes) and len(key) == 32  # a MAC (keyed BLAKE2b)
        assert isinstance(value, float)  # its expiry
        assert b"c4r0l" not in key and b"carol" not in key
    stored = repr(vars(connector_of(app)._verified)).encode()
    assert b"c4r0l-secret" not in stored


def test_entries_expire_and_the_cache_is_bounded(own_users, verifications):
    connector = BasicConnector(own_users)
    now = [0.0]
    connector._verified._clock = lambda: now[0]
    connector._verified.max_entries = 2
    for name in ("alice", "bob", "carol"):
        connector.authenticate(name, PASSWORDS[name])
    assert len(connector._verified) == 2 and len(verifications) == 3
    connector.authenticate("carol", PASSWORDS["carol"])  # still cached
    assert len(verifications) == 3
    connector.authenticate("alice", PASSWORDS["alice"])  # the oldest went first
    assert len(verifications) == 4
    now[0] += connector._verified.ttl + 1
    connector.authenticate("alice", PASSWORDS["alice"])  # expired: verified again
    assert len(verifications) == 5


def test_under_gunicorn_every_worker_refuses_the_old_password_on_the_next_request(tmp_path, own_users):
    """Two workers, each with its own cache: after add-user changes alice's password, no request
    to either worker is answered from a copy made before."""
    import secrets

    import requests

    from .servers.app_server import start_app

    app = start_app("examples.app:server", {
        "DASH_AUTH_CONNECTOR": "basic",
        "DASH_AUTH_USERS_FILE": str(own_users),
        "DASH_AUTH_ALLOWED_GROUPS": "analysts",
        "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
        "DASH_AUTH_SESSION_STORE": f"sqlite:///{tmp_path}/sessions.sqlite3",
    }, tmp_path / "server.log")
    try:
        def status(password: str) -> int:
            return requests.get(app.url + "/_dash-layout", headers=basic("alice", password), timeout=30).status_code

        assert [status("wonderland") for _ in range(8)] == [200] * 8  # both workers have it cached
        add_user(own_users, "alice", "looking-glass", ["analysts"])
        assert [status("wonderland") for _ in range(8)] == [401] * 8
        assert [status("looking-glass") for _ in range(4)] == [200] * 4
    finally:
        app.stop()
