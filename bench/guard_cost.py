"""The guard's own cost per request, in microseconds, without HTTP or gunicorn noise.

Times N ``GET /_dash-layout`` requests through Flask's test client on the
example app, once unprotected and once protected by this package (basic
connector, SQLite session store, signed-in client). The difference is what
the package adds to every request: cookie check, session lookup, group check.

Each measurement runs in a fresh subprocess, because Dash plugins and the
package's settings are process-wide; the two modes alternate for ``--rounds``
rounds so drift hits both. As with timeit, the best round of each mode is
compared: other work on the machine can only add time, never remove it.

Run from the repo root: ``python bench/guard_cost.py [-n 3000] [--rounds 5]``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parents[1]
USERS_FILE = ROOT / "examples" / "demo-users.json"
PATH = "/_dash-layout"


def build_client(mode: str, tmp: Path) -> FlaskClient:
    """The example app's Flask test client; for ``auth``, protected and signed in as alice."""
    import dash_enterprise_auth
    from examples.app import app

    if mode == "noauth":
        # the same cookie as the signed-in client, so the test client's cookie
        # handling costs the same in both modes and only the guard differs
        client = app.server.test_client()
        client.set_cookie("dash-auth-session", "x" * 87)
        return client
    dash_enterprise_auth.protect(
        app, connector="basic", users_file=str(USERS_FILE), allowed_groups=["analysts"],
        secret_key="x" * 40, session_store=f"sqlite:///{tmp}/sessions.sqlite3",
    )
    bare = app.server.test_client().get(PATH)
    if bare.status_code == 200:
        raise SystemExit("protect() left /_dash-layout open to anonymous requests")
    from dash_enterprise_auth.testing import signed_in_client

    return signed_in_client(app, "alice", groups=["analysts"])


def child(mode: str, n: int, warmup: int) -> None:
    """Measure one mode in this process and print one JSON line."""
    sys.path.insert(0, str(ROOT))
    # Settings come only from protect() keywords, never from the caller's shell.
    for name in [k for k in os.environ if k.startswith("DASH_AUTH_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="guard-cost-") as tmp:
        client = build_client(mode, Path(tmp))
        for _ in range(warmup):
            r = client.get(PATH)
            if r.status_code != 200:
                raise SystemExit(f"{mode}: {PATH} returned {r.status_code}")
        start = time.perf_counter()
        for _ in range(n):
            client.get(PATH)
        elapsed = time.perf_counter() - start
        if client.get(PATH).status_code != 200:
            raise SystemExit(f"{mode}: session stopped working during the run")
    print(json.dumps({"mode": mode, "us_per_request": elapsed / n * 1e6}))


def run_child(mode: str, n: int, warmup: int, timeout: float) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "-n", str(n), "--warmup", str(warmup)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{mode} run failed ({out.returncode}):\n{out.stdout}{out.stderr[-3000:]}")
    return json.loads(lines[-1])["us_per_request"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=3000, help="timed requests per run (default 3000)")
    p.add_argument("--warmup", type=int, default=300, help="untimed requests first (default 300)")
    p.add_argument("--rounds", type=int, default=5, help="alternating runs per mode (default 5)")
    p.add_argument("--timeout", type=float, default=120, help="seconds allowed per run")
    p.add_argument("--child", choices=["noauth", "auth"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.n, args.warmup)
        return 0

    runs: dict[str, list[float]] = {"noauth": [], "auth": []}
    for _ in range(args.rounds):
        for mode in runs:
            runs[mode].append(run_child(mode, args.n, args.warmup, args.timeout))
    plain = min(runs["noauth"])
    guarded = min(runs["auth"])
    print(f"GET {PATH} via Flask test client, {args.n} requests x {args.rounds} rounds"
          " (best round; all rounds in brackets)")
    print(f"  without the package guard : {plain:8.1f} us/request"
          f"   ({', '.join(f'{v:.1f}' for v in runs['noauth'])})")
    print(f"  with the package guard    : {guarded:8.1f} us/request"
          f"   ({', '.join(f'{v:.1f}' for v in runs['auth'])})")
    print(f"  guard cost                : {guarded - plain:8.1f} us/request"
          f"   ({guarded / plain:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
