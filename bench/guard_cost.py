"""Microseconds the guard adds to one request, measured in one process.

The example app is protected and a Flask test client is signed in as alice.
Rounds of ``GET /_dash-layout`` alternate between the app as installed and
the same app with the guard taken out of Flask's ``before_request`` list, so
both see the same process, cookie, caches and routes: the difference is the
guard (cookie parsing, signature, session lookup, privacy decision). Times are the
serving thread's CPU time, so a busy machine changes them less than it would
wall-clock times.

    python bench/guard_cost.py [-n 3000] [--rounds 7]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH = "/_dash-layout"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import dash_enterprise_auth
    from dash_enterprise_auth.testing import signed_in_client
    from examples.app import app

    with tempfile.TemporaryDirectory() as tmp:
        dash_enterprise_auth.protect(
            app, connector="basic", users_file=str(ROOT / "examples" / "demo-users.json"),
            allowed_groups=["analysts"], secret_key="x" * 40, session_store=f"sqlite:///{tmp}/s.sqlite3",
        )
        if app.server.test_client().get(PATH).status_code != 401:
            raise SystemExit("the protected app answered an anonymous request")
        client = signed_in_client(app, "alice", groups=["analysts"])
        hooks = app.server.before_request_funcs[None]
        guard = hooks[0]

        def round_us() -> float:
            start = time.thread_time()  # CPU time of this thread: other programs' load does not count
            for _ in range(args.n):
                client.get(PATH)
            return (time.thread_time() - start) / args.n * 1e6

        for _ in range(300):  # warm caches both ways
            client.get(PATH)
        with_guard, without = [], []
        for _ in range(args.rounds):
            with_guard.append(round_us())
            hooks.remove(guard)
            without.append(round_us())
            hooks.insert(0, guard)
        if client.get(PATH).status_code != 200:
            raise SystemExit("the signed-in client lost its session during the run")

    a, b = statistics.median(without), statistics.median(with_guard)
    # each round is paired with the one right after it, so drift cancels out
    costs = sorted(w - wo for w, wo in zip(with_guard, without))
    print(f"GET {PATH} via Flask test client, {args.n} requests x {args.rounds} alternating rounds"
          " (median CPU time of the serving thread)")
    print(f"  guard taken out : {a:8.1f} us/request")
    print(f"  guard in place  : {b:8.1f} us/request")
    print(f"  guard cost      : {statistics.median(costs):8.1f} us/request (paired rounds: "
          f"{', '.join(f'{c:.0f}' for c in costs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
