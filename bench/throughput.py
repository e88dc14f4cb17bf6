"""Requests/second of the example app under gunicorn, with and without sign-on.

Measures, in one run and side by side, Dash's ``POST /_dash-update-component``
and ``GET /_dash-layout`` on ``examples.app:server`` in four variants:

  (a) no auth: no ``DASH_AUTH_*`` variable, so the package's Dash plugin is idle;
  (b) this package: basic connector, SQLite session store, signed-in cookie;
  (c) the same with a Redis session store (a redis-server the script starts itself);
  (d) peer: dash-auth 2.x ``BasicAuth`` (bench/peer_dash_auth_app.py).

All servers run at once (idle ones cost nothing), and the wrk runs are
interleaved round by round, so machine noise hits every variant alike; the
table shows the median per variant and its ratio to (a), then whether the
targets hold. See bench/README.md.

Run from the repo root: ``python bench/throughput.py`` (about 3-4 minutes).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import requests

from processes import BenchError, free_port, package_rev, prepare, run, stop_group
from redis_server import RedisServer, RedisUnavailable, start_redis

ROOT = Path(__file__).resolve().parents[1]
LUA_SCRIPT = Path(__file__).resolve().with_name("wrk_request.lua")

# Callback round trips of examples/app.py, both fed by the dropdown "city",
# with a piece of the answer that proves the callback ran. "graph" is the
# default because it does the same work in every variant; "greeting" calls
# dash_enterprise_auth.get_username(), which by design raises (HTTP 500) in an
# app the package does not protect, so (a) and (d) cannot serve it.
CALLBACKS: dict[str, tuple[dict, str]] = {
    name: (
        {
            "output": f"{name}.{prop}",
            "outputs": {"id": name, "property": prop},
            "inputs": [{"id": "city", "property": "value", "value": "NYC"}],
            "changedPropIds": ["city.value"],
            "state": [],
        },
        expected,
    )
    for name, prop, expected in (("graph", "figure", "Sales in NYC"),
                                 ("greeting", "children", "Hello"))
}

# endpoint key -> (method, path)
ENDPOINTS: dict[str, tuple[str, str]] = {
    "update": ("POST", "/_dash-update-component"),
    "layout": ("GET", "/_dash-layout"),
}

# What the package aims for: (variant, minimum ratio to (a)), and variants that
# must be at least as fast as the peer (d). Checked against each run's figures.
TARGETS_VS_A: tuple[tuple[str, float], ...] = (("b", 0.95), ("c", 0.90))
TARGETS_VS_PEER: tuple[str, ...] = ("b", "c")

# Rounds of one variant differing by more than this share of their median mean
# something else used the CPUs; the table then says so.
NOISY_SPREAD = 0.25

VARIANT_LABELS: dict[str, str] = {
    "a": "(a) no auth",
    "b": "(b) dash-enterprise-auth, sqlite",
    "c": "(c) dash-enterprise-auth, redis",
    "d": "(d) dash-auth BasicAuth (peer)",
}


@dataclass
class Server:
    """A gunicorn master we started, in its own process group so we can stop all of it."""

    key: str
    url: str
    process: subprocess.Popen
    log_path: Path
    auth_headers: dict[str, str] = field(default_factory=dict)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        stop_group(self.process)


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    non200: int
    socket_errors: int




def base_env() -> dict[str, str]:
    """The caller's environment without DASH_AUTH_*, so no variant inherits sign-on by accident."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASH_AUTH_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_server(key: str, target: str, extra_env: dict[str, str], workers: int,
                 log_dir: Path, timeout: float = 60) -> Server:
    """Start ``gunicorn target`` on a free loopback port; return once it answers HTTP."""
    port = free_port()
    log_path = log_dir / f"gunicorn-{key}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--worker-class", "sync",
             "--timeout", "60", "--log-level", "warning", target],
            cwd=ROOT, env={**base_env(), **extra_env},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(key, f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{target} exited with {process.returncode}:\n{server.log_tail()}")
        try:
            requests.get(server.url + "/_dash-layout", timeout=5, allow_redirects=False)
            return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.stop()
    raise BenchError(f"{target} did not answer within {timeout:.0f} s:\n{server.log_tail()}")


class _HiddenInputs(HTMLParser):
    """Collects <input type=hidden> fields, in case the login form carries a CSRF token."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and (a.get("type") or "").lower() == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""


def sign_in(url: str, username: str, password: str) -> str:
    """Sign in once through the login form; return the ``Cookie`` header it earned."""
    session = requests.Session()
    headers = {"Origin": url, "Sec-Fetch-Site": "same-origin"}
    form = {"username": username, "password": password, "next": "/"}
    page = session.get(url + "/_dash-auth/login", timeout=10, allow_redirects=False)
    if page.status_code == 200:
        parser = _HiddenInputs()
        parser.feed(page.text)
        form = {**parser.fields, **form}
    r = session.post(url + "/_dash-auth/login", data=form, headers=headers,
                     timeout=30, allow_redirects=False)
    if r.status_code != 302:
        raise BenchError(f"login returned {r.status_code}, expected 302:\n{r.text[:500]}")
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    if not cookie:
        raise BenchError("login answered 302 but set no cookie")
    return cookie


def request_headers(server: Server, endpoint: str) -> dict[str, str]:
    """What a browser tab would send: same-origin fetch metadata plus the variant's credentials."""
    headers = {"Accept": "application/json", "Sec-Fetch-Site": "same-origin"}
    if ENDPOINTS[endpoint][0] == "POST":
        headers["Origin"] = server.url
    return {**headers, **server.auth_headers}


def probe(server: Server, endpoint: str, body: dict, with_auth: bool = True) -> requests.Response:
    method, path = ENDPOINTS[endpoint]
    headers = request_headers(server, endpoint)
    if not with_auth:
        headers = {k: v for k, v in headers.items() if k not in server.auth_headers}
    return requests.request(method, server.url + path, headers=headers,
                            json=body if method == "POST" else None,
                            timeout=10, allow_redirects=False)


def check(server: Server, endpoints: list[str], callback: str) -> None:
    """Refuse to time a variant that does not answer correctly, or whose guard is not on."""
    body, expected = CALLBACKS[callback]
    for endpoint in endpoints:
        r = probe(server, endpoint, body)
        if r.status_code != 200:
            raise BenchError(f"{endpoint} returned {r.status_code}: {r.text[:300]}\n"
                             f"server log:\n{server.log_tail()}")
        if endpoint == "update" and expected not in r.text:
            raise BenchError(f"update answered without {expected!r}: {r.text[:300]}")
        if server.auth_headers:
            bare = probe(server, endpoint, body, with_auth=False)
            if bare.status_code == 200:
                raise BenchError(
                    f"{endpoint} answers 200 without credentials: the guard is not active"
                    " (for (b): is the package installed with `pip install -e .`, so Dash"
                    " loads its dash_hooks plugin?)")


def run_wrk(server: Server, endpoint: str, duration: float, threads: int,
            connections: int, body_file: Path) -> WrkResult:
    """One fixed-duration wrk run; statuses other than 200 are counted by the Lua script."""
    method, path = ENDPOINTS[endpoint]
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s",
           "--timeout", "10s", "-s", str(LUA_SCRIPT)]
    for name, value in request_headers(server, endpoint).items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(server.url + path)
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file) if method == "POST" else ""}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         timeout=duration + 30, stdin=subprocess.DEVNULL)
    match = re.search(r"BENCH_RESULT (.*)", out.stdout)
    if out.returncode != 0 or not match:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stdout}{out.stderr}")
    v = {k: int(x) for k, x in (kv.split("=") for kv in match.group(1).split())}
    return WrkResult(rps=v["requests"] / (v["duration_us"] / 1e6), p50_ms=v["p50_us"] / 1e3,
                     p99_ms=v["p99_us"] / 1e3, non200=v["non200"],
                     socket_errors=v["socket_errors"])


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("dash", "dash-auth", "gunicorn", "flask"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} (absent)")
    return ", ".join(parts)


