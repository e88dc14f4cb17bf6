"""The command line: users file, hashes, check, sessions."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from dash_enterprise_auth.passwords import verify_password

from .servers.app_server import ROOT


def cli(*args: str, stdin: str = "", env: dict[str, str] | None = None, cwd=ROOT) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DASH_AUTH_")}
    return subprocess.run([sys.executable, "-m", "dash_enterprise_auth", *args], input=stdin,
                          env={**clean, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_add_user_writes_a_private_file_with_a_slow_hash_and_groups(tmp_path):
    path = tmp_path / "users.json"
    result = cli("add-user", str(path), "dana", "--groups", "analysts, admins", "--email", "d@x.org",
                 stdin="s3cret pass\n")
    assert result.returncode == 0 and "added dana" in result.stdout
    entry = json.loads(path.read_text())["users"]["dana"]
    assert entry["groups"] == ["analysts", "admins"] and entry["email"] == "d@x.org"
    assert entry["password_hash"].startswith("$argon2id$") and "s3cret" not in path.read_text()
    assert verify_password(entry["password_hash"], "s3cret pass")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = cli("add-user", str(path), "dana", stdin="new\n")
    assert "updated dana" in again.stdout


def test_add_user_refuses_an_empty_password(tmp_path):
    result = cli("add-user", str(tmp_path / "u.json"), "x", stdin="\n")
    assert result.returncode != 0 and "empty" in result.stderr and not (tmp_path / "u.json").exists()


def test_hash_password_prints_an_argon2id_hash():
    result = cli("hash-password", stdin="pw\n")
    assert result.returncode == 0 and verify_password(result.stdout.strip(), "pw")


def test_check_reports_one_line_per_item_and_fails_on_a_broken_setting(tmp_path):
    env = {"DASH_AUTH_CONNECTOR": "basic", "DASH_AUTH_USERS_FILE": "examples/demo-users.json",
           "DASH_AUTH_ALLOWED_GROUPS": "analysts", "DASH_AUTH_SECRET_KEY": "k" * 40,
           "DASH_AUTH_SESSION_STORE": f"sqlite:///{tmp_path}/s.sqlite3"}
    ok = cli("check", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok   session store" in ok.stdout and "2 user(s)" in ok.stdout
    broken = cli("check", env={**env, "DASH_AUTH_USERS_FILE": str(tmp_path / "missing.json")})
    assert broken.returncode == 1 and "FAIL" in broken.stdout and "missing.json" in broken.stdout


def test_check_says_how_often_and_what_re_validation_asks(tmp_path):
    env = {"DASH_AUTH_CONNECTOR": "basic", "DASH_AUTH_USERS_FILE": "examples/demo-users.json",
           "DASH_AUTH_ALLOWED_GROUPS": "analysts", "DASH_AUTH_SECRET_KEY": "k" * 40,
           "DASH_AUTH_SESSION_STORE": f"sqlite:///{tmp_path}/s.sqlite3"}
    assert "ok   re-validation: every 300 s per session: the users file" in cli("check", env=env).stdout
    off = cli("check", env={**env, "DASH_AUTH_REVALIDATE_INTERVAL": "0"})
    assert "re-validation: off (DASH_AUTH_REVALIDATE_INTERVAL=0)" in off.stdout
    bad = cli("check", env={**env, "DASH_AUTH_REVALIDATE_INTERVAL": "-5"})
    assert bad.returncode == 1 and "DASH_AUTH_REVALIDATE_INTERVAL='-5' is not valid" in bad.stdout


def test_check_lists_who_may_open_each_page_of_a_multi_page_app(tmp_path):
    env = {"DASH_AUTH_CONNECTOR": "basic", "DASH_AUTH_USERS_FILE": str(ROOT / "examples/pages_app/users.json"),
           "DASH_AUTH_PRIVACY": "authorized",
           "DASH_AUTH_SECRET_KEY": "k" * 40, "DASH_AUTH_SESSION_STORE": f"sqlite:///{tmp_path}/s.sqlite3"}
    listed = cli("check", "--app", "app:server", env=env, cwd=ROOT / "examples/pages_app")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert listed.stdout.splitlines()[-4:] == [
        "ok   page Home (/): the app-wide rule: any signed-in person",
        "ok   page Finance (/finance): only group finance",
        "ok   page HR (/hr/<person>): only user carol",
        "ok   page About (/about): public: anyone, signed in or not",
    ]
    bad = cli("check", "--app", "app:server", env={**env, "PAGES_FOLDER": "typo_pages"},
              cwd=ROOT / "tests/apps/marked_pages")
    assert bad.returncode == 1
    assert "FAIL app app:server: page 'typo_pages.vault': dash.register_page got the unknown keyword " \
           "allowed_group=['finance'] (did you mean allowed_groups?)" in bad.stdout
    unlisted = cli("check", env=env, cwd=ROOT / "examples/pages_app")
    assert "give --app MODULE:VARIABLE" in unlisted.stdout


def test_sessions_list_and_revoke(make_app, tmp_path):
    from dash_enterprise_auth.testing import signed_in_client

    app = make_app()
    client = signed_in_client(app, "alice", groups=["analysts"])
    signed_in_client(app, "bob")
    env = {"DASH_AUTH_SESSION_STORE": f"sqlite:///{tmp_path}/sessions.sqlite3"}
    listed = cli("sessions", "list", env=env)
    assert listed.stdout.count("\n") == 2 and "alice" in listed.stdout and "bob" in listed.stdout
    revoked = cli("sessions", "revoke", "alice", env=env)
    assert "revoked 1 session(s) of alice" in revoked.stdout
    assert client.get("/_dash-layout").status_code == 401
