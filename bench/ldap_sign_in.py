"""LDAP sign-ins per second through the app's HTTP sign-in, next to the raw ldap3 floor.

One throwaway OpenLDAP slapd (tests/servers/slapd_server.py) serves two kinds
of load, each from the same ``--clients`` (8) concurrent clients:

  app:   ``POST /_dash-auth/login`` to examples.app under gunicorn (``--backend
         fastapi``: uvicorn; ``quart``: hypercorn, bench/backend_app.py) with the
         LDAP connector, as a browser's sign-in form sends it; a sign-in
         counts when the answer is a 302 that sets the session cookie;
  floor: what any LDAP sign-in needs, written directly with ldap3: search the
         person with a service connection kept open per client, then a new
         connection, bind as the entry found with the password, unbind.

Both use the same TLS (LDAPS by default, certificate checked against the
test CA), the same users and the same client model. Timed runs alternate
floor and app round by round; the table shows sign-ins/s per round, the
medians, the app/floor ratio and whether it reaches the 0.8 target, then the
CPU each kind of sign-in cost. See bench/README.md.

Run from the repo root with an interpreter that has the package installed
plus ldap3, cryptography, requests and gunicorn (Debian's slapd installed):
``python3.11 bench/ldap_sign_in.py`` (about 2 minutes).
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import multiprocessing
import os
import secrets
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode, urlsplit

import requests

from processes import (BACKENDS, AppServer, Backend, BenchError, cpu_starved, package_rev, process_cpu, run,
                       start_app_server)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.servers

TARGET = 0.8  # the app's sign-ins/s should be at least this share of the floor's
NOISY_SPREAD = 0.25  # rounds of one kind differing by more than this share of their median
COOKIE_NAME = "dash-auth-session"  # dash_enterprise_auth.session.COOKIE_NAME over plain http
LOGIN_PATH = "/_dash-auth/login"
# Seeded people of tests.servers.slapd_server that sign in with their password.
DEFAULT_USERS = "alice,bob,jsmith,nina"
# What the connector asks for in its search when groups come from memberOf (no
# DASH_AUTH_LDAP_GROUP_BASE): username, mail, display name, cn, AD flags, memberOf.
USER_ATTRIBUTES = ["uid", "mail", "displayName", "cn", "userAccountControl", "memberOf"]


# -- one sign-in of each kind --------------------------------------------------------------------

@dataclass
class ClientConfig:
    ldap_host: str
    ldap_port: int
    ldaps: bool
    start_tls: bool
    ca_file: str
    base_dn: str
    service_dn: str
    service_password: str
    app_url: str
    users: list[tuple[str, str]]


class FloorSignIn:
    """The least an LDAP sign-in costs with ldap3, with the connector's safe settings:
    certificate and host name verified, referrals not followed, no schema read, and
    TCP_NODELAY (as the connector sets it; without it each bind waits ~40 ms for a
    delayed ACK, which would make the floor slow rather than fast)."""

    def __init__(self, cfg: ClientConfig) -> None:
        from ldap3 import NONE, Server, Tls

        self.cfg = cfg
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=cfg.ca_file, sni=cfg.ldap_host)
        self.server = Server(cfg.ldap_host, port=cfg.ldap_port, use_ssl=cfg.ldaps, tls=tls,
                             get_info=NONE, connect_timeout=5)
        self.service = None

    def _open(self, user: str, password: str):
        from ldap3 import AUTO_BIND_NONE, Connection

        connection = Connection(self.server, user=user, password=password, auto_bind=AUTO_BIND_NONE,
                                auto_referrals=False, raise_exceptions=False, receive_timeout=5,
                                read_only=True, check_names=False)
        connection.open()
        connection.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.cfg.start_tls and not connection.start_tls():
            raise BenchError(f"StartTLS refused: {connection.result}")
        return connection

    def _service_connection(self):
        if self.service is None or self.service.closed or not self.service.bound:
            self.service = self._open(self.cfg.service_dn, self.cfg.service_password)
            if not self.service.bind():
                raise BenchError(f"service bind refused: {self.service.result}")
        return self.service

    def sign_in(self, username: str, password: str) -> None:
        from ldap3 import SUBTREE
        from ldap3.utils.conv import escape_filter_chars

        service = self._service_connection()
        service.search(self.cfg.base_dn, f"(uid={escape_filter_chars(username)})", search_scope=SUBTREE,
                       attributes=USER_ATTRIBUTES, size_limit=2)
        entries = [r for r in service.response or () if r.get("type") == "searchResEntry"]
        if len(entries) != 1:
            self.service = None
            raise BenchError(f"search for {username}: {len(entries)} entries, {service.result}")
        user = self._open(entries[0]["dn"], password)
        try:
            if not user.bind():
                raise BenchError(f"bind as {username} refused: {user.result}")
        finally:
            user.unbind()
        if not entries[0]["attributes"].get("memberOf"):
            raise BenchError(f"{username} has no memberOf")


def form_post(username: str, password: str) -> str:
    return urlencode({"username": username, "password": password, "next": "/"})


class AppSignIn:
    """The sign-in form's POST as a browser tab on the app's own page sends it, from the
    standard library's http.client: one keep-alive connection per client (reopened when the
    server closes it), no cookie sent, so every POST is a new browser session signing in.
    The default client: it costs the shared CPUs about 0.6 ms per sign-in, where requests
    costs about 3 ms that a real deployment spends in the user's browser, not on the server."""

    def __init__(self, cfg: ClientConfig) -> None:
        parts = urlsplit(cfg.app_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Origin": cfg.app_url, "Sec-Fetch-Site": "same-origin",
                        "Content-Type": "application/x-www-form-urlencoded"}
        self.connection: http.client.HTTPConnection | None = None

    def reset(self) -> None:
        """Forget the connection (the server closes idle keep-alive connections after 2 s)."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def sign_in(self, username: str, password: str) -> None:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            self.connection.request("POST", LOGIN_PATH, body=form_post(username, password), headers=self.headers)
            r = self.connection.getresponse()
            r.read()
        except BaseException:
            self.reset()
            raise
        if r.will_close:
            self.reset()
        if r.status != 302:
            raise BenchError(f"HTTP {r.status} for {username}")
        if not any(c.startswith(COOKIE_NAME + "=") for c in r.headers.get_all("Set-Cookie") or ()):
            raise BenchError(f"302 without a {COOKIE_NAME} cookie for {username}")


class RequestsAppSignIn:
    """The same POST with requests (--http-client requests): one Session per client,
    cookies cleared before every sign-in."""

    def __init__(self, cfg: ClientConfig) -> None:
        self.url = cfg.app_url + LOGIN_PATH
        self.headers = {"Origin": cfg.app_url, "Sec-Fetch-Site": "same-origin"}
        self.http = requests.Session()

    def reset(self) -> None:
        pass  # requests reconnects by itself when the server closed an idle connection

    def sign_in(self, username: str, password: str) -> None:
        self.http.cookies.clear()
        r = self.http.post(self.url, data={"username": username, "password": password, "next": "/"},
                           headers=self.headers, allow_redirects=False, timeout=30)
        if r.status_code != 302:
            raise BenchError(f"HTTP {r.status_code} for {username}")
        if COOKIE_NAME not in r.cookies:
            raise BenchError(f"302 without a {COOKIE_NAME} cookie for {username}")


HTTP_CLIENTS = {"stdlib": AppSignIn, "requests": RequestsAppSignIn}


# -- the concurrent clients ----------------------------------------------------------------------

def client_main(index: int, pipe: Pipe, cfg: ClientConfig, http_client: str) -> None:
    """Wait for (kind, start_at, end_at) orders, sign in in a loop until end_at, report back."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    app = HTTP_CLIENTS[http_client](cfg)
    clients = {"floor": FloorSignIn(cfg), "app": app}
    shift = index % len(cfg.users)  # clients start on different users
    users = itertools.cycle(cfg.users[shift:] + cfg.users[:shift])
    while True:
        order = pipe.recv()
        if order is None:
            return
        kind, start_at, end_at = order
        app.reset()  # idle since the last run: its connection may have been closed
        sign_in = clients[kind].sign_in
        time.sleep(max(0.0, start_at - time.monotonic()))
        done, errors, samples, latencies = 0, 0, [], []
        while True:
            began = time.monotonic()
            if began >= end_at:
                break
            username, password = next(users)
            try:
                sign_in(username, password)
            except Exception as exc:  # every failure is reported, none is retried
                errors += 1
                if len(samples) < 3:
                    samples.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            finished = time.monotonic()
            if finished <= end_at:  # one still running at the end is not counted
                done += 1
                latencies.append(finished - began)
        pipe.send((done, errors, samples, latencies))


