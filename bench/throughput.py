"""Requests/second of the example app with and without sign-on, on Dash's Flask, FastAPI and Quart backends.

Measures, in one run and side by side, Dash's ``POST /_dash-update-component``
and ``GET /_dash-layout`` on the example app (examples/app.py) in these variants:

  (a) Flask under gunicorn, no auth: no ``DASH_AUTH_*`` variable, so the package's Dash plugin is idle;
  (b) the same with this package: basic connector, SQLite session store, signed-in cookie;
  (c) the same with a Redis session store (a redis-server the script starts itself);
  (d) peer: dash-auth 2.x ``BasicAuth`` (bench/peer_dash_auth_app.py);
  (h) (b)'s server, but every request carries HTTP Basic credentials instead of a cookie;
  (fa) (fb) (fc) FastAPI under uvicorn (bench/backend_app.py): no auth, SQLite, Redis;
  (qa) (qb) (qc) Quart under hypercorn: no auth, SQLite, Redis;
  (a2) (fa2) (qa2) A/A controls: a second server of the no-auth app of each backend;
  (ak) (fak) (qak) the no-auth app again, sent a cookie as long as a session cookie, which it
       ignores: what carrying a cookie costs the app itself (Dash parses every request's cookies).

All servers run at once (idle ones cost nothing), and the wrk runs are
interleaved round by round, so machine noise hits every variant alike; the
table shows the median per variant and its ratio to the no-auth variant of
its backend ((a), (fa) or (qa)), then whether the targets hold. See
bench/README.md.

Run from the repo root: ``python bench/throughput.py`` (a, b, c, d; about
3-4 minutes) or ``python bench/throughput.py --variants all`` (about 9).
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

from processes import (BACKENDS, BenchError, child_pids, free_port, package_rev, prepare, process_cpu, run,
                       server_options, stop_group)
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

@dataclass(frozen=True)
class Variant:
    label: str
    backend: str
    # None: no DASH_AUTH_* variable, the package's plugin stays idle; "sqlite" or
    # "redis": this package with that session store; "peer": dash-auth BasicAuth.
    auth: str | None = None
    target: str | None = None  # instead of the backend's app
    # "cookie": sign in once and replay the session cookie; "basic": an HTTP Basic
    # Authorization header on every request, no cookie (a script's way); "inert": a cookie
    # the app ignores, as long as a session cookie (for the no-auth app).
    credentials: str = "cookie"


VARIANTS: dict[str, Variant] = {
    "a": Variant("(a) no auth", "flask"),
    "a2": Variant("(a2) no auth, A/A control", "flask"),
    "b": Variant("(b) dash-enterprise-auth, sqlite", "flask", "sqlite"),
    "c": Variant("(c) dash-enterprise-auth, redis", "flask", "redis"),
    "d": Variant("(d) dash-auth BasicAuth (peer)", "flask", "peer", "bench.peer_dash_auth_app:server"),
    "h": Variant("(h) Basic header, every request", "flask", "sqlite", credentials="basic"),
    "ak": Variant("(ak) no auth, an ignored cookie", "flask", credentials="inert"),
    "fa": Variant("(fa) no auth", "fastapi"),
    "fa2": Variant("(fa2) no auth, A/A control", "fastapi"),
    "fak": Variant("(fak) no auth, an ignored cookie", "fastapi", credentials="inert"),
    "fb": Variant("(fb) dash-enterprise-auth, sqlite", "fastapi", "sqlite"),
    "fc": Variant("(fc) dash-enterprise-auth, redis", "fastapi", "redis"),
    "fh": Variant("(fh) Basic header, every request", "fastapi", "sqlite", credentials="basic"),
    "qa": Variant("(qa) no auth", "quart"),
    "qa2": Variant("(qa2) no auth, A/A control", "quart"),
    "qak": Variant("(qak) no auth, an ignored cookie", "quart", credentials="inert"),
    "qb": Variant("(qb) dash-enterprise-auth, sqlite", "quart", "sqlite"),
    "qc": Variant("(qc) dash-enterprise-auth, redis", "quart", "redis"),
    "qh": Variant("(qh) Basic header, every request", "quart", "sqlite", credentials="basic"),
}
# Every variant is compared with the no-auth app of its backend, measured in the same rounds.
BASELINES: dict[str, str] = {"flask": "a", "fastapi": "fa", "quart": "qa"}
# A/A controls: the baseline's app again on a second server; their ratio should be 1.00.
CONTROLS: tuple[str, ...] = ("a2", "fa2", "qa2")


def baseline(key: str) -> str:
    return BASELINES[VARIANTS[key].backend]


# What the package aims for: (variant, minimum ratio to its baseline), and variants
# that must be at least as fast as the peer (d). Checked against each run's figures.
TARGETS_VS_BASE: tuple[tuple[str, float], ...] = (
    ("b", 0.95), ("c", 0.90), ("h", 0.80), ("fb", 0.95), ("fc", 0.90), ("fh", 0.80),
    ("qb", 0.95), ("qc", 0.90), ("qh", 0.80))
TARGETS_VS_PEER: tuple[str, ...] = ("b", "c")

# Rounds of one variant differing by more than this share of their median mean
# something else used the CPUs; the table then says so.
NOISY_SPREAD = 0.25
# An A/A control further than this from 1.00 means differences of that size are noise.
CONTROL_TOLERANCE = 0.02
# One worker doing more than this share of the workers' CPU in a run means the
# connections did not spread over the workers: that run measured fewer workers.
UNBALANCED_WORKER = 0.75


@dataclass
class Server:
    """A server we started, in its own process group so we can stop all of it."""

    key: str
    url: str
    process: subprocess.Popen
    log_path: Path
    auth_headers: dict[str, str] = field(default_factory=dict)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def worker_cpu(self) -> dict[int, float]:
        """CPU seconds so far of each child of the server process: its workers (and, for
        uvicorn and hypercorn, multiprocessing's resource tracker, which stays idle)."""
        return {pid: process_cpu(pid) for pid in child_pids(self.process.pid)}

    def stop(self) -> None:
        stop_group(self.process)


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    non200: int
    socket_errors: int
    cpu_us: float  # workers' CPU per request (redis-server's not included)
    busiest_worker: float  # the busiest worker's share of the workers' CPU


def base_env() -> dict[str, str]:
    """The caller's environment without DASH_AUTH_*, so no variant inherits sign-on by accident."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASH_AUTH_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_server(key: str, target: str, extra_env: dict[str, str], workers: int,
                 log_dir: Path, timeout: float = 60, program: str = "gunicorn") -> Server:
    """Start ``program target`` on a free loopback port; return once it answers HTTP."""
    port = free_port()
    log_path = log_dir / f"{program}-{key}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", program, *server_options(program, port, workers), target],
            cwd=ROOT, env={**base_env(), **extra_env},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(key, f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{program} {target} exited with {process.returncode}:\n"
                             f"{server.log_tail()}")
        try:
            requests.get(server.url + "/_dash-layout", timeout=5, allow_redirects=False)
            return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.stop()
    raise BenchError(f"{program} {target} did not answer within {timeout:.0f} s:\n"
                     f"{server.log_tail()}")


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
        if server.auth_headers and VARIANTS[server.key].credentials != "inert":
            bare = probe(server, endpoint, body, with_auth=False)
            if bare.status_code == 200:
                raise BenchError(
                    f"{endpoint} answers 200 without credentials: the guard is not active"
                    " (is the package installed with `pip install -e .`, so Dash loads its"
                    " dash_hooks plugin?)")


def run_wrk(server: Server, endpoint: str, duration: float, threads: int,
            connections: int, reconnect_every: int, body_file: Path) -> WrkResult:
    """One fixed-duration wrk run; statuses other than 200 are counted by the Lua script,
    the workers' CPU time is read from /proc before and after."""
    method, path = ENDPOINTS[endpoint]
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s",
           "--timeout", "10s", "-s", str(LUA_SCRIPT)]
    for name, value in request_headers(server, endpoint).items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(server.url + path)
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file) if method == "POST" else "",
           "BENCH_RECONNECT_EVERY": str(reconnect_every)}
    cpu_before = server.worker_cpu()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         timeout=duration + 30, stdin=subprocess.DEVNULL)
    cpu_after = server.worker_cpu()
    match = re.search(r"BENCH_RESULT (.*)", out.stdout)
    if out.returncode != 0 or not match:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stdout}{out.stderr}")
    v = {k: int(x) for k, x in (kv.split("=") for kv in match.group(1).split())}
    # A worker replaced during the run (a new pid) is left out of both figures.
    used = [cpu_after[pid] - cpu_before[pid] for pid in cpu_after if pid in cpu_before]
    total = sum(used)
    return WrkResult(rps=v["requests"] / (v["duration_us"] / 1e6), p50_ms=v["p50_us"] / 1e3,
                     p99_ms=v["p99_us"] / 1e3, non200=v["non200"],
                     socket_errors=v["socket_errors"],
                     cpu_us=total / max(v["requests"], 1) * 1e6,
                     busiest_worker=max(used) / total if total else float("nan"))


