"""The session store fails and comes back: clear 503s, nobody let in, no restart needed."""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest
import redis
import requests

from .apps.notes_app import save_request
from .conftest import UPDATE_GREETING
from .servers.app_server import ROOT, start_app
from .servers.redis_server import RedisServer


def app_env(store: str) -> dict[str, str]:
    return {
        "DASH_AUTH_CONNECTOR": "basic", "DASH_AUTH_USERS_FILE": str(ROOT / "examples/demo-users.json"),
        "DASH_AUTH_ALLOWED_GROUPS": "analysts", "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
        "DASH_AUTH_SESSION_STORE": store,
    }


def sign_in(url: str, session: requests.Session | None = None) -> tuple[requests.Session, requests.Response]:
    session = session or requests.Session()
    response = session.post(url + "/_dash-auth/login", data={"username": "alice", "password": "wonderland"},
                            allow_redirects=False, timeout=15)
    return session, response


def page(session: requests.Session, url: str) -> requests.Response:
    return session.get(url + "/", headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"},
                       allow_redirects=False, timeout=15)


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text[:300]
    assert "Traceback" not in response.text and "Sales dashboard" in response.text or response.headers[
        "Content-Type"].startswith("application/json")


def test_redis_going_away_fails_closed_and_recovers_without_restart(tmp_path):
    redis_server = RedisServer(tmp_path / "redis-data")
    redis_server.folder.mkdir()
    redis_server.start()
    app = start_app("examples.app:server", app_env(redis_server.url), tmp_path / "app.log")
    try:
        session, response = sign_in(app.url)
        assert response.status_code == 302 and page(session, app.url).status_code == 200

        redis_server.stop()
        down = page(session, app.url)
        assert_unavailable(down)
        assert "unavailable" in down.text
        update = session.post(app.url + "/_dash-update-component", json=UPDATE_GREETING, timeout=15)
        assert update.status_code == 503 and update.json()["error"]
        anonymous = requests.get(app.url + "/_dash-layout", timeout=15)
        assert anonymous.status_code == 401  # no cookie: nothing to look up, and never the app
        assert sign_in(app.url)[1].status_code == 503
        assert requests.get(app.url + "/_dash-auth/health", timeout=15).status_code == 503

        redis_server.start()  # same port, empty: earlier sessions are gone
        assert page(session, app.url).status_code == 302
        again, response = sign_in(app.url)
        assert response.status_code == 302 and page(again, app.url).status_code == 200
        assert requests.get(app.url + "/_dash-auth/health", timeout=15).status_code == 200
        assert " 500 " not in app.log() and "Traceback" not in app.log()
    finally:
        app.stop()
        redis_server.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs, so the disk can really fill up or turn read-only (needs root, as CI has)."""
    assert os.geteuid() == 0, "this test mounts a small tmpfs and needs root (CI runs as root)"
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk says it is full."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_full_disk_under_sqlite_gives_a_clear_503_and_recovers(tmp_path, small_disk):
    app = start_app("examples.app:server", app_env(f"sqlite:///{small_disk}/sessions.sqlite3"),
                    tmp_path / "app.log")
    try:
        filler = fill(small_disk)
        session, response = sign_in(app.url)
        assert response.status_code == 503 and "unavailable" in response.text
        assert page(session, app.url).status_code in (302, 503)  # never the app
        filler.unlink()
        session, response = sign_in(app.url)
        assert response.status_code == 302 and page(session, app.url).status_code == 200
        assert "Traceback" not in app.log()
    finally:
        app.stop()


def save_note(session: requests.Session, url: str, note: str) -> requests.Response:
    return session.post(url + "/_dash-update-component", json=save_request(note), timeout=15)


def assert_refused_write(app, session: requests.Session, reason: str) -> None:
    """A callback whose set_user_data() the store refuses answers the guard's 503 JSON; the log says
    why in one line (plus the audit event), without a traceback."""
    refused = save_note(session, app.url, "x" * 200_000)
    assert refused.status_code == 503, refused.text[:300]
    assert "unavailable" in refused.json()["error"]
    lines = [line for line in app.log().splitlines() if reason in line]
    assert len(lines) == 2 and "ERROR" in lines[0] and '"event":"service_unavailable"' in lines[1], lines
    assert "Traceback" not in app.log() and " 500 " not in app.log()


def test_a_store_refusing_a_write_inside_a_callback_gives_503_and_keeps_the_old_data_sqlite(tmp_path, small_disk):
    app = start_app("tests.apps.notes_app:server", app_env(f"sqlite:///{small_disk}/sessions.sqlite3"),
                    tmp_path / "app.log")
    try:
        session, _ = sign_in(app.url)
        assert save_note(session, app.url, "before").status_code == 200
        filler = fill(small_disk)
        assert_refused_write(app, session, "database or disk is full")
        filler.unlink()
        assert session.get(app.url + "/note", timeout=15).json() == {"note": "before"}  # nothing half-stored
        assert save_note(session, app.url, "after").status_code == 200
    finally:
        app.stop()


def test_a_store_refusing_a_write_inside_a_callback_gives_503_and_keeps_the_old_data_redis(tmp_path):
    redis_server = RedisServer(tmp_path / "redis-data")
    redis_server.folder.mkdir()
    redis_server.start()
    app = start_app("tests.apps.notes_app:server", app_env(redis_server.url), tmp_path / "app.log")
    admin = redis.Redis.from_url(redis_server.url)
    try:
        session, _ = sign_in(app.url)
        assert save_note(session, app.url, "before").status_code == 200
        admin.replicaof("127.0.0.1", "9")  # after a failover the app talks to a read-only replica
        assert_refused_write(app, session, "read only replica")
        admin.replicaof("NO", "ONE")
        assert session.get(app.url + "/note", timeout=15).json() == {"note": "before"}
        assert save_note(session, app.url, "after").status_code == 200
    finally:
        admin.close()
        app.stop()
        redis_server.stop()


def test_read_only_disk_under_sqlite_stops_start_up_with_a_clear_line(tmp_path, small_disk):
    store = f"sqlite:///{small_disk}/sessions.sqlite3"
    first = start_app("examples.app:server", app_env(store), tmp_path / "first.log")
    first.stop()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(RuntimeError) as failed:
        start_app("examples.app:server", app_env(store), tmp_path / "second.log")
    assert "DASH_AUTH_SESSION_STORE=sqlite:///" in str(failed.value)
    assert "Read-only file system" in str(failed.value) or "readonly" in str(failed.value)