def start_variant(key: str, workers: int, tmp: Path, redis: RedisServer | None) -> Server:
    """Start one variant and give it the credentials its requests must carry.
    (b) and (c) differ only in the session store URL."""
    if key == "a":
        return start_server(key, "examples.app:server", {}, workers, tmp)
    if key in ("b", "c"):
        if key == "b":
            store = f"sqlite:///{tmp}/sessions.sqlite3"
        elif redis is not None:
            store = redis.url
        else:
            raise BenchError("redis-server did not start")
        env = {
            "DASH_AUTH_CONNECTOR": "basic",
            "DASH_AUTH_USERS_FILE": str(ROOT / "examples" / "demo-users.json"),
            "DASH_AUTH_ALLOWED_GROUPS": "analysts",
            "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
            "DASH_AUTH_SESSION_STORE": store,
        }
        server = start_server(key, "examples.app:server", env, workers, tmp)
        server.auth_headers = {"Cookie": sign_in(server.url, "alice", "wonderland")}
        return server
    if key == "d":
        server = start_server(key, "bench.peer_dash_auth_app:server", {}, workers, tmp)
        token = base64.b64encode(b"alice:wonderland").decode()
        server.auth_headers = {"Authorization": f"Basic {token}"}
        return server
    raise ValueError(key)