def versions(backends: set[str] = frozenset({"flask"})) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dists = ["dash", "dash-auth", "gunicorn", "flask"]
    if "fastapi" in backends:
        dists += ["fastapi", "starlette", "uvicorn", "uvloop", "httptools"]
    if "quart" in backends:
        dists += ["quart", "hypercorn"]
    parts = []
    for dist in dists:
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} (absent)")
    return ", ".join(parts)


def start_variant(key: str, workers: int, tmp: Path, redis: RedisServer | None) -> Server:
    """Start one variant and give it the credentials its requests must carry. The
    variants of one backend differ only in the ``DASH_AUTH_*`` variables (none for the
    no-auth app and its A/A control) and, for the peer, the module served."""
    variant = VARIANTS[key]
    backend = BACKENDS[variant.backend]
    env = dict(backend.env)
    if variant.auth in ("sqlite", "redis"):
        if variant.auth == "sqlite":
            store = f"sqlite:///{tmp}/sessions-{key}.sqlite3"
        elif redis is not None:
            store = redis.url
        else:
            raise BenchError("redis-server did not start")
        env.update({
            "DASH_AUTH_CONNECTOR": "basic",
            "DASH_AUTH_USERS_FILE": str(ROOT / "examples" / "demo-users.json"),
            "DASH_AUTH_ALLOWED_GROUPS": "analysts",
            "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
            "DASH_AUTH_SESSION_STORE": store,
        })
    server = start_server(key, variant.target or backend.target, env, workers, tmp,
                          program=backend.program)
    if variant.auth in ("sqlite", "redis") and variant.credentials == "cookie":
        server.auth_headers = {"Cookie": sign_in(server.url, "alice", "wonderland")}
    elif variant.auth == "peer" or variant.credentials == "basic":
        token = base64.b64encode(b"alice:wonderland").decode()
        server.auth_headers = {"Authorization": f"Basic {token}"}
    elif variant.credentials == "inert":  # the length of a real one: a signed 32-byte id
        server.auth_headers = {"Cookie": "dash-auth-session=" + secrets.token_urlsafe(53)}
    return server


