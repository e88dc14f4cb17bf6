"""Validated SAML ACS posts per second through the app, next to python3-saml's own floor.

A real IdP (SimpleSAMLphp, tests/servers/saml_idp.py) signs one genuine
response at start-up; after that it stays out of the timed path. Each ACS post
needs what a browser coming back from the IdP carries: a RelayState the app
issued (single use, stored with the AuthnRequest id) and a signed response
whose InResponseTo names that request and whose assertion id is new (the app's
replay cache refuses a second use). So, before every round, each client asks
the app for fresh sign-ins (``GET /_dash-auth/login``: RelayState + the
AuthnRequest ID in the redirect) and mints one response per sign-in from the
genuine one: new Response and Assertion IDs, the InResponseTo, fresh times
(the IdP's own lifetimes), both signatures made again with the IdP's key
(RSA-SHA256, as the IdP signs). Then, timed, interleaved round by round:

  app:   ``POST /_dash-auth/callback/saml`` (SAMLResponse + RelayState) to
         examples.app under gunicorn (``--backend fastapi``: uvicorn; ``quart``:
         hypercorn, bench/backend_app.py) with the saml connector; a post counts
         when the answer is a 302 that sets the session cookie, any other
         answer aborts the run;
  floor: the same responses validated in-process by python3-saml with the
         connector's own settings (strict, signed assertions required, SHA-1
         refused, XML schema checked):
         ``OneLogin_Saml2_Auth(request_data, settings).process_response(request_id=...)``;
  server: the same posts to bench/bare_acs_app.py under the app's server
         program: what the server itself costs (no package, no validation).

All from the same ``--clients`` (4) concurrent client processes. Prints
posts/s per round, the medians, the app/floor ratio against the 0.8 target and
the CPU each post cost. See bench/README.md.

Run from the repo root with the package installed, python3-saml, gunicorn and
requests, and Debian's simplesamlphp + php-cli:
``python3.11 bench/saml_acs.py`` (about 2 minutes).
"""
from __future__ import annotations

import argparse
import base64
import copy
import datetime
import http.client
import multiprocessing
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from dash_enterprise_auth.stores import redact
from processes import (BACKENDS, AppServer, Backend, BenchError, cpu_starved, free_port, package_rev, process_cpu,
                       run, start_app_server)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.servers

KINDS = ("floor", "app", "server")  # what a timed run does with the posts: see the docstring
BARE_APPS = {"gunicorn": "bench.bare_acs_app:wsgi", "uvicorn": "bench.bare_acs_app:asgi",
             "hypercorn": "bench.bare_acs_app:asgi"}
TARGET = 0.8  # the app's validated ACS posts/s should be at least this share of the floor's
NOISY_SPREAD = 0.25  # rounds of one kind differing by more than this share of their median
COOKIE_NAME = "dash-auth-session"  # dash_enterprise_auth.session.COOKIE_NAME over plain http
LOGIN_PATH = "/_dash-auth/login?next=/"
ACS_PATH = "/_dash-auth/callback/saml"
SP_ENTITY_PATH = "/_dash-auth/saml/metadata"
SLS_PATH = "/_dash-auth/saml/sls"
USER = ("alice", "alice-password")  # tests.servers.saml_idp.USERS, in the group "analysts"
NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
      "ds": "http://www.w3.org/2000/09/xmldsig#"}
TIME_ATTRIBUTES = ("IssueInstant", "NotBefore", "NotOnOrAfter", "AuthnInstant", "SessionNotOnOrAfter")
# What a browser sends when it follows the app's sign-in link, and when the IdP's page posts to the ACS.
NAVIGATE = {"Accept": "text/html", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}


# -- responses: a genuine one as template, minted copies for fresh sign-ins -----------------------

def saml_time(value: str) -> datetime.datetime:
    value = re.sub(r"\.\d+", "", value.strip()).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(value)