def paired_ratio(runs: list[WrkResult], base: list[WrkResult]) -> float:
    """Median of per-round ratios: runs of one round sit seconds apart, so slow
    drift of the machine cancels out better than in a ratio of medians."""
    return statistics.median(r.rps / b.rps for r, b in zip(runs, base))


def spread(runs: list[WrkResult]) -> float:
    """(max - min) / median of a variant's rounds: how much the machine moved."""
    values = [r.rps for r in runs]
    return (max(values) - min(values)) / statistics.median(values)


def check_targets(results: dict[tuple[str, str], list[WrkResult]],
                  endpoints: list[str]) -> list[str]:
    """One line per target and endpoint, from this run's paired ratios to (a)
    (the "vs (a)" column), so a reader can check each verdict against the table."""
    lines: list[str] = []

    def ratio(key: str, endpoint: str) -> float | None:
        runs, base = results.get((key, endpoint)), results.get(("a", endpoint))
        return paired_ratio(runs, base) if runs and base else None

    for endpoint in endpoints:
        where = " ".join(ENDPOINTS[endpoint])
        for key, minimum in TARGETS_VS_A:
            r = ratio(key, endpoint)
            verdict = "not measured" if r is None else f"{r:.3f} {'MET' if r >= minimum else 'MISSED'}"
            lines.append(f"target ({key}) >= {minimum:.2f} x (a), {where}: {verdict}")
        peer = ratio("d", endpoint)
        for key in TARGETS_VS_PEER:
            r = ratio(key, endpoint)
            verdict = ("not measured" if r is None or peer is None else
                       f"{r:.3f} vs {peer:.3f} {'MET' if r >= peer else 'MISSED'}")
            lines.append(f"target ({key}) >= (d), {where}: {verdict}")
    return lines


def print_table(results: dict[tuple[str, str], list[WrkResult]], variants: list[str],
                endpoints: list[str]) -> list[str]:
    """Print the table; return warnings about runs that should not be trusted."""
    warnings: list[str] = []
    print()
    print(f"{'variant':<36}{'median req/s':>13}{'vs (a)':>8}{'p50 ms':>8}{'p99 ms':>8}"
          f"  {'req/s per round'}")
    for endpoint in endpoints:
        method, path = ENDPOINTS[endpoint]
        print(f"{method} {path}")
        base = results.get(("a", endpoint), [])
        for key in variants:
            runs = results.get((key, endpoint), [])
            if not runs:
                print(f"  {VARIANT_LABELS[key]:<34}{'not measured':>13}")
                continue
            rps = statistics.median(r.rps for r in runs)
            ratio = f"{paired_ratio(runs, base):.2f}" if base else "-"
            p50 = statistics.median(r.p50_ms for r in runs)
            p99 = statistics.median(r.p99_ms for r in runs)
            rounds = ", ".join(f"{r.rps:.0f}" for r in runs)
            print(f"  {VARIANT_LABELS[key]:<34}{rps:>13.1f}{ratio:>8}{p50:>8.2f}{p99:>8.2f}"
                  f"  {rounds}")
            bad = sum(r.non200 + r.socket_errors for r in runs)
            if bad:
                warnings.append(f"{key} {endpoint}: {bad} non-200 responses or socket errors;"
                                " that row is not a valid measurement")
            if len(runs) > 1 and spread(runs) > NOISY_SPREAD:
                warnings.append(f"{key} {endpoint}: rounds differ by {spread(runs):.0%} of the"
                                " median; the machine was busy, trust only large differences")
    return warnings


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=4, help="seconds per wrk run (default 4)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--warmup", type=float, default=2,
                   help="seconds of untimed load per variant and endpoint (default 2)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--connections", type=int, default=4, help="wrk connections (default 4)")
    p.add_argument("--variants", default="a,b,c,d",
                   help="comma list from a,b,c,d (default a,b,c,d)")
    p.add_argument("--endpoints", default="update,layout",
                   help="comma list from update,layout (default update,layout)")
    p.add_argument("--callback", choices=sorted(CALLBACKS), default="graph",
                   help="callback POSTed to /_dash-update-component (default graph)")
    p.add_argument("--max-seconds", type=float, default=600,
                   help="stop starting new runs after this long and print what we have")
    args = p.parse_args()
    args.variants = [v for v in args.variants.split(",") if v]
    args.endpoints = [e for e in args.endpoints.split(",") if e]
    if "a" not in args.variants:
        p.error("variant a is the baseline and must be included")
    if set(args.variants) - set(VARIANT_LABELS) or set(args.endpoints) - set(ENDPOINTS):
        p.error("unknown variant or endpoint")
    return args