def round_order(keys: list[str], round_no: int) -> list[str]:
    """The order of one round's runs: the variants of a backend one after the other, so
    each runs seconds from its baseline; backends and the variants within each backend
    rotate from round to round, so none always runs first or last."""
    def rotate(items: list, by: int) -> list:
        by %= len(items)
        return items[by:] + items[:by]

    groups = [[k for k in keys if VARIANTS[k].backend == b] for b in BACKENDS]
    groups = [g for g in groups if g]
    return [k for group in rotate(groups, round_no - 1) for k in rotate(group, round_no - 1)]


def spread(runs: list[WrkResult]) -> float:
    """(max - min) / median of a variant's rounds: how much the machine moved."""
    values = [r.rps for r in runs]
    return (max(values) - min(values)) / statistics.median(values)


Results = dict[tuple[str, str], list[WrkResult]]


def ratios_to_base(results: Results, key: str, endpoint: str) -> list[float]:
    """A variant's req/s over its baseline's, round by round ([] if either is missing).
    Their median is the figure to compare: the runs of one round sit seconds apart, so
    slow drift of the machine cancels out better than in a ratio of medians."""
    runs = results.get((key, endpoint), [])
    base = results.get((baseline(key), endpoint), [])
    return [r.rps / b.rps for r, b in zip(runs, base)]


