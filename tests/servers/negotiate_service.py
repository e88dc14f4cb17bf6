"""A small Kerberized HTTP service (SPNEGO, ``Authorization: Negotiate``) on a free loopback port.

It stands for the downstream services a Dash app reaches with its users' Kerberos
tickets: it accepts a token with the keys of ``HTTP/localhost`` from the test
KDC's keytab and answers who the client is, so a test can prove that a ticket
(stored, renewed, impersonated, delegated) really works against a service.
The acceptor reads its keytab and replay cache from a per-call credential
store, so nothing in the test process's environment is changed.
"""
from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import gssapi
import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .app_server import free_port
from .kdc_server import KdcServer


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: tests assert on responses and ``accepted``."""

    def log_request(self, *args, **kwargs) -> None:
        pass


def _challenge(body: dict, token: bytes | None = None) -> Response:
    header = "Negotiate" + (f" {base64.b64encode(token).decode()}" if token else "")
    return Response(json.dumps(body), status=401, mimetype="application/json",
                    headers={"WWW-Authenticate": header})


@dataclass
class NegotiateService:
    """``NegotiateService(kdc).start()``: GET ``url`` with a valid token answers 200
    ``{"principal": "alice@EXAMPLE.ORG"}``, anything else 401 ``WWW-Authenticate: Negotiate``."""

    kdc: KdcServer
    port: int = field(default_factory=free_port)
    #: The client principal of every accepted token, in order (tests check who really called).
    accepted: list[str] = field(default_factory=list)
    _server: BaseWSGIServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        # localhost, not 127.0.0.1: the client derives the target principal (HTTP@localhost) from it.
        return f"http://localhost:{self.port}"

    @property
    def _store(self) -> dict[str, str]:
        # A replay cache of our own, in the KDC's folder (MIT's default lives in /var/tmp).
        return {"keytab": f"FILE:{self.kdc.http_keytab}", "rcache": f"file2:{self.kdc.folder / 'http.rcache2'}"}

    def start(self) -> "NegotiateService":
        self._server = make_server("127.0.0.1", self.port, self._app, threaded=True,
                                   request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="negotiate-service", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    @Request.application
    def _app(self, request: Request) -> Response:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "negotiate" or not value.strip():
            return _challenge({"error": "no Negotiate token"})
        try:
            token = base64.b64decode(value.strip(), validate=True)
            creds = gssapi.Credentials(usage="accept", store=self._store)
            context = gssapi.SecurityContext(creds=creds, usage="accept")
            reply = context.step(token)
        except (gssapi.exceptions.GSSError, ValueError) as exc:
            return _challenge({"error": f"{type(exc).__name__}: {exc}"})
        if not context.complete:  # Kerberos through SPNEGO completes in one round trip
            return _challenge({"error": "context not complete after one token"}, reply)
        principal = str(context.initiator_name)
        self.accepted.append(principal)
        response = Response(json.dumps({"principal": principal}), mimetype="application/json")
        if reply:  # mutual authentication: the service proves itself to the client
            response.headers["WWW-Authenticate"] = f"Negotiate {base64.b64encode(reply).decode()}"
        return response


SPNEGO = gssapi.Mechanism.from_sasl_name("SPNEGO")


def _mech_for(creds: gssapi.Credentials) -> gssapi.OID:
    """SPNEGO, as browsers send; plain Kerberos for credentials that hold only the krb5 mechanism
    (``creds.impersonate(name)`` without ``mechs=[SPNEGO]``: SPNEGO would find nothing to offer)."""
    try:
        mechs = creds.mechs
    except gssapi.exceptions.GSSError:
        return SPNEGO  # expired or missing tickets: let step() raise what a real client sees
    if mechs and SPNEGO not in mechs and gssapi.MechType.kerberos in mechs:
        return gssapi.MechType.kerberos
    return SPNEGO


def negotiate_token(url: str, creds: gssapi.Credentials) -> str:
    """The ``Authorization`` value for ``url`` (target ``HTTP@<host>``) made with ``creds``."""
    target = gssapi.Name(f"HTTP@{urlsplit(url).hostname}", gssapi.NameType.hostbased_service)
    context = gssapi.SecurityContext(name=target, creds=creds, usage="initiate", mech=_mech_for(creds))
    return "Negotiate " + base64.b64encode(context.step()).decode()


def ccache_creds(ccache: str | Path) -> gssapi.Credentials:
    """Initiator credentials from a ticket cache (a path, or ``TYPE:residual``), without KRB5CCNAME."""
    name = str(ccache)
    if ":" not in name.split("/", 1)[0]:
        name = f"FILE:{name}"
    return gssapi.Credentials(usage="initiate", store={"ccache": name})


def negotiate_get(url: str, ccache_path: str | Path | None = None, *, creds: gssapi.Credentials | None = None,
                  **kwargs) -> requests.Response:
    """GET ``url`` with a Negotiate token from the tickets in ``ccache_path`` (or from ``creds``).

    gssapi errors (no TGT, expired tickets, KDC unreachable) are raised, not turned into a 401.
    """
    if creds is None:
        if ccache_path is None:
            raise ValueError("give ccache_path or creds")
        creds = ccache_creds(ccache_path)
    headers = {**kwargs.pop("headers", {}), "Authorization": negotiate_token(url, creds)}
    return requests.get(url, headers=headers, timeout=kwargs.pop("timeout", 10), **kwargs)