def main() -> int:
    args = parse_args()
    if not prepare():
        return 2
    started = time.monotonic()
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    servers: dict[str, Server] = {}
    redis: RedisServer | None = None
    skipped: dict[str, str] = {}
    results: dict[tuple[str, str], list[WrkResult]] = {}
    with tempfile.TemporaryDirectory(prefix="dash-auth-bench-") as tmp_name:
        tmp = Path(tmp_name)
        body_file = tmp / "update.json"
        body_file.write_text(json.dumps(CALLBACKS[args.callback][0]))
        try:
            if "c" in args.variants:
                try:
                    redis = start_redis()
                except RedisUnavailable as exc:
                    skipped["c"] = str(exc)
                    print(f"skipping {VARIANT_LABELS['c']}: {exc}", file=sys.stderr)
            for key in args.variants:
                if key in skipped:
                    continue
                try:
                    servers[key] = start_variant(key, args.workers, tmp, redis)
                    check(servers[key], args.endpoints, args.callback)
                    for endpoint in args.endpoints:
                        run_wrk(servers[key], endpoint, args.warmup, args.threads,
                                args.connections, body_file)
                except BenchError as exc:
                    if key == "a":
                        raise
                    skipped[key] = str(exc)
                    print(f"skipping {VARIANT_LABELS[key]}: {exc}", file=sys.stderr)
                    if key in servers:
                        servers.pop(key).stop()
            print(f"{len(servers)} servers up; {args.rounds} rounds x {len(args.endpoints)}"
                  f" endpoints x {len(servers)} variants x {args.duration:g} s", file=sys.stderr)
            for round_no in range(1, args.rounds + 1):
                if time.monotonic() - started > args.max_seconds:
                    print(f"--max-seconds reached; stopping after {round_no - 1} rounds",
                          file=sys.stderr)
                    break
                # Rotate the order each round so no variant always runs first or last.
                keys = list(servers)
                shift = (round_no - 1) % len(keys)
                for endpoint in args.endpoints:
                    for key in keys[shift:] + keys[:shift]:
                        server = servers[key]
                        r = run_wrk(server, endpoint, args.duration, args.threads,
                                    args.connections, body_file)
                        results.setdefault((key, endpoint), []).append(r)
                        print(f"  round {round_no} {endpoint:<6} {key}: {r.rps:8.1f} req/s",
                              file=sys.stderr)
            # A session that expired mid-run would show up as non-200s; check it still works.
            for key, server in servers.items():
                check(server, args.endpoints, args.callback)
        finally:
            for server in servers.values():
                server.stop()
            if redis is not None:
                redis.stop()

    print(f"\nexamples.app under gunicorn ({args.workers} sync workers), wrk -t{args.threads}"
          f" -c{args.connections}, {args.duration:g} s x {args.rounds} interleaved rounds,"
          f" {os.cpu_count()} CPUs (1-min load average {load_before:.2f} at start);"
          f" callback {args.callback!r}")
    print(f"repo {package_rev()}; {versions()}")
    warnings = print_table(results, [k for k in args.variants if k not in skipped], args.endpoints)
    for warning in warnings:
        print(f"!! {warning}")
    for key, why in skipped.items():
        print(f"\n{VARIANT_LABELS[key]} not measured: {why.splitlines()[0]}")
    print()
    for line in check_targets(results, args.endpoints):
        print(line)
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 1 if skipped.keys() & {"b", "c"} else 0


if __name__ == "__main__":
    run(main)