def saml_time_text(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_in_started(location: str) -> tuple[str, str]:
    """(RelayState, AuthnRequest ID) of the app's redirect to the IdP (HTTP-Redirect binding:
    the SAMLRequest is raw-deflated, then base64)."""
    from lxml import etree

    query = parse_qs(urlsplit(location).query)
    try:
        relay_state, saml_request = query["RelayState"][0], query["SAMLRequest"][0]
        request = etree.fromstring(zlib.decompress(base64.b64decode(saml_request), -15))
    except (KeyError, IndexError, ValueError, zlib.error, etree.XMLSyntaxError) as exc:
        raise BenchError(f"the sign-in redirect carries no usable AuthnRequest ({exc}): {location[:300]}") from None
    request_id = request.get("ID")
    if not request_id:
        raise BenchError("the AuthnRequest has no ID")
    return relay_state, request_id


class Minter:
    """Responses to new AuthnRequests, made from the IdP's genuine response: what the IdP would
    send for another sign-in of the same person, signed with the IdP's key as it signs."""

    def __init__(self, genuine_xml: bytes, key_pem: str, cert_pem: str) -> None:
        from lxml import etree

        self.key_pem, self.cert_pem = key_pem, cert_pem
        root = etree.fromstring(genuine_xml)
        self.assertion_signed = root.find("saml:Assertion/ds:Signature", NS) is not None
        self.response_signed = root.find("ds:Signature", NS) is not None
        if not self.assertion_signed:
            raise BenchError("the IdP's genuine response has no signed assertion")
        for signature in root.iterfind(".//ds:Signature", NS):
            signature.getparent().remove(signature)
        self.template = root
        # Every time of the response, as an offset from the response's IssueInstant.
        issued = saml_time(root.get("IssueInstant"))
        # Elements are found again by position in document order (a deep copy keeps it).
        self.times: list[tuple[int, str, datetime.timedelta]] = []
        for position, element in enumerate(root.iter()):
            for name in TIME_ATTRIBUTES:
                if element.get(name):
                    self.times.append((position, name, saml_time(element.get(name)) - issued))

    def mint(self, request_id: str) -> str:
        """A base64 SAMLResponse answering ``request_id``, new ids, issued now."""
        from lxml import etree
        from onelogin.saml2.utils import OneLogin_Saml2_Utils

        root = copy.deepcopy(self.template)
        elements = list(root.iter())
        now = datetime.datetime.now(datetime.timezone.utc)
        for position, name, offset in self.times:
            elements[position].set(name, saml_time_text(now + offset))
        root.set("ID", "_" + secrets.token_hex(21))
        root.set("InResponseTo", request_id)
        assertion = root.find("saml:Assertion", NS)
        assertion.set("ID", "_" + secrets.token_hex(21))
        for confirmation in assertion.iterfind(".//saml:SubjectConfirmationData", NS):
            confirmation.set("InResponseTo", request_id)
        # The assertion is signed on its own (add_sign signs the element holding the first
        # saml:Issuer of the document it is given), then the whole response, as the IdP does.
        signed = OneLogin_Saml2_Utils.add_sign(etree.tostring(assertion), self.key_pem, self.cert_pem)
        root.replace(assertion, etree.fromstring(signed))
        xml = etree.tostring(root)
        if self.response_signed:
            xml = OneLogin_Saml2_Utils.add_sign(xml, self.key_pem, self.cert_pem)
        return base64.b64encode(xml).decode()


# -- the two kinds of ACS post ----------------------------------------------------------------------

@dataclass
class ClientConfig:
    app_url: str
    bare_url: str  # bench/bare_acs_app.py under the app's server program
    idp_origin: str
    metadata_file: str
    genuine_xml: bytes
    key_pem: str
    cert_pem: str


@dataclass
class Prepared:
    relay_state: str
    request_id: str
    saml_response: str

    def form(self) -> str:
        return urlencode({"SAMLResponse": self.saml_response, "RelayState": self.relay_state})


class AppClient:
    """http.client to the app: sign-ins started with GET /_dash-auth/login, then the ACS POST as
    the IdP's auto-posting page sends it (cross-site, no cookie of the app). Sync gunicorn
    workers close every connection, so each request opens a new one."""

    def __init__(self, url: str, cfg: ClientConfig) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.post_headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html",
                             "Origin": cfg.idp_origin, "Sec-Fetch-Site": "cross-site",
                             "Sec-Fetch-Mode": "navigate"}

    def _request(self, method: str, path: str, body: str | None = None,
                 headers: dict[str, str] | None = None) -> tuple[http.client.HTTPResponse, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response, response.read()
        finally:
            connection.close()

    def start_sign_in(self) -> tuple[str, str]:
        response, body = self._request("GET", LOGIN_PATH, headers=NAVIGATE)
        if response.status != 302:
            raise BenchError(f"GET {LOGIN_PATH}: HTTP {response.status}: {body[:300]!r}")
        return sign_in_started(response.headers.get("Location", ""))

    def post(self, item: Prepared, form: str | None = None) -> None:
        response, body = self._request("POST", ACS_PATH, form or item.form(), self.post_headers)
        cookies = response.headers.get_all("Set-Cookie") or []
        if response.status == 302 and any(c.startswith(COOKIE_NAME + "=") and not c.startswith(COOKIE_NAME + "=;")
                                           for c in cookies):
            return
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body.decode(errors="replace"))).strip()
        raise BenchError(f"ACS answered {response.status} (Location {response.headers.get('Location')!r},"
                         f" {len(cookies)} Set-Cookie, none a session) for request {item.request_id}: {text[:300]}")


