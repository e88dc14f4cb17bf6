"""Peak memory of one gunicorn worker that serves 100,000 distinct live sessions.

Why: every worker keeps per-process caches: session records it serves from
memory (at most 2048) and cookie values whose signature it has checked (at
most 4096).
Were either unbounded, a worker would grow with every session it ever saw, and
a long-running app with many users would end in the OOM killer. This fills a
store with N live sessions through the package's own session layer, starts
``examples.app:server`` under gunicorn with one sync worker on that store,
sends ``GET /_dash-layout`` once with each session's cookie (wrk and
bench/wrk_cookies.lua), and reads the worker's VmRSS before and VmHWM (peak)
after from /proc. It does so for SQLite, for Redis (its own redis-server) and,
for comparison, for the same app with no ``DASH_AUTH_*`` variable, which
ignores the cookies. Then the per-request cost must not depend on how many
sessions are live: the same worker, with the 100,000 sessions still live,
serves as many requests going round ``--few`` (10) of them, and that rate is
compared with a store that holds only those 10.
See bench/README.md.

    python bench/session_memory.py [--sessions 100000] [--few 10] [--stores none,sqlite,redis]
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from processes import prepare
from redis_server import RedisServer, RedisUnavailable, start_redis
from throughput import ROOT, BenchError, Server, package_rev, start_server, versions

LUA_SCRIPT = Path(__file__).resolve().with_name("wrk_cookies.lua")
PATH = "/_dash-layout"
HEADERS = {"Accept": "application/json", "Sec-Fetch-Site": "same-origin"}
LABELS = {"none": "no auth (baseline)", "sqlite": "sqlite", "redis": "redis"}
GROWTH_TARGET_MIB = 14  # what 100,000 sessions cost a worker before records were kept in memory (+13 MiB)
FLAT_TARGET = 0.90  # req/s going round a few sessions with 100,000 live against with only those few live


@dataclass
class Row:
    """One line of the table; memory in KiB, as /proc reports it."""

    store: str
    sessions: int
    answered: int
    expected: int
    non200: int
    socket_errors: int
    hit_seconds: float
    hwm_start: int  # peak while the worker started, before any measured request
    rss_before: int
    hwm_after: int
    rss_after: int
    store_kib: int | None  # SQLite file + WAL, or redis-server's RSS
    few_in_use_rps: float | None = None  # req/s going round --few of the sessions, all still live


def proc_status_kib(pid: int, name: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/<pid>/status, in KiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        raise BenchError(f"worker {pid} is gone (killed by gunicorn's timeout? out of memory?)") from None
    for line in status.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise BenchError(f"no {name} in /proc/{pid}/status")


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/<pid>/clear_refs``, Linux >= 4.0).

    A worker's peak is set while it imports Dash and the app, well above what
    it needs afterwards; without the reset, that start-up peak would hide any
    growth caused by the sessions."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError as exc:
        raise BenchError(f"cannot reset the worker's VmHWM: {exc}") from None


def gunicorn_worker(master: int, timeout: float = 30) -> int:
    """The pid of the only child of the gunicorn master: the worker we measure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            # fields after "(comm)", which may itself contain spaces: state, ppid, ...
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                children.append(int(entry.name))
        if len(children) == 1:
            return children[0]
        time.sleep(0.2)
    raise BenchError(f"gunicorn master {master} did not have exactly one worker within {timeout:.0f} s")


def fill_store(url: str, secret_key: str, count: int, max_seconds: float) -> list[str]:
    """Create ``count`` live sessions through the package's session layer, the same
    code a sign-in runs; return their cookie values."""
    from dash_enterprise_auth.connectors import Identity
    from dash_enterprise_auth.session import SessionLayer, Timeouts
    from dash_enterprise_auth.settings import Secret
    from dash_enterprise_auth.stores import open_store

    layer = SessionLayer(open_store(url), Secret(secret_key), Timeouts(idle=3600, max_age=7200))
    deadline = time.monotonic() + max_seconds
    tokens: list[str] = []
    for n in range(count):
        if n % 1000 == 0 and time.monotonic() > deadline:
            raise BenchError(f"filling the store took over {max_seconds:.0f} s ({n} of {count} sessions)")
        token, _record = layer.start(Identity(f"user{n}", groups=("analysts",)))
        tokens.append(token)
    return tokens


def fake_tokens(count: int) -> list[str]:
    """Cookie values shaped like real ones (id.signature), for the baseline, which ignores them."""
    return [f"{secrets.token_urlsafe(32)}.{secrets.token_urlsafe(20)}" for _ in range(count)]


