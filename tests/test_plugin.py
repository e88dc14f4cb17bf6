"""Dash >= 3 picks the package up through the dash_hooks entry point: no code change."""
from __future__ import annotations

import os
import subprocess
import sys

from .servers.app_server import ROOT

PROBE = """
import dash, logging
logging.basicConfig(level=logging.INFO)
from dash import html
app = dash.Dash(__name__)
app.layout = html.Div("secret")
r = app.server.test_client().get("/_dash-layout")
print("STATUS", r.status_code)
"""


def run(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DASH_AUTH_")}
    return subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_unchanged_app_is_protected_when_the_connector_is_set(tmp_path):
    result = run({"DASH_AUTH_CONNECTOR": "basic", "DASH_AUTH_USERS_FILE": "examples/demo-users.json",
                  "DASH_AUTH_PRIVACY": "authorized", "DASH_AUTH_SECRET_KEY": "k" * 40,
                  "DASH_AUTH_SESSION_STORE": f"sqlite:///{tmp_path}/s.sqlite3"})
    assert "STATUS 401" in result.stdout, result.stderr


def test_without_the_connector_the_plugin_only_logs_one_line():
    result = run({})
    assert "STATUS 200" in result.stdout, result.stderr
    assert result.stderr.count("dash-enterprise-auth") == 1
    assert "DASH_AUTH_CONNECTOR is not set" in result.stderr


def test_a_bad_setting_stops_start_up_with_the_variable_on_the_last_line(tmp_path):
    result = run({"DASH_AUTH_CONNECTOR": "basic", "DASH_AUTH_USERS_FILE": "examples/demo-users.json",
                  "DASH_AUTH_PRIVACY": "everyone", "DASH_AUTH_SECRET_KEY": "k" * 40})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "DASH_AUTH_PRIVACY='everyone' is not valid: use one of unauthorized, authorized, restricted" in last


def test_a_typo_in_a_variable_name_is_warned_about(tmp_path):
    result = run({"DASH_AUTH_CONNECTOR": "basic", "DASH_AUTH_USERS_FILE": "examples/demo-users.json",
                  "DASH_AUTH_PRIVACY": "authorized", "DASH_AUTH_SECRET_KEY": "k" * 40,
                  "DASH_AUTH_ALOWED_GROUPS": "x", "DASH_AUTH_SESSION_STORE": f"sqlite:///{tmp_path}/s.sqlite3"})
    assert "unknown setting DASH_AUTH_ALOWED_GROUPS is ignored; did you mean DASH_AUTH_ALLOWED_GROUPS?" in result.stderr