class FloorValidator:
    """python3-saml alone, as shipped: the settings the connector gives it (built once per
    process: the least a validating SP must do), then one process_response per response.
    Importing the connector keeps python3-saml's compiled XSD schemas; the floor puts the
    library's own validate_xml back, which reads and compiles them for every message."""

    def __init__(self, cfg: ClientConfig) -> None:
        from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

        from dash_enterprise_auth.connectors.saml import SHIPPED_VALIDATE_XML, SamlConnector

        OneLogin_Saml2_XML.validate_xml = staticmethod(SHIPPED_VALIDATE_XML)

        parts = urlsplit(cfg.app_url)
        self.acs_url = cfg.app_url + ACS_PATH
        self.settings = SamlConnector(metadata_file=cfg.metadata_file).saml_settings(self.acs_url)
        self.request_base = {"https": "off", "http_host": parts.hostname, "server_port": str(parts.port),
                             "script_name": ACS_PATH, "get_data": {}}

    def validate(self, item: Prepared) -> None:
        from onelogin.saml2.auth import OneLogin_Saml2_Auth

        request_data = {**self.request_base,
                        "post_data": {"SAMLResponse": item.saml_response, "RelayState": item.relay_state}}
        auth = OneLogin_Saml2_Auth(request_data, self.settings)
        auth.process_response(request_id=item.request_id)
        if auth.get_errors() or not auth.is_authenticated():
            raise BenchError(f"python3-saml refused request {item.request_id}: {auth.get_last_error_reason()}")
        # What the connector reads afterwards (plain getters of what process_response parsed).
        if not (auth.get_nameid() and auth.get_last_assertion_id() and auth.get_attributes()):
            raise BenchError("python3-saml validated a response without NameID, assertion id or attributes")
        auth.get_session_index()
        auth.get_last_assertion_not_on_or_after()


# -- the concurrent clients ----------------------------------------------------------------------