def send_each_once(server: Server, tokens: list[str], tmp: Path,
                   max_seconds: float) -> tuple[int, int, int, int, float]:
    """GET the layout once per token with wrk over one connection (see wrk_cookies.lua);
    returns (answered, expected, non-200, socket errors, seconds)."""
    cookie_file = tmp / "cookies.txt"
    cookie_file.write_text("".join(tok + "\n" for tok in tokens))
    done_file = tmp / "cookies.txt.done"
    done_file.unlink(missing_ok=True)
    cmd = ["wrk", "-t1", "-c1", "-d", f"{int(max_seconds)}s", "--timeout", "10s",
           "-s", str(LUA_SCRIPT)]
    for name, value in HEADERS.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(server.url + PATH)
    wrk = subprocess.Popen(cmd, env={**os.environ, "BENCH_COOKIE_FILE": str(cookie_file)},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL)
    try:
        # wrk runs for all of -d even when every thread has stopped; SIGINT ends it
        # early and it still prints its summary.
        deadline = time.monotonic() + max_seconds
        while wrk.poll() is None and time.monotonic() < deadline:
            if done_file.exists():
                wrk.send_signal(signal.SIGINT)
                break
            time.sleep(0.1)
        stdout, stderr = wrk.communicate(timeout=30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    match = re.search(r"BENCH_RESULT (.*)", stdout)
    if wrk.returncode != 0 or not match:
        raise BenchError(f"wrk failed ({wrk.returncode}): {stdout}{stderr}")
    v = {k: int(x) for k, x in (kv.split("=") for kv in match.group(1).split())}
    return v["answered"], v["expected"], v["non200"], v["socket_errors"], v["duration_us"] / 1e6


def measure(store: str, args: argparse.Namespace, tmp: Path, live: int | None = None) -> Row:
    """Fill the store, start one worker on it, hit it once per session, read its memory.
    With ``live``, the store holds only that many sessions and the same number of requests
    goes round them (the per-request cost with few sessions, each served from memory)."""
    redis: RedisServer | None = None
    server: Server | None = None
    try:
        key = secrets.token_urlsafe(48)
        started = time.monotonic()
        if store == "none":
            url, tokens, env = "", fake_tokens(args.sessions), {}
        else:
            if store == "sqlite":
                url = f"sqlite:///{tmp}/sessions.sqlite3"
            else:
                redis = start_redis()
                url = redis.url
            tokens = fill_store(url, key, live or args.sessions, args.max_seconds)
            if live:
                tokens = (tokens * (args.sessions // live + 1))[:args.sessions]
            env = {
                "DASH_AUTH_CONNECTOR": "basic",
                "DASH_AUTH_USERS_FILE": str(ROOT / "examples" / "demo-users.json"),
                "DASH_AUTH_ALLOWED_GROUPS": "analysts",
                "DASH_AUTH_SECRET_KEY": key,
                "DASH_AUTH_SESSION_STORE": url,
            }
        fill_seconds = time.monotonic() - started
        print(f"  {store}: {len(tokens)} cookies ready in {fill_seconds:.0f} s", file=sys.stderr)

        server = start_server(f"memory-{store}", "examples.app:server", env, 1, tmp)
        worker = gunicorn_worker(server.process.pid)
        # The guard must be on, and one request with a real cookie warms the worker
        # up (imports, layout) so that "before" is a serving worker, not a cold one.
        bare = requests.get(server.url + PATH, headers=HEADERS, timeout=10, allow_redirects=False)
        if store != "none" and bare.status_code == 200:
            raise BenchError("the app answers 200 without a cookie: the guard is not active"
                             " (is the package installed with `pip install -e .`?)")
        warm = requests.get(server.url + PATH, headers=HEADERS, timeout=10, allow_redirects=False,
                            cookies={"dash-auth-session": tokens[0]})
        if warm.status_code != 200:
            raise BenchError(f"a stored session's cookie got {warm.status_code}: {warm.text[:300]}")
        hwm_start = proc_status_kib(worker, "VmHWM")
        reset_peak(worker)
        rss_before = proc_status_kib(worker, "VmRSS")

        answered, expected, non200, errors, hit_seconds = send_each_once(
            server, tokens, tmp, args.max_seconds)
        print(f"  {store}: {answered} requests in {hit_seconds:.0f} s", file=sys.stderr)
        hwm_after, rss_after = proc_status_kib(worker, "VmHWM"), proc_status_kib(worker, "VmRSS")

        few_in_use_rps = None
        if store != "none" and not live:  # the same store and worker, the requests going round --few sessions
            round_few = (tokens[:args.few] * (args.sessions // args.few + 1))[:args.sessions]
            done, _, bad, _, seconds = send_each_once(server, round_few, tmp, args.max_seconds)
            if bad:
                raise BenchError(f"{bad} non-200 answers going round {args.few} sessions")
            few_in_use_rps = done / seconds
        store_kib: int | None = None
        if store == "sqlite":
            store_kib = sum(p.stat().st_size for p in tmp.glob("sessions.sqlite3*")) // 1024
        elif redis is not None:
            store_kib = redis.rss_kib()
        return Row(LABELS[store], 0 if store == "none" else live or len(tokens), answered,
                   expected, non200, errors, hit_seconds, hwm_start, rss_before, hwm_after, rss_after, store_kib,
                   few_in_use_rps)
    finally:
        if server is not None:
            server.stop()
        if redis is not None:
            redis.stop()


def print_table(rows: list[Row]) -> None:
    """Memory in MiB. "peak" is VmHWM since the reset just before the first measured request."""
    def mib(kib: int) -> str:
        return f"{kib / 1024:.1f}"

    print(f"\n{'':<20}{'':>29}{'worker memory, MiB':^51}")
    print(f"{'store':<20}{'sessions':>10}{'requests':>10}{'non-200':>9}"
          f"{'start peak':>11}{'RSS before':>11}{'peak after':>11}{'RSS after':>10}{'growth':>8}"
          f"{'req/s':>7}{'store MiB':>10}")
    for r in rows:
        store = "-" if r.store_kib is None else mib(r.store_kib)
        print(f"{r.store:<20}{r.sessions:>10,}{r.answered:>10,}{r.non200:>9,}"
              f"{mib(r.hwm_start):>11}{mib(r.rss_before):>11}{mib(r.hwm_after):>11}"
              f"{mib(r.rss_after):>10}{mib(r.hwm_after - r.rss_before):>8}"
              f"{r.answered / r.hit_seconds:>7.0f}{store:>10}")
    for r in rows:
        if r.answered < r.expected:
            print(f"!! {r.store}: only {r.answered:,} of {r.expected:,} requests answered"
                  " within --max-seconds")
        if r.non200 or r.socket_errors:
            print(f"!! {r.store}: {r.non200:,} non-200 responses, {r.socket_errors:,} socket errors")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=100_000, help="live sessions (default 100000)")
    p.add_argument("--stores", default="none,sqlite,redis",
                   help="comma list from none,sqlite,redis (default all three)")
    p.add_argument("--few", type=int, default=10,
                   help="live sessions of the comparison run, as many requests round them (default 10)")
    p.add_argument("--max-seconds", type=float, default=300,
                   help="upper bound for filling one store, and for sending its requests (300)")
    args = p.parse_args()
    args.stores = [s for s in args.stores.split(",") if s]
    if not args.stores or set(args.stores) - set(LABELS):
        p.error("unknown store")
    if args.sessions < 1:
        p.error("--sessions must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    if not prepare():
        return 2
    started, load_before = time.monotonic(), os.getloadavg()[0]
    rows: list[Row] = []
    failed: dict[str, str] = {}
    few: dict[str, Row] = {}
    for store in args.stores:
        for live in ((None, args.few) if store != "none" else (None,)):
            with tempfile.TemporaryDirectory(prefix="dash-auth-bench-mem-") as tmp:
                try:
                    row = measure(store, args, Path(tmp), live)
                except (BenchError, RedisUnavailable) as exc:
                    failed[store] = str(exc)
                    print(f"{store} not measured: {exc}", file=sys.stderr)
                    break
                rows.append(row)
                if live:
                    few[store] = row

    print(f"\nexamples.app under gunicorn, 1 sync worker, GET {PATH} once per cookie"
          f" (wrk -t1 -c1); {os.cpu_count()} CPUs,"
          f" 1-min load average {load_before:.2f} at start")
    print(f"repo {package_rev()}; {versions()}")
    print_table(rows)
    for store, why in failed.items():
        print(f"\n{LABELS[store]} not measured: {why.splitlines()[0]}")
    print("\nstart peak: VmHWM after start-up and one warm-up request, then reset;"
          " RSS before: VmRSS right after the reset;\npeak after: VmHWM once every cookie was"
          " answered; growth: peak after - RSS before;\nstore MiB: SQLite file + WAL,"
          " or redis-server's RSS")
    print()
    for row in rows:
        if row.store == LABELS["none"] or row in few.values():
            continue
        growth = (row.hwm_after - row.rss_before) / 1024
        print(f"target worker growth with {row.sessions:,} sessions <= {GROWTH_TARGET_MIB} MiB, {row.store}:"
              f" {growth:.1f} MiB {'MET' if growth <= GROWTH_TARGET_MIB else 'MISSED'}")
        small = next((f for f in few.values() if f.store == row.store), None)
        if small is not None and row.few_in_use_rps:
            ratio = row.few_in_use_rps / (small.answered / small.hit_seconds)
            print(f"target req/s going round {small.sessions} sessions, with {row.sessions:,} live >= {FLAT_TARGET} x"
                  f" with {small.sessions} live, {row.store}: {ratio:.3f} {'MET' if ratio >= FLAT_TARGET else 'MISSED'}"
                  f" ({row.few_in_use_rps:.0f} vs {small.answered / small.hit_seconds:.0f} req/s; each of"
                  f" {row.sessions:,} sessions once, every record read from the store:"
                  f" {row.answered / row.hit_seconds:.0f} req/s)")
    print(f"total {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
