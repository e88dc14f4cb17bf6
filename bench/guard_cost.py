"""Microseconds the guard adds to one request on each Dash backend, measured in one process.

The example app is protected (SQLite store) and a session is started for
alice. Rounds of ``GET /_dash-layout`` with her cookie alternate between the
app as installed and the same app with the guard taken out (Flask: its
``before_request`` function removed; FastAPI and Quart: the ASGI app inside
the guard's middleware called directly), so both see the same process,
cookie, caches and routes: the difference is the guard (cookie, signature,
session lookup, privacy decision, the viewer for callbacks). Requests go
straight to the WSGI or ASGI callable, with no HTTP server or test client
around them, so the baseline is the app's own work. Times are the serving
process's CPU time, so a busy machine changes them less than it would
wall-clock times; paired rounds cancel drift.

    python bench/guard_cost.py [--backends flask,fastapi,quart] [-n 3000] [--rounds 7]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
PATH = "/_dash-layout"
HOST = "127.0.0.1:8050"


def measure(backend: str, n: int, rounds: int) -> tuple[list[float], list[float]]:
    """(with the guard, without) CPU us per request for each round, in this process."""
    sys.path.insert(0, str(ROOT))
    tmp = tempfile.mkdtemp(prefix="dash-auth-guard-cost-")
    os.environ.update({
        "DASH_BACKEND": backend, "DASH_AUTH_CONNECTOR": "basic",
        "DASH_AUTH_USERS_FILE": str(ROOT / "examples" / "demo-users.json"), "DASH_AUTH_ALLOWED_GROUPS": "analysts",
        "DASH_AUTH_SECRET_KEY": "x" * 48, "DASH_AUTH_SESSION_STORE": f"sqlite:///{tmp}/s.sqlite3",
    })
    from bench.backend_app import server
    from dash_enterprise_auth.connectors import Identity
    from dash_enterprise_auth.viewer import _process_protection as protection

    cookie = "dash-auth-session=" + protection.start_session(Identity("alice", groups=("analysts",)))
    serve = _flask(server, cookie) if backend == "flask" else _asgi(server, cookie)
    if serve(True, 1) != 200 or serve(False, 1) != 200:
        raise SystemExit(f"{backend}: the signed-in request was not answered 200")

    def round_us(guarded: bool) -> float:
        start = time.process_time()  # CPU time of this process (FastAPI runs sync views on threads)
        serve(guarded, n)
        return (time.process_time() - start) / n * 1e6

    serve(True, 300)  # warm caches both ways
    serve(False, 300)
    with_guard, without = [], []
    for _ in range(rounds):
        with_guard.append(round_us(True))
        without.append(round_us(False))
    return with_guard, without


def _flask(server: Any, cookie: str) -> Callable[[bool, int], int]:
    hooks = server.before_request_funcs[None]
    guard = hooks[0]
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": PATH, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8050", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": HOST, "HTTP_ACCEPT": "application/json", "HTTP_COOKIE": cookie,
    }
    status: list[str] = []

    def serve(guarded: bool, count: int) -> int:
        """``count`` requests; the last one's status."""
        if not guarded:
            hooks.remove(guard)
        try:
            for _ in range(count):
                body = server.wsgi_app({**environ, "wsgi.input": io.BytesIO()},
                                       lambda s, h, e=None: status.append(s))
                b"".join(body)
        finally:
            if not guarded:
                hooks.insert(0, guard)
        return int(status[-1].split()[0])
    return serve


def _asgi(server: Any, cookie: str) -> Callable[[bool, int], int]:
    loop = asyncio.new_event_loop()
    if hasattr(server, "build_middleware_stack"):  # FastAPI
        server.middleware_stack = server.build_middleware_stack()
        guarded_app = server.middleware_stack
    else:  # Quart
        loop.run_until_complete(server.startup())
        guarded_app = server.asgi_app
    inner = guarded_app.app
    headers = [(b"host", HOST.encode()), (b"accept", b"application/json"), (b"cookie", cookie.encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8050)}
    status: list[int] = []

    def receiver() -> Callable[[], Any]:
        sent = False

        async def receive() -> dict:  # the request's (empty) body, then nothing until the server gives up
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}
        return receive

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    async def requests(app: Any, count: int) -> None:
        for _ in range(count):
            await app(dict(scope), receiver(), send)

    def serve(guarded: bool, count: int) -> int:
        """``count`` requests, one after another on one event loop; the last one's status."""
        loop.run_until_complete(requests(guarded_app if guarded else inner, count))
        return status[-1]
    return serve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="flask,fastapi,quart")
    parser.add_argument("-n", type=int, default=3000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process measuring one backend
    args = parser.parse_args()
    if args.one:
        with_guard, without = measure(args.one, args.n, args.rounds)
        print(" ".join(f"{w:.3f}:{wo:.3f}" for w, wo in zip(with_guard, without)))
        return 0

    print(f"GET {PATH} straight to the app's WSGI/ASGI callable, {args.n} requests x {args.rounds} alternating"
          " rounds; median CPU time of the process per request")
    print(f"{'backend':<9}{'without guard':>15}{'with guard':>12}{'guard cost':>12}   paired rounds (us)")
    for backend in args.backends.split(","):
        # One process per backend: a process serves one Dash app, as in production.
        done = subprocess.run([sys.executable, __file__, "--one", backend, "-n", str(args.n),
                               "--rounds", str(args.rounds)], capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            print(f"{backend:<9} failed:\n{done.stdout}{done.stderr}")
            return 1
        pairs = [tuple(map(float, p.split(":"))) for p in done.stdout.split()[-args.rounds:]]
        costs = sorted(w - wo for w, wo in pairs)
        print(f"{backend:<9}{statistics.median(wo for _, wo in pairs):>15.1f}"
              f"{statistics.median(w for w, _ in pairs):>12.1f}{statistics.median(costs):>12.1f}   "
              + ", ".join(f"{c:.0f}" for c in costs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