def client_main(pipe: Pipe, cfg: ClientConfig) -> None:
    """Orders: ("prepare", n) starts n sign-ins at the app and mints their responses;
    ("run", kind, start_at) posts (app, server) or validates (floor) them all from start_at; None ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    app, minter = AppClient(cfg.app_url, cfg), Minter(cfg.genuine_xml, cfg.key_pem, cfg.cert_pem)
    bare = AppClient(cfg.bare_url, cfg)
    floor: FloorValidator | None = None
    batch: list[tuple[Prepared, str]] = []  # with the urlencoded form, made before the timed run
    while True:
        order = pipe.recv()
        if order is None:
            return
        try:
            if order[0] == "prepare":
                started = [app.start_sign_in() for _ in range(order[1])]
                batch = [(item, item.form()) for item in
                         (Prepared(state, rid, minter.mint(rid)) for state, rid in started)]
                pipe.send(("ok",))
                continue
            _, kind, start_at = order
            if kind == "floor" and floor is None:
                floor = FloorValidator(cfg)
            time.sleep(max(0.0, start_at - time.monotonic()))
            latencies = []
            for item, form in batch:
                began = time.monotonic()
                if kind == "app":
                    app.post(item, form)
                elif kind == "server":
                    bare.post(item, form)
                else:
                    floor.validate(item)
                latencies.append(time.monotonic() - began)
            pipe.send(("ok", time.monotonic(), latencies))
        except Exception as exc:  # every failure voids the run; the parent says why
            pipe.send(("error", f"{type(exc).__name__}: {exc}"[:1500]))


# CPU seconds of our processes by role, and seconds during which a runnable task (ours or
# another program's) waited for a CPU (Linux PSI), read at the start and end of each timed run.


def child_pids(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def snapshot(roles: dict[str, list[int]]) -> dict[str, float | None]:
    values: dict[str, float | None] = {role: sum(map(process_cpu, pids)) for role, pids in roles.items()}
    values["starved"] = cpu_starved()
    return values


@dataclass
class RunResult:
    posts: int
    seconds: float
    p50_ms: float
    p90_ms: float
    usage: dict[str, float | None]

    @property
    def rate(self) -> float:
        return self.posts / self.seconds


class Clients:
    """``count`` client processes kept for the whole run (spawned: no state shared with us)."""

    def __init__(self, count: int, cfg: ClientConfig) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.processes = []
        for _ in range(count):
            mine, theirs = ctx.Pipe()
            process = ctx.Process(target=client_main, args=(theirs, cfg), daemon=True)
            process.start()
            self.pipes.append(mine)
            self.processes.append(process)

    def _replies(self, what: str, timeout: float) -> list[tuple]:
        replies = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise BenchError(f"a client did not report back from {what} within {timeout:.0f} s")
            reply = pipe.recv()
            if reply[0] != "ok":
                raise BenchError(f"{what}: {reply[1]}")
            replies.append(reply)
        return replies

    def prepare(self, per_client: int) -> None:
        for pipe in self.pipes:
            pipe.send(("prepare", per_client))
        self._replies("starting sign-ins and minting responses", 300)

    def run(self, kind: str, roles: dict[str, list[int]]) -> RunResult:
        """Every client handles its whole batch from the same moment; the run ends when the
        last one is done. CPU counters are read at the start and at that end."""
        roles = {**roles, "clients": [p.pid for p in self.processes if p.pid]}
        start_at = time.monotonic() + 0.3
        for pipe in self.pipes:
            pipe.send(("run", kind, start_at))
        time.sleep(max(0.0, start_at - time.monotonic()))
        before = snapshot(roles)
        latencies: list[float] = []
        ended = start_at
        for pipe in self.pipes:  # the counters are read as soon as the last client reports
            if not pipe.poll(300):
                raise BenchError(f"a client did not finish its {kind} batch within 300 s")
            reply = pipe.recv()
            if reply[0] != "ok":
                raise BenchError(f"{kind}: {reply[1]}")
            ended = max(ended, reply[1])
            latencies += reply[2]
        after = snapshot(roles)
        usage = {k: None if before[k] is None or after[k] is None else after[k] - before[k] for k in after}
        latencies.sort()
        pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
        return RunResult(len(latencies), ended - start_at, pick(0.5), pick(0.9), usage)

    def stop(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)


# -- the servers ---------------------------------------------------------------------------------

def app_env(metadata_file: Path, tmp: Path, store: str | None = None) -> dict[str, str]:
    """The caller's environment without DASH_AUTH_*, plus the SAML sign-in settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASH_AUTH_")}
    env.update({
        "PYTHONUNBUFFERED": "1",
        "DASH_AUTH_CONNECTOR": "saml",
        "DASH_AUTH_SAML_IDP_METADATA_FILE": str(metadata_file),
        "DASH_AUTH_PRIVACY": "authorized",
        "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
        "DASH_AUTH_SESSION_STORE": store or f"sqlite:///{tmp}/sessions.sqlite3",
    })
    return env


def genuine_sign_in(app_url: str) -> dict[str, str]:
    """One real sign-in of alice at the IdP, started by the app: the form its page POSTs to the ACS."""
    from tests.servers.saml_idp import auto_post_form, submit_login

    started = requests.get(app_url + LOGIN_PATH, headers=NAVIGATE, allow_redirects=False, timeout=30)
    if started.status_code != 302:
        raise BenchError(f"GET {LOGIN_PATH} answered {started.status_code}: {started.text[:300]}")
    idp = requests.Session()
    try:
        action, fields = auto_post_form(submit_login(idp, idp.get(started.headers["Location"], timeout=30), *USER))
    except AssertionError as exc:
        raise BenchError(f"the IdP did not sign alice in: {exc}") from None
    if action != app_url + ACS_PATH or "SAMLResponse" not in fields or "RelayState" not in fields:
        raise BenchError(f"the IdP posts to {action} with {sorted(fields)}, not to the app's ACS")
    return fields


