"""Runs a WSGI app under gunicorn on a free loopback port, as a deployment would.

Tests talk to it over real HTTP, so cookies, redirects, headers and worker
processes behave as they do in production.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen | None) -> None:
    """Ask a test server to stop (SIGTERM), kill it after 10 s, and always reap it."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_app(
    target: str,
    env: dict[str, str],
    log_path: Path,
    *,
    workers: int = 2,
    cwd: Path = ROOT,
    ready_path: str = "/_dash-auth/health",
    port: int | None = None,
    server: str = "gunicorn",
) -> RunningApp:
    """Start ``target`` (``module:variable``) with ``env`` on top of os.environ, under
    ``server``: gunicorn (WSGI: Flask), uvicorn or hypercorn (ASGI: FastAPI, Quart).

    ``port`` is for apps whose URL must be known before they start (registered at an
    identity provider). Returns once ``ready_path`` answers, or raises with the server's log.
    """
    port = port or free_port()
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "wb")
    command = {
        "gunicorn": ["gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "60"],
        "uvicorn": ["uvicorn", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        "hypercorn": ["hypercorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
    }[server]
    process = subprocess.Popen(
        [sys.executable, "-m", *command, target],
        cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
    )
    app = RunningApp(f"http://127.0.0.1:{port}", process, Path(log_path))
    try:
        _wait_until_ready(app, ready_path)
    except BaseException:
        app.stop()  # never leave a server behind
        raise
    return app


def _wait_until_ready(app: RunningApp, ready_path: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"app exited with {app.process.returncode}:\n{app.log()}")
        try:
            requests.get(app.url + ready_path, timeout=2)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise RuntimeError(f"app did not answer within {seconds:.0f} s:\n{app.log()}")
