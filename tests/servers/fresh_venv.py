"""Fresh virtual environments with this checkout installed the way the README tells users to.

``build_wheelhouse`` builds a wheel of the working tree (``pip wheel --no-deps``, from a
copy, so no ``build/`` lands in the checkout), then ``pip wheel`` of that wheel with every
extra: one resolution, one download and one build (gssapi and krb5 compile from source) per
test session. ``make_venv`` creates a venv with ``python -m venv`` (no system site packages)
and runs the README's ``pip install 'dash-enterprise-auth[extra]'`` in it with
``--no-index --find-links <wheelhouse>``: the resolver sees the same requirement a user's
pip sees, only the wheels come from disk. The package goes in as a normal wheel, never
editable, so what runs is what users get.

The venvs are made ``--without-pip``: this process's pip installs into them with
``pip --python <venv python>``, which runs pip under that interpreter (the same resolver
and install as ``<venv>/bin/pip``), and saves three seconds of ensurepip per venv.

``APP_SCRIPT`` is the app each venv runs: a plain Dash app as the README writes it, with
nothing about the connector in the code (Dash >= 3 protects it through the package's
``dash_hooks`` plugin once ``DASH_AUTH_CONNECTOR`` is set), served by ``app.run`` (Flask's
server; gunicorn is no dependency of the package). Its callback answers, as JSON, who the
viewer is and whether the sign-in got a Kerberos ticket.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .app_server import ROOT, RunningApp, _wait_until_ready, free_port

PACKAGE = "dash-enterprise-auth"
EXTRAS = ("ldap", "saml", "oidc", "plotly", "redis", "kerberos")

#: Environment variables never passed on to a fresh venv's processes: anything that could
#: put the checkout or the test venv on sys.path, or configure the app behind the test's back.
#: (PIP_* stay: they may be how this machine reaches its package index.)
_SCRUBBED_PREFIXES = ("PYTHON", "VIRTUAL_ENV", "DASH_", "PLOTLY_")
#: What the copy of the checkout that the wheel is built from leaves out (never read by the build).
_NOT_BUILT = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "node_modules",
                                    ".pytest_cache", "instance", "*.sqlite3*", "artifacts", ".demo-state")

APP_SCRIPT = '''\
"""A Dash app protected by dash-enterprise-auth through settings only (DASH_AUTH_* variables)."""
import json
import sys

import dash
from dash import Input, Output, html

import dash_enterprise_auth as auth

app = dash.Dash(__name__, title="Fresh install")
app.layout = html.Div([html.Div(id="greeting"), html.Div("NYC", id="city"), auth.create_logout_button()])


@app.callback(Output("greeting", "children"), Input("city", "children"))
def greet(_):
    data = auth.get_user_data()
    try:
        ticket = len(auth.get_kerberos_ticket_cache())
    except auth.KerberosTicketUnavailable as exc:
        ticket = str(exc)
    return json.dumps({"username": auth.get_username(), "groups": data.get("groups"),
                       "connector": data.get("connector"), "kerberos_ticket_bytes": ticket,
                       "kerberos_ticket_expiry": data.get("kerberos_ticket_expiry")})


if __name__ == "__main__":
    print("dash_enterprise_auth from", auth.__file__, flush=True)
    app.run(host="127.0.0.1", port=int(sys.argv[1]), debug=False)
'''


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without PYTHON*, VIRTUAL_ENV, DASH_* and PLOTLY_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    return {**env, "PYTHONUNBUFFERED": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def _run(args: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}): {' '.join(args)}\n{result.stdout[-6000:]}")
    return result


def _pip(*args: str, python: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """This process's pip (with the machine's pip configuration and cache), optionally for another venv."""
    target = ["--python", python] if python else []
    return _run([sys.executable, "-m", "pip", *target, *args], "pip " + args[0], env=clean_env(), timeout=timeout)


def build_wheelhouse(folder: Path) -> Path:
    """A folder with a wheel of this checkout and of everything its extras need; returns it."""
    source, dist, wheelhouse = folder / "source", folder / "dist", folder / "wheelhouse"
    shutil.copytree(ROOT, source, ignore=_NOT_BUILT, symlinks=True)
    _pip("wheel", "--quiet", "--no-deps", str(source), "--wheel-dir", str(dist))
    (wheel,) = dist.glob("dash_enterprise_auth-*.whl")
    _pip("wheel", "--quiet", "--wheel-dir", str(wheelhouse), f"{PACKAGE}[{','.join(EXTRAS)}] @ {wheel.as_uri()}")
    return wheelhouse


@dataclass
class FreshVenv:
    folder: Path
    requirement: str

    @property
    def python(self) -> str:
        return str(self.folder / "bin" / "python")

    def run(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        """``<venv>/bin/python *args`` with only ``env`` as settings; output and errors together in stdout."""
        return subprocess.run([self.python, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=clean_env(**(env or {})),
                              cwd=cwd or self.folder, timeout=timeout)

    def app_script(self) -> Path:
        path = self.folder / "app" / "app.py"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            path.write_text(APP_SCRIPT)
        return path

    def start_up_failure(self, env: dict[str, str], log_path: Path) -> str | None:
        """Start the app script with ``env``: its output if it exits, None if it starts (it is then stopped)."""
        try:
            self.start_app(env, log_path).stop()
        except RuntimeError:
            return Path(log_path).read_text(errors="replace")
        return None

    def start_app(self, env: dict[str, str], log_path: Path) -> RunningApp:
        """Start the app script with ``env`` as its settings; returns once /_dash-auth/health answers."""
        script = self.app_script()
        port = free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen([self.python, str(script), str(port)], stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, env=clean_env(**env), cwd=script.parent)
        app = RunningApp(f"http://127.0.0.1:{port}", process, Path(log_path))
        try:
            _wait_until_ready(app, "/_dash-auth/health")
        except BaseException:
            app.stop()
            raise
        return app


def make_venv(folder: Path, wheelhouse: Path, extra: str | None) -> FreshVenv:
    """``python -m venv`` in ``folder``, then ``pip install 'dash-enterprise-auth[extra]'`` from the wheelhouse."""
    requirement = f"{PACKAGE}[{extra}]" if extra else PACKAGE
    _run([sys.executable, "-m", "venv", "--without-pip", str(folder)], "python -m venv", env=clean_env())
    venv = FreshVenv(folder, requirement)
    _pip("install", "--quiet", "--no-index", "--find-links", str(wheelhouse), requirement, python=venv.python)
    return venv