def check_app(app: AppServer, cfg: ClientConfig, genuine: dict[str, str]) -> None:
    """Refuse to time an app that does not validate what it is sent."""
    from lxml import etree

    client = AppClient(cfg.app_url, cfg)
    layout = app.url + "/_dash-layout"
    if requests.get(layout, headers={"Sec-Fetch-Site": "same-origin"}, timeout=10).status_code == 200:
        raise BenchError("/_dash-layout answers 200 without a session: the guard is not active "
                         "(is the package installed, so Dash loads its dash_hooks plugin?)")
    # The IdP's genuine answer signs alice in, and her cookie opens the app.
    answer = requests.post(app.url + ACS_PATH, data=genuine, headers=client.post_headers,
                           allow_redirects=False, timeout=30)
    if answer.status_code != 302 or COOKIE_NAME not in answer.cookies:
        raise BenchError(f"the IdP's genuine response did not sign in: {answer.status_code} "
                         f"{answer.text[:300]}\napp log:\n{app.log_tail()}")
    if requests.get(layout, cookies={COOKIE_NAME: answer.cookies[COOKIE_NAME]},
                    headers={"Sec-Fetch-Site": "same-origin"}, timeout=10).status_code != 200:
        raise BenchError("the new session does not open /_dash-layout")
    minter = Minter(base64.b64decode(genuine["SAMLResponse"]), cfg.key_pem, cfg.cert_pem)
    floor = FloorValidator(cfg)

    def refused(fields: Prepared, why: str, floor_too: bool = True) -> None:
        try:
            client.post(fields)
        except BenchError:
            pass
        else:
            raise BenchError(f"the app signed in with {why}: it does not validate responses")
        if not floor_too:
            return
        try:
            floor.validate(fields)
        except Exception:
            return
        raise BenchError(f"the floor validated {why}")

    # A minted response signs in, once; tampered or unanswered ones do not.
    state, request_id = client.start_sign_in()
    good = Prepared(state, request_id, minter.mint(request_id))
    floor.validate(good)
    client.post(good)
    refused(good, "a replayed response", floor_too=False)  # the replay cache is the app's own
    state, request_id = client.start_sign_in()
    fresh = minter.mint(request_id)
    tampered = base64.b64encode(base64.b64decode(fresh).replace(b">alice<", b">mallory<")).decode()
    refused(Prepared(state, request_id, tampered), "a response whose NameID was changed after signing")
    other_state, other_id = client.start_sign_in()
    refused(Prepared(state, request_id, minter.mint(other_id)), "a response to another sign-in's request")
    root = etree.fromstring(base64.b64decode(fresh))
    for signature in root.iterfind(".//ds:Signature", NS):
        signature.getparent().remove(signature)
    refused(Prepared(other_state, other_id, base64.b64encode(etree.tostring(root)).decode()),
            "an unsigned response")


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"python {sys.version.split()[0]}"]
    for dist in ("python3-saml", "xmlsec", "lxml", "gunicorn", "uvicorn", "hypercorn", "flask", "fastapi", "quart", "dash"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} (absent)")
    ssp = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "simplesamlphp"], capture_output=True, text=True)
    return ", ".join(parts + [f"simplesamlphp {ssp.stdout.strip() or '?'}"])


# -- where one ACS post's time goes (--profile) ----------------------------------------------------

def part_timers() -> tuple[list[tuple[str, list[float]]], Any]:
    """Wrap the main steps of an ACS post with perf_counter timers (a few calls per post, so
    unlike cProfile they cost next to nothing). Returns [(label, [seconds, calls])] and an undo."""
    import inspect

    from flask import Flask
    from onelogin.saml2.auth import OneLogin_Saml2_Auth
    from onelogin.saml2.utils import OneLogin_Saml2_Utils
    from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

    from dash_enterprise_auth import protection as protection_module
    from dash_enterprise_auth import round_trip
    from dash_enterprise_auth.connectors.saml import SamlConnector
    from dash_enterprise_auth.stores.sqlite import SQLiteStore

    targets = [
        ("whole request (Flask WSGI app)", Flask, "wsgi_app"),
        ("  round_trip.finish", round_trip, "finish"),
        ("    state taken (SQLite)", SQLiteStore, "take_pending"),
        ("    connector.complete", SamlConnector, "complete"),
        ("      python3-saml settings built", SamlConnector, "saml_settings"),
        ("      process_response", OneLogin_Saml2_Auth, "process_response"),
        ("        XML schema check", OneLogin_Saml2_XML, "validate_xml"),
        ("        signature checks", OneLogin_Saml2_Utils, "validate_sign"),
        ("    replay cache (SQLite)", SQLiteStore, "remember_once"),
        ("  session started (SQLite)", protection_module.SessionLayer, "start"),
        ("  audit line", protection_module, "audit"),
    ]
    parts: list[tuple[str, list[float]]] = []
    undo: list[tuple[Any, str, Any]] = []
    for label, owner, name in targets:
        original = inspect.getattr_static(owner, name)
        function = original.__func__ if isinstance(original, staticmethod) else original
        tally = [0.0, 0]

        def timed(*a: Any, _f: Any = function, _t: list = tally, **kw: Any) -> Any:
            began = time.perf_counter()
            try:
                return _f(*a, **kw)
            finally:
                _t[0] += time.perf_counter() - began
                _t[1] += 1

        setattr(owner, name, staticmethod(timed) if isinstance(original, staticmethod) else timed)
        undo.append((owner, name, original))
        parts.append((label, tally))

    def restore() -> None:
        for owner, name, original in undo:
            setattr(owner, name, original)

    return parts, restore