# Counters read around each timed run: CPU seconds of our processes by role, and seconds
# during which some runnable task (ours or not) waited for a CPU. /proc/stat's machine-wide
# figures are left out: they are tick-sampled and came out lower than our own processes'.


def children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def counters(roles: dict[str, list[int]]) -> dict[str, float | None]:
    values: dict[str, float | None] = {role: sum(map(process_cpu, pids)) for role, pids in roles.items()}
    values["starved"] = cpu_starved()
    return values


@dataclass
class RunResult:
    rate: float
    p50_ms: float
    p90_ms: float
    errors: int
    samples: list[str]
    usage: dict[str, float | None]  # counter deltas over the run: the roles and "starved"


class Clients:
    """``count`` clients kept for the whole run, each its own process (or thread), so a
    floor client keeps its service connection open as a long-lived app worker does."""

    def __init__(self, count: int, cfg: ClientConfig, model: str, http_client: str) -> None:
        self.pipes: list[Pipe] = []
        self.workers: list[BaseProcess | threading.Thread] = []
        ctx = multiprocessing.get_context("spawn")
        for index in range(count):
            mine, theirs = multiprocessing.Pipe()
            if model == "process":
                worker = ctx.Process(target=client_main, args=(index, theirs, cfg, http_client), daemon=True)
            else:
                worker = threading.Thread(target=client_main, args=(index, theirs, cfg, http_client), daemon=True)
            worker.start()
            self.pipes.append(mine)
            self.workers.append(worker)

    def pids(self) -> list[int]:
        if all(isinstance(w, threading.Thread) for w in self.workers):
            return [os.getpid()]  # the clients are threads of this process
        return [w.pid for w in self.workers if isinstance(w, BaseProcess) and w.pid]

    def run(self, kind: str, seconds: float, roles: dict[str, list[int]]) -> RunResult:
        """All clients sign in from the same moment for ``seconds``; the CPU counters of
        ``roles`` (and of the clients) are read at that moment and at the end."""
        roles = {**roles, "clients": self.pids()}
        start_at = time.monotonic() + 0.3
        end_at = start_at + seconds
        for pipe in self.pipes:
            pipe.send((kind, start_at, end_at))
        time.sleep(max(0.0, start_at - time.monotonic()))
        before = counters(roles)
        time.sleep(max(0.0, end_at - time.monotonic()))
        after = counters(roles)
        done, errors, samples, latencies = 0, 0, [], []
        for pipe in self.pipes:
            if not pipe.poll(60):
                raise BenchError(f"a client did not report back from a {kind} run")
            d, e, s, lat = pipe.recv()
            done, errors, samples, latencies = done + d, errors + e, samples + s, latencies + lat
        usage = {k: None if before[k] is None or after[k] is None else after[k] - before[k] for k in after}
        latencies.sort()
        pick: Callable[[float], float] = (
            (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000)
            if latencies else (lambda q: float("nan")))
        return RunResult(done / seconds, pick(0.5), pick(0.9), errors, samples, usage)

    def stop(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for worker in self.workers:
            worker.join(5)
            if isinstance(worker, BaseProcess) and worker.is_alive():
                worker.terminate()
                worker.join(5)


# -- the app under gunicorn, uvicorn or hypercorn -------------------------------------------------


def app_env(slapd, tls: str, tmp: Path) -> dict[str, str]:
    """The caller's environment without DASH_AUTH_*, plus the LDAP sign-in settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASH_AUTH_")}
    env.update({
        "PYTHONUNBUFFERED": "1",
        "DASH_AUTH_CONNECTOR": "ldap",
        "DASH_AUTH_LDAP_URL": slapd.ldaps_url if tls == "ldaps" else slapd.ldap_url,
        "DASH_AUTH_LDAP_START_TLS": "true" if tls == "starttls" else "false",
        "DASH_AUTH_LDAP_CA_FILE": str(slapd.ca_file),
        "DASH_AUTH_LDAP_BIND_DN": slapd.service_dn,
        "DASH_AUTH_LDAP_BIND_PASSWORD": slapd.service_password,
        "DASH_AUTH_LDAP_USER_BASE": slapd.base_dn,
        "DASH_AUTH_ALLOWED_GROUPS": "analysts",
        "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
        "DASH_AUTH_SESSION_STORE": f"sqlite:///{tmp}/sessions.sqlite3",
    })
    return env


def start_app(env: dict[str, str], backend: Backend, workers: int, threads: int, tmp: Path) -> AppServer:
    """The backend's server on a free loopback port: for gunicorn, gthread workers, or sync ones
    when ``threads`` is 1. Returns once it answers."""
    options = ["--worker-class", "gthread", "--threads", str(threads)] if threads > 1 else []  # the last counts
    return start_app_server(backend, env, workers, tmp, options=options)


def check_app(app: AppServer, cfg: ClientConfig, alice_password: str) -> None:
    """Refuse to time an app whose guard is off or whose sign-in does not ask the directory."""
    layout = app.url + "/_dash-layout"
    same_origin = {"Sec-Fetch-Site": "same-origin"}
    if requests.get(layout, headers=same_origin, timeout=10, allow_redirects=False).status_code == 200:
        raise BenchError("/_dash-layout answers 200 without a session: the guard is not active "
                         "(is the package installed, so Dash loads its dash_hooks plugin?)")
    client = RequestsAppSignIn(cfg)  # keeps the cookie, for the check that it opens the app
    for username, password in cfg.users:
        try:
            client.sign_in(username, password)
        except BenchError as exc:
            raise BenchError(f"sign-in check: {exc}\n{app.log_tail()}") from None
    client.sign_in("alice", alice_password)  # in analysts, the allowed group
    r = client.http.get(layout, headers=same_origin, timeout=10, allow_redirects=False)
    if r.status_code != 200:
        raise BenchError(f"/_dash-layout with alice's new session answered {r.status_code}")
    wrong = requests.post(app.url + LOGIN_PATH, data={"username": "alice", "password": "not-hers", "next": "/"},
                          headers=client.headers, timeout=30, allow_redirects=False)
    if wrong.status_code == 302:
        raise BenchError("a wrong password signed in: the app does not check passwords with the directory")
    client.sign_in("alice", alice_password)  # a success clears alice's failure count


def unloaded_latency(sign_in: Callable[[str, str], None], users: list[tuple[str, str]], n: int = 20) -> float:
    """Median milliseconds of ``n`` sign-ins one after the other (nothing else running)."""
    times = []
    for i in range(n):
        began = time.perf_counter()
        sign_in(*users[i % len(users)])
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"python {sys.version.split()[0]}"]
    for dist in ("ldap3", "gunicorn", "uvicorn", "hypercorn", "flask", "fastapi", "quart", "dash", "requests"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} (absent)")
    slapd = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "slapd"], capture_output=True, text=True)
    return ", ".join(parts + [f"slapd {slapd.stdout.strip() or '?'}"])


# -- the run -------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10, help="seconds per timed run (default 10)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of one floor and one app run (default 5)")
    p.add_argument("--warmup", type=float, default=3, help="untimed seconds of each kind first (default 3)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--client-model", choices=("process", "thread"), default="process",
                   help="clients as processes (default) or as threads of this process (one GIL)")
    p.add_argument("--http-client", choices=sorted(HTTP_CLIENTS), default="stdlib",
                   help="what POSTs the sign-in form: http.client (default, lean) or requests")
    p.add_argument("--backend", choices=sorted(BACKENDS), default="flask",
                   help="the app's Dash backend: flask under gunicorn (default), fastapi under uvicorn,"
                        " quart under hypercorn")
    p.add_argument("--workers", type=int, default=8,
                   help="server workers (default 8: one per client, like the floor's processes)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads per gunicorn worker: 1 = sync workers (default), more = gthread")
    p.add_argument("--users", default=DEFAULT_USERS, help=f"seeded uids to rotate (default {DEFAULT_USERS})")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--starttls", dest="tls", action="store_const", const="starttls",
                     help="ldap:// upgraded with StartTLS instead of ldaps://")
    tls.add_argument("--plain", dest="tls", action="store_const", const="plain",
                     help="ldap:// without TLS (passwords in clear text; for comparison only)")
    p.set_defaults(tls="ldaps")
    args = p.parse_args()
    args.users = [u for u in args.users.split(",") if u]
    if min(args.clients, args.rounds, args.workers, args.threads) < 1 or not args.users:
        p.error("--clients, --rounds, --workers, --threads and --users need at least 1")
    if args.threads > 1 and args.backend != "flask":
        p.error("--threads is for gunicorn (--backend flask)")
    return args


def print_report(args: argparse.Namespace, results: dict[str, list[RunResult]],
                 unloaded: dict[str, float], load_before: float) -> float:
    """Print the tables; return the app/floor ratio."""
    cpus = os.cpu_count() or 1
    backend = BACKENDS[args.backend]
    server = (f"{args.workers} workers" if args.backend != "flask" else
              f"{args.workers} sync workers" if args.threads == 1 else
              f"{args.workers} gthread workers x {args.threads} threads")
    tls = {"ldaps": "LDAPS", "starttls": "ldap:// + StartTLS", "plain": "ldap:// WITHOUT TLS"}[args.tls]
    model = "processes" if args.client_model == "process" else "threads of one process"
    print(f"\nLDAP sign-ins, {args.clients} concurrent clients ({model}), {tls},"
          f" users {', '.join(args.users)}")
    print(f"app:   examples.app on {backend.label} under {backend.program} ({server}), SQLite sessions; POST {LOGIN_PATH} -> 302 + cookie,"
          f" sent with {'http.client' if args.http_client == 'stdlib' else 'requests'}")
    print("floor: ldap3 search (service connection kept per client) + new connection, bind, unbind")
    print(f"{args.seconds:g} s x {args.rounds} interleaved rounds; slapd, the app and the clients share"
          f" the same {cpus} CPUs (1-min load average {load_before:.2f} at start)")
    print(f"repo {package_rev()}; {versions()}")

    floor = [r.rate for r in results["floor"]]
    app = [r.rate for r in results["app"]]
    ratios = [a / f for a, f in zip(app, floor)]
    ratio = statistics.median(ratios)
    print()
    print(f"{'':<10}{'median/s':>9}{'p50 ms':>8}{'p90 ms':>8}{'alone ms':>10}  sign-ins/s per round")
    for kind, rates in (("floor", floor), ("app", app)):
        runs = results[kind]
        print(f"{kind:<10}{statistics.median(rates):>9.1f}{statistics.median(r.p50_ms for r in runs):>8.1f}"
              f"{statistics.median(r.p90_ms for r in runs):>8.1f}{unloaded[kind]:>10.1f}  "
              + ", ".join(f"{x:.1f}" for x in rates))
    print(f"{'app/floor':<10}{ratio:>9.3f}{'':>26}  " + ", ".join(f"{x:.3f}" for x in ratios))

    print()
    print(f"{'CPU ms per sign-in':<19}{'slapd':>6}{'app':>6}{'clients':>8}{'sum':>6}"
          f"   CPUs busy (of {cpus})   CPU-starved")
    for kind in ("floor", "app"):
        runs = results[kind]

        def per_sign_in(role: str) -> float:
            return statistics.median(r.usage[role] * 1000 / max(1.0, r.rate * args.seconds) for r in runs)

        per = {role: per_sign_in(role) for role in ("slapd", "app", "clients")}
        ours = statistics.median(sum(r.usage[k] for k in ("slapd", "app", "clients")) / args.seconds
                                 for r in runs)
        starved = ("n/a" if any(r.usage["starved"] is None for r in runs) else
                   f"{statistics.median(r.usage['starved'] / args.seconds for r in runs):.0%} of the time")
        app_cpu = f"{per['app']:>6.2f}" if kind == "app" else f"{'-':>6}"
        print(f"{kind:<19}{per['slapd']:>6.2f}{app_cpu}{per['clients']:>8.2f}{sum(per.values()):>6.2f}"
              f"   {ours:>14.2f}   {starved}")

    for kind, rates in (("floor", floor), ("app", app)):
        if len(rates) > 1 and (max(rates) - min(rates)) / statistics.median(rates) > NOISY_SPREAD:
            print(f"!! {kind}: rounds differ by more than {NOISY_SPREAD:.0%} of the median;"
                  " the machine was busy, rerun before trusting the ratio")
    return ratio


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # so finally cleans up
    from tests.servers.slapd_server import PASSWORDS, SlapdServer

    unknown = [u for u in args.users if u not in PASSWORDS]
    if unknown:
        raise BenchError(f"not seeded in the test directory: {', '.join(unknown)}")
    started = time.monotonic()
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    results: dict[str, list[RunResult]] = {"floor": [], "app": []}
    unloaded: dict[str, float] = {}
    slapd = app = clients = None
    with tempfile.TemporaryDirectory(prefix="dash-auth-ldap-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            slapd = SlapdServer(tmp / "slapd").start()
            app = start_app(app_env(slapd, args.tls, tmp), BACKENDS[args.backend], args.workers, args.threads, tmp)
            cfg = ClientConfig(
                ldap_host="localhost", ldap_port=slapd.ldaps_port if args.tls == "ldaps" else slapd.ldap_port,
                ldaps=args.tls == "ldaps", start_tls=args.tls == "starttls", ca_file=str(slapd.ca_file),
                base_dn=slapd.base_dn, service_dn=slapd.service_dn, service_password=slapd.service_password,
                app_url=app.url, users=[(u, PASSWORDS[u]) for u in args.users],
            )
            check_app(app, cfg, PASSWORDS["alice"])
            unloaded["floor"] = unloaded_latency(FloorSignIn(cfg).sign_in, cfg.users)
            unloaded["app"] = unloaded_latency(HTTP_CLIENTS[args.http_client](cfg).sign_in, cfg.users)
            clients = Clients(args.clients, cfg, args.client_model, args.http_client)
            roles = {"slapd": [slapd.process.pid], "app": [app.process.pid, *children(app.process.pid)]}
            for kind in ("floor", "app"):
                warm = clients.run(kind, args.warmup, roles)
                if warm.errors:
                    raise BenchError(f"{warm.errors} {kind} sign-ins failed while warming up: "
                                     f"{'; '.join(warm.samples)}\napp log:\n{app.log_tail()}")
            print(f"slapd, app and {args.clients} clients up; {args.rounds} rounds x (floor + app)"
                  f" x {args.seconds:g} s", file=sys.stderr)
            for round_no in range(1, args.rounds + 1):
                for kind in (("floor", "app") if round_no % 2 else ("app", "floor")):
                    r = clients.run(kind, args.seconds, roles)
                    print(f"  round {round_no} {kind:<5}: {r.rate:7.1f} sign-ins/s  p50 {r.p50_ms:6.1f} ms"
                          f"  errors {r.errors}", file=sys.stderr)
                    if r.errors:
                        raise BenchError(f"{r.errors} {kind} sign-ins failed in round {round_no} (any failure"
                                         f" voids the run): {'; '.join(r.samples)}\napp log:\n{app.log_tail()}")
                    results[kind].append(r)
                    time.sleep(0.5)  # let the sign-ins cut off at the end finish before the next run
        finally:
            if clients is not None:
                clients.stop()
            if app is not None:
                app.stop()
            if slapd is not None:
                slapd.stop()

    ratio = print_report(args, results, unloaded, load_before)
    print(f"\ntarget app >= {TARGET} x floor: {ratio:.3f} {'MET' if ratio >= TARGET else 'MISSED'}"
          " (median of the per-round ratios; 0 failed sign-ins)")
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    run(main)