def cpu_ratio_to_base(results: Results, key: str, endpoint: str) -> float | None:
    """The baseline's worker CPU per request over the variant's, paired by round, median:
    the req/s ratio the workers' CPU alone would allow. Other programs on the machine
    move it much less than req/s, so it is the figure to read next to a noisy ratio."""
    runs = results.get((key, endpoint), [])
    base = results.get((baseline(key), endpoint), [])
    ratios = [b.cpu_us / r.cpu_us for r, b in zip(runs, base) if r.cpu_us]
    return statistics.median(ratios) if ratios else None


def rounds_range(ratios: list[float]) -> str:
    return f"(rounds {min(ratios):.2f}-{max(ratios):.2f})"


def check_targets(results: Results, variants: list[str], endpoints: list[str]) -> list[str]:
    """One line per target and endpoint for the variants asked for, from this run's
    paired ratios to the baseline (the "vs base" column), so a reader can check each
    verdict against the table; then each A/A control, which should be 1.00."""
    lines: list[str] = []
    for endpoint in endpoints:
        where = " ".join(ENDPOINTS[endpoint])
        for key, minimum in TARGETS_VS_BASE:
            if key not in variants:
                continue
            ratios = ratios_to_base(results, key, endpoint)
            r = statistics.median(ratios) if ratios else None
            verdict = ("not measured" if r is None else
                       f"{r:.3f} {rounds_range(ratios)} {'MET' if r >= minimum else 'MISSED'}")
            lines.append(f"target ({key}) >= {minimum:.2f} x ({baseline(key)}), {where}: {verdict}")
        peer = ratios_to_base(results, "d", endpoint)
        for key in TARGETS_VS_PEER:
            if key not in variants or "d" not in variants:
                continue
            ratios = ratios_to_base(results, key, endpoint)
            if ratios and peer:
                r, rp = statistics.median(ratios), statistics.median(peer)
                verdict = f"{r:.3f} vs {rp:.3f} {'MET' if r >= rp else 'MISSED'}"
            else:
                verdict = "not measured"
            lines.append(f"target ({key}) >= (d), {where}: {verdict}")
        for key in CONTROLS:
            if key not in variants:
                continue
            ratios = ratios_to_base(results, key, endpoint)
            r = statistics.median(ratios) if ratios else None
            if r is None:
                verdict = "not measured"
            elif abs(r - 1) <= CONTROL_TOLERANCE:
                verdict = f"{r:.3f} {rounds_range(ratios)} ok"
            else:
                verdict = (f"{r:.3f} {rounds_range(ratios)} NOISY: the same app measured"
                           f" {abs(r - 1):.1%} apart; differences of that size are noise in this run")
            lines.append(f"A/A control ({key}) / ({baseline(key)}), {where}: {verdict}")
    return lines