PROFILE_BATCHES = 4


def profile_acs(cfg: ClientConfig, metadata_file: Path, tmp: Path, posts: int) -> str:
    """The same ACS posts in this process, one after the other (Flask test client, the same
    settings, its own SQLite file) and the floor on the same responses, in alternating batches:
    milliseconds per post, split into the main steps."""
    import logging

    (tmp / "profile").mkdir()
    os.environ.update({k: v for k, v in app_env(metadata_file, tmp / "profile").items()
                       if k.startswith("DASH_AUTH_")})
    # The audit lines are written (formatted, to /dev/null) as they are to gunicorn's log.
    sink = logging.StreamHandler(open(os.devnull, "w"))  # open as long as the process
    sink.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    package_log = logging.getLogger("dash_enterprise_auth")
    package_log.addHandler(sink)
    package_log.setLevel(logging.INFO)
    import examples.app

    browser = examples.app.server.test_client(use_cookies=False)  # every post from a new browser
    minter = Minter(cfg.genuine_xml, cfg.key_pem, cfg.cert_pem)
    floor = FloorValidator(cfg)
    headers = {"Accept": "text/html", "Origin": cfg.idp_origin, "Sec-Fetch-Site": "cross-site"}

    def prepared(n: int) -> list[Prepared]:
        items = []
        for _ in range(n):
            started = browser.get(LOGIN_PATH, headers=NAVIGATE, base_url=cfg.app_url)
            state, rid = sign_in_started(started.headers["Location"])
            items.append(Prepared(state, rid, minter.mint(rid)))
        return items

    def post_all(items: list[Prepared]) -> None:
        for item in items:
            answer = browser.post(ACS_PATH, base_url=cfg.app_url, headers=headers,
                                  data={"SAMLResponse": item.saml_response, "RelayState": item.relay_state})
            if answer.status_code != 302 or COOKIE_NAME not in answer.headers.get("Set-Cookie", ""):
                raise BenchError(f"in-process ACS answered {answer.status_code}: {answer.get_data()[:300]!r}")

    post_all(prepared(20))  # warm-up: imports, the SQLite connection, the metadata file
    floor.validate(prepared(1)[0])
    parts, restore = part_timers()
    totals: dict[str, list[float]] = {"app": [], "floor": []}
    steps: dict[str, list[list[float]]] = {"app": [], "floor": []}
    try:
        for batch_no in range(PROFILE_BATCHES):  # alternating, as the rounds do
            items = prepared(posts)
            for kind in (("app", "floor") if batch_no % 2 == 0 else ("floor", "app")):
                for _, tally in parts:
                    tally[:] = [0.0, 0]
                began = time.perf_counter()
                if kind == "app":
                    post_all(items)
                else:
                    for item in items:
                        floor.validate(item)
                totals[kind].append((time.perf_counter() - began) * 1000 / posts)
                steps[kind].append([tally[0] * 1000 / posts for _, tally in parts])
    finally:
        restore()
    app_ms, floor_ms = statistics.median(totals["app"]), statistics.median(totals["floor"])
    lines = [f"one ACS post in-process: {PROFILE_BATCHES} x {posts} posts one after the other, Flask test client"
             " (no HTTP, no gunicorn), medians",
             f"  {'ms per post':<36}{'app':>6}{'floor':>7}",
             f"  {'all of it (client call / validate())':<36}{app_ms:>6.2f}{floor_ms:>7.2f}"
             f"   floor/app {floor_ms / app_ms:.3f}"]
    for index, (label, _) in enumerate(parts):
        app_step = statistics.median(run[index] for run in steps["app"])
        floor_step = statistics.median(run[index] for run in steps["floor"])
        floor_text = f"{floor_step:>7.2f}" if floor_step else f"{'-':>7}"
        lines.append(f"    {label:<34}{app_step:>6.2f}{floor_text}")
    return "\n".join(lines)