def print_table(results: Results, variants: list[str], endpoints: list[str],
                workers: int) -> list[str]:
    """Print the table, the variants of each backend under their baseline; return
    warnings about runs that should not be trusted."""
    warnings: list[str] = []
    print()
    print(f"{'variant':<38}{'req/s':>8}{'spread':>8}{'vs base':>9}{'':>19}{'CPU us/req':>11}"
          f"{'CPU vs base':>12}{'top worker':>11}{'p50 ms':>8}{'p99 ms':>8}  req/s per round")
    for endpoint in endpoints:
        method, path = ENDPOINTS[endpoint]
        print(f"{method} {path}")
        for name, backend in BACKENDS.items():
            keys = [k for k in variants if VARIANTS[k].backend == name]
            if keys:
                print(f"  {backend.label}, {backend.program}")
            for key in keys:
                label = VARIANTS[key].label
                runs = results.get((key, endpoint), [])
                if not runs:
                    print(f"    {label:<34}{'not measured':>16}")
                    continue
                rps = statistics.median(r.rps for r in runs)
                ratios = ratios_to_base(results, key, endpoint)
                vs_base = f"{statistics.median(ratios):.2f}" if ratios else "-"
                ratio_range = rounds_range(ratios) if ratios and key != baseline(key) else ""
                cpu = statistics.median(r.cpu_us for r in runs)
                cpu_ratio = cpu_ratio_to_base(results, key, endpoint)
                cpu_vs_base = "-" if cpu_ratio is None else f"{cpu_ratio:.2f}"
                top = max(r.busiest_worker for r in runs)
                p50 = statistics.median(r.p50_ms for r in runs)
                p99 = statistics.median(r.p99_ms for r in runs)
                rounds = ", ".join(f"{r.rps:.0f}" for r in runs)
                print(f"    {label:<34}{rps:>8.0f}{spread(runs):>8.0%}{vs_base:>9}{ratio_range:>19}"
                      f"{cpu:>11.0f}{cpu_vs_base:>12}{top:>11.0%}{p50:>8.2f}{p99:>8.2f}  {rounds}")
                bad = sum(r.non200 + r.socket_errors for r in runs)
                if bad:
                    warnings.append(f"{key} {endpoint}: {bad} non-200 responses or socket errors;"
                                    " that row is not a valid measurement")
                if len(runs) > 1 and spread(runs) > NOISY_SPREAD:
                    warnings.append(f"{key} {endpoint}: rounds differ by {spread(runs):.0%} of the"
                                    " median; the machine was busy, trust only large differences")
                if workers > 1 and top > UNBALANCED_WORKER:
                    warnings.append(f"{key} {endpoint}: one worker used {top:.0%} of the workers'"
                                    " CPU in a round; the connections did not spread over the"
                                    " workers, so that round measured fewer of them")
    return warnings


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=4, help="seconds per wrk run (default 4)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--warmup", type=float, default=2,
                   help="seconds of untimed load per variant and endpoint (default 2)")
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes of every server (default 2)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--connections", type=int, default=4, help="wrk connections (default 4)")
    p.add_argument("--reconnect-every", type=int, default=100,
                   help="wrk sends 'Connection: close' on every Nth request, so the keep-alive"
                        " connections of uvicorn and hypercorn spread over the workers"
                        " (default 100; 0: never)")
    p.add_argument("--variants", default="a,b,c,d",
                   help=f"comma list from {','.join(VARIANTS)}, or all (default a,b,c,d)")
    p.add_argument("--endpoints", default="update,layout",
                   help="comma list from update,layout (default update,layout)")
    p.add_argument("--callback", choices=sorted(CALLBACKS), default="graph",
                   help="callback POSTed to /_dash-update-component (default graph)")
    p.add_argument("--max-seconds", type=float, default=1200,
                   help="stop starting new rounds after this long and print what we have"
                        " (default 1200)")
    args = p.parse_args()
    chosen = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    # The table's order, whatever the order asked for.
    args.variants = [k for k in VARIANTS if k in chosen]
    args.endpoints = [e for e in args.endpoints.split(",") if e]
    if set(chosen) - set(VARIANTS) - {""} or set(args.endpoints) - set(ENDPOINTS):
        p.error("unknown variant or endpoint")
    missing = {baseline(k) for k in args.variants} - set(args.variants)
    if missing:
        p.error(f"every variant is compared with its backend's no-auth variant: add"
                f" {','.join(sorted(missing))}")
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
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="dash-auth-bench-") as tmp_name:
        tmp = Path(tmp_name)
        body_file = tmp / "update.json"
        body_file.write_text(json.dumps(CALLBACKS[args.callback][0]))

        def wrk(server: Server, endpoint: str, duration: float) -> WrkResult:
            return run_wrk(server, endpoint, duration, args.threads, args.connections,
                           args.reconnect_every, body_file)

        try:
            redis_variants = [k for k in args.variants if VARIANTS[k].auth == "redis"]
            if redis_variants:
                try:
                    redis = start_redis()
                except RedisUnavailable as exc:
                    for key in redis_variants:
                        skipped[key] = str(exc)
                    print(f"skipping {', '.join(redis_variants)}: {exc}", file=sys.stderr)
            for key in args.variants:
                if key in skipped:
                    continue
                try:
                    servers[key] = start_variant(key, args.workers, tmp, redis)
                    check(servers[key], args.endpoints, args.callback)
                    for endpoint in args.endpoints:
                        wrk(servers[key], endpoint, args.warmup)
                except BenchError as exc:
                    if key in BASELINES.values():
                        raise
                    skipped[key] = str(exc)
                    print(f"skipping {VARIANTS[key].label}: {exc}", file=sys.stderr)
                    if key in servers:
                        servers.pop(key).stop()
            print(f"{len(servers)} servers up; {args.rounds} rounds x {len(args.endpoints)}"
                  f" endpoints x {len(servers)} variants x {args.duration:g} s", file=sys.stderr)
            for round_no in range(1, args.rounds + 1):
                if time.monotonic() - started > args.max_seconds:
                    print(f"--max-seconds reached; stopping after {round_no - 1} rounds",
                          file=sys.stderr)
                    break
                for endpoint in args.endpoints:
                    for key in round_order(list(servers), round_no):
                        r = wrk(servers[key], endpoint, args.duration)
                        results.setdefault((key, endpoint), []).append(r)
                        print(f"  round {round_no} {endpoint:<6} {key:<3}: {r.rps:8.1f} req/s",
                              file=sys.stderr)
            # A session that expired mid-run would show up as non-200s; check it still works.
            for key, server in servers.items():
                check(server, args.endpoints, args.callback)
        finally:
            for server in servers.values():
                server.stop()
            if redis is not None:
                redis.stop()

    backends = {VARIANTS[k].backend for k in args.variants}
    served = "; ".join(f"{b.label} under {b.program}" for name, b in BACKENDS.items()
                       if name in backends)
    print(f"\n{served}: {args.workers} workers each (gunicorn sync); wrk -t{args.threads}"
          f" -c{args.connections}, reconnecting every {args.reconnect_every} requests;"
          f" {args.duration:g} s x {args.rounds} interleaved rounds; {os.cpu_count()} CPUs"
          f" (1-min load average {load_before:.2f} at start); callback {args.callback!r}")
    print(f"repo {package_rev()}; {versions(backends)}")
    warnings = print_table(results, [k for k in args.variants if k not in skipped],
                           args.endpoints, args.workers)
    for warning in warnings:
        print(f"!! {warning}")
    for key, why in skipped.items():
        print(f"\n{VARIANTS[key].label} not measured: {why.splitlines()[0]}")
    print()
    for line in check_targets(results, args.variants, args.endpoints):
        print(line)
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    package_variants = {k for k, v in VARIANTS.items() if v.auth in ("sqlite", "redis")}
    return 1 if skipped.keys() & package_variants else 0


if __name__ == "__main__":
    run(main)