# -- the run -------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--posts", type=int, default=1200,
                   help="ACS posts per timed run, split among the clients (default 1200)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of one floor and one app run (default 5)")
    p.add_argument("--clients", type=int, default=4, help="concurrent client processes (default 4)")
    p.add_argument("--backend", choices=sorted(BACKENDS), default="flask",
                   help="the app's Dash backend: flask under gunicorn (default), fastapi under uvicorn,"
                        " quart under hypercorn")
    p.add_argument("--workers", type=int, default=2,
                   help="server workers (default 2: one per CPU on the machine measured)")
    p.add_argument("--session-store", metavar="URL",
                   help="DASH_AUTH_SESSION_STORE of the app, e.g. redis://127.0.0.1:6379/15 (flushed by nobody;"
                        " default: a SQLite file in a temp dir)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="afterwards, N ACS posts in-process, timed step by step: where the time goes")
    args = p.parse_args()
    if min(args.posts, args.rounds, args.clients, args.workers) < 1 or args.posts < args.clients:
        p.error("--rounds, --clients, --workers need at least 1, --posts at least --clients")
    return args


def print_report(args: argparse.Namespace, results: dict[str, list[RunResult]], per_client: int,
                 load_before: float) -> float:
    """Print the tables; return the app/floor ratio."""
    cpus = os.cpu_count() or 1
    posts = per_client * args.clients
    print(f"\nSAML ACS posts, {args.clients} concurrent client processes, {posts} fresh responses per run"
          f" (the same ones for every kind), RSA-SHA256 signed response and assertion")
    backend = BACKENDS[args.backend]
    print(f"app:    examples.app on {backend.label} under {backend.program} ({args.workers} workers),"
          f" sessions in {redact(args.session_store) if args.session_store else 'SQLite'};"
          f" POST {ACS_PATH} -> 302 + session cookie, sent with http.client")
    print("floor:  OneLogin_Saml2_Auth(request_data, settings).process_response(request_id) in the client"
          " processes, the connector's settings built once")
    print(f"server: the same posts to bench/bare_acs_app.py under {backend.program} ({args.workers} workers):"
          " the body read, a 302 with a cookie; no package, no validation")
    print(f"{args.rounds} interleaved rounds; the servers and the clients share the same {cpus} CPUs"
          f" (1-min load average {load_before:.2f} at start)")
    print(f"repo {package_rev()}; {versions()}")

    rates = {kind: [r.rate for r in results[kind]] for kind in KINDS}
    ratios = [a / f for a, f in zip(rates["app"], rates["floor"])]
    ratio = statistics.median(ratios)
    print()
    print(f"{'':<10}{'median/s':>9}{'p50 ms':>8}{'p90 ms':>8}  validated posts/s per round (server: answered)")
    for kind in KINDS:
        runs = results[kind]
        print(f"{kind:<10}{statistics.median(rates[kind]):>9.1f}{statistics.median(r.p50_ms for r in runs):>8.1f}"
              f"{statistics.median(r.p90_ms for r in runs):>8.1f}  " + ", ".join(f"{x:.1f}" for x in rates[kind]))
    print(f"{'app/floor':<10}{ratio:>9.3f}{'':>16}  " + ", ".join(f"{x:.3f}" for x in ratios))

    print()
    print(f"{'CPU ms per post':<16}{'server':>7}{'clients':>8}{'sum':>7}   CPUs busy (of {cpus})   CPU-starved")
    per: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        runs = results[kind]
        per[kind] = {role: statistics.median(r.usage[role] * 1000 / r.posts for r in runs)
                     for role in ("server", "clients")}
        busy = statistics.median((r.usage["server"] + r.usage["clients"]) / r.seconds for r in runs)
        starved = ("n/a" if any(r.usage["starved"] is None for r in runs) else
                   f"{statistics.median(r.usage['starved'] / r.seconds for r in runs):.0%} of the time")
        server_cpu = f"{per[kind]['server']:>7.2f}" if kind != "floor" else f"{'-':>7}"
        print(f"{kind:<16}{server_cpu}{per[kind]['clients']:>8.2f}{sum(per[kind].values()):>7.2f}"
              f"   {busy:>14.2f}   {starved}")
    print(f"{backend.program}'s own work on a post (the server row): {per['server']['server']:.2f} ms of CPU,"
          f" {per['server']['server'] / per['floor']['clients']:.0%} of a floor validation's")

    for kind, kind_rates in rates.items():
        if len(kind_rates) > 1 and (max(kind_rates) - min(kind_rates)) / statistics.median(kind_rates) > NOISY_SPREAD:
            print(f"!! {kind}: rounds differ by more than {NOISY_SPREAD:.0%} of the median;"
                  " the machine was busy, rerun before trusting the ratio")
    return ratio


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # so finally cleans up
    from tests.servers.saml_idp import SamlIdp

    started = time.monotonic()
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    per_client = args.posts // args.clients
    results: dict[str, list[RunResult]] = {kind: [] for kind in KINDS}
    idp = app = bare = clients = None
    profile = ""
    with tempfile.TemporaryDirectory(prefix="dash-auth-saml-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            port = free_port()
            app_url = f"http://127.0.0.1:{port}"
            idp = SamlIdp(tmp / "idp", app_url + SP_ENTITY_PATH, app_url + ACS_PATH, app_url + SLS_PATH).start()
            # The app reads the IdP's metadata from a file: the IdP is never on the app's path.
            metadata_file = tmp / "idp-metadata.xml"
            metadata_file.write_text(idp.metadata_xml())
            env = app_env(metadata_file, tmp, args.session_store)
            backend = BACKENDS[args.backend]
            app = start_app_server(backend, env, args.workers, tmp, port=port)
            (tmp / "bare").mkdir()
            bare = start_app_server(Backend("bare", backend.program, BARE_APPS[backend.program]), env,
                                    args.workers, tmp / "bare")
            genuine = genuine_sign_in(app.url)
            idp.stop()  # not needed any more: responses are minted from the genuine one
            cfg = ClientConfig(app_url=app.url, bare_url=bare.url, idp_origin=idp.url.split("/simplesaml/")[0],
                               metadata_file=str(metadata_file),
                               genuine_xml=base64.b64decode(genuine["SAMLResponse"]),
                               key_pem=idp.signing_key_pem, cert_pem=idp.signing_cert_pem)
            check_app(app, cfg, genuine)
            clients = Clients(args.clients, cfg)
            clients.prepare(max(10, per_client // 4))  # warm-up: every worker and client process
            for kind in KINDS:
                clients.run(kind, {})
            # The server processes whose CPU a run counts (every worker is up by now).
            roles = {kind: {"server": [s.process.pid, *child_pids(s.process.pid)]}
                     for kind, s in (("floor", app), ("app", app), ("server", bare))}
            print(f"IdP signed one response, app up; {args.rounds} rounds x (floor + app + server)"
                  f" x {per_client * args.clients} posts", file=sys.stderr)
            for round_no in range(1, args.rounds + 1):
                prepared_at = time.monotonic()
                clients.prepare(per_client)
                prepare_s = time.monotonic() - prepared_at
                for kind in (KINDS if round_no % 2 else KINDS[::-1]):
                    r = clients.run(kind, roles[kind])
                    print(f"  round {round_no} {kind:<6}: {r.rate:7.1f} posts/s  p50 {r.p50_ms:6.1f} ms"
                          f"  ({r.posts} in {r.seconds:.1f} s; prepared in {prepare_s:.1f} s)", file=sys.stderr)
                    results[kind].append(r)
            if args.profile:
                profile = profile_acs(cfg, metadata_file, tmp, args.profile)
        except BenchError as exc:
            if app is not None:
                raise BenchError(f"{exc}\napp log:\n{app.log_tail()}") from None
            raise
        finally:
            if clients is not None:
                clients.stop()
            for server in (app, bare, idp):
                if server is not None:
                    server.stop()

    ratio = print_report(args, results, per_client, load_before)
    print(f"\ntarget app >= {TARGET} x floor: {ratio:.3f} {'MET' if ratio >= TARGET else 'MISSED'}"
          " (median of the per-round ratios; every app post validated)")
    if profile:
        print("\n" + profile)
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    run(main)
