"""Kerberos single sign-on: HTTP Negotiate (SPNEGO, RFC 4559) with the app's keytab.

A browser signed in to a Kerberos realm (a Windows domain, or ``kinit``) answers
the sign-in route's ``WWW-Authenticate: Negotiate`` challenge with a service
ticket for ``HTTP/<host>``, which this connector accepts with python-gssapi and
the app's keytab: no form, no password, no identity provider round trip. The
KDC is not asked at all; the keytab's key proves the ticket.

``get_username()`` is the principal's name without the realm for the configured
realm (``alice``), and the whole principal (``carol@PARTNER.EXAMPLE``) for a
realm listed in ``DASH_AUTH_KRB5_ALLOWED_REALMS``; other realms are refused.
Credentials the browser delegates go back to the core as a Kerberos ticket.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

from ..config import KRB5_KEYTAB, KRB5_REALM, KRB5_SERVICE_PRINCIPAL
from ..errors import (AuthenticationError, ConfigurationError, KerberosTicketUnavailable, ProviderRefused,
                      RealmNotAllowed, ServiceUnavailable)
from ..identity import Identity
from ..settings import Option, Settings, name_list
from .base import Finding, Negotiated, NegotiateConnector

log = logging.getLogger("dash_enterprise_auth")

ALLOWED_REALMS = Option("DASH_AUTH_KRB5_ALLOWED_REALMS", name_list, (),
                        help="other realms whose people may sign in with Kerberos (as name@REALM)")

#: Seconds a token's authenticator is remembered, so it cannot sign anyone in twice: MIT's default
#: clock skew (300 s) on either side of the time the browser wrote in it.
REPLAY_WINDOW = 600
#: Decoded bytes; Active Directory tickets with a large PAC stay well under this.
MAX_TOKEN = 64 * 1024
CHECK_TIMEOUT = 10.0

FAILED = "Kerberos sign-in failed. Sign in to your computer's domain (or run kinit) and try again."
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
SPNEGO_OID = bytes.fromhex("2b0601050502")
KRB5_OIDS = (bytes.fromhex("2a864886f712010202"), bytes.fromhex("2a864882f712010202"))  # MIT's, Microsoft's


class SpnegoConnector(NegotiateConnector):
    """Accepts Negotiate tokens for ``DASH_AUTH_KRB5_SERVICE_PRINCIPAL`` (default ``HTTP/<host of the
    request>@REALM``) with the keys in ``DASH_AUTH_KRB5_KEYTAB``."""

    name = "spnego"
    options = (KRB5_REALM, KRB5_KEYTAB, KRB5_SERVICE_PRINCIPAL, ALLOWED_REALMS)  # the first three: core settings too

    def __init__(self, realm: str, keytab: str, service_principal: str | None = None,
                 allowed_realms: tuple[str, ...] = ()) -> None:
        self.realm = realm
        self.keytab = keytab
        self.service_principal = service_principal and (
            service_principal if "@" in service_principal else f"{service_principal}@{realm}")
        self.allowed_realms = frozenset(allowed_realms)

    @classmethod
    def from_settings(cls, settings: Settings) -> "SpnegoConnector":
        try:
            import gssapi  # noqa: F401
            import krb5  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(
                f"DASH_AUTH_CONNECTOR='spnego' needs a package that is not installed ({exc.name}): "
                "pip install 'dash-enterprise-auth[spnego]'") from None
        realm, keytab = settings.get(KRB5_REALM), settings.get(KRB5_KEYTAB)
        if not realm or not keytab:
            raise ConfigurationError(
                "DASH_AUTH_CONNECTOR=spnego needs DASH_AUTH_KRB5_REALM (the realm people sign in with) and "
                "DASH_AUTH_KRB5_KEYTAB (the app's keytab, holding the key of HTTP/<the app's host name>)")
        path = keytab.split(":", 1)[1] if keytab.upper().startswith("FILE:") else keytab
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigurationError(f"DASH_AUTH_KRB5_KEYTAB={keytab!r} cannot be read ({exc.strerror}): use the "
                                     "path of the app's keytab, readable by the app's user") from None
        try:
            held = keytab_principals(path)
        except Exception as exc:  # pykrb5's Krb5Error: not a keytab
            raise ConfigurationError(f"DASH_AUTH_KRB5_KEYTAB={keytab!r} is not valid: use a keytab file "
                                     f"({_reason(exc)})") from None
        if not held:
            raise ConfigurationError(f"DASH_AUTH_KRB5_KEYTAB={keytab!r} is not valid: it holds no key; use the "
                                     "app's keytab, holding the key of HTTP/<the app's host name>")
        connector = cls(realm, path, settings.get(KRB5_SERVICE_PRINCIPAL), settings.get(ALLOWED_REALMS))
        if connector.service_principal:
            try:
                connector._acceptor("")
            except Exception as exc:  # gssapi's GSSError: the keytab holds no key of that principal
                raise ConfigurationError(
                    f"DASH_AUTH_KRB5_KEYTAB={keytab!r} is not valid: use a keytab holding the key of "
                    f"DASH_AUTH_KRB5_SERVICE_PRINCIPAL {connector.service_principal} ({_reason(exc)})") from None
        return connector

    # -- signing in ----------------------------------------------------------------------------

    def accept(self, token: bytes, host: str) -> Negotiated:
        import gssapi

        if not token or len(token) > MAX_TOKEN:
            raise ProviderRefused(FAILED, log_detail=f"a Negotiate token of {len(token)} bytes")
        if token.startswith(b"NTLMSSP"):
            raise ProviderRefused("Your browser offered NTLM, which this app does not accept: it signs in with "
                                  "Kerberos only. Sign in to your computer's domain and try again.",
                                  log_detail="an NTLM token")
        try:
            creds = self._acceptor(host)
        except AuthenticationError:
            raise
        except gssapi.exceptions.GSSError as exc:
            raise ProviderRefused(FAILED, log_detail=f"no key of {self._principal_for(host)} in the keytab: "
                                                     f"{_reason(exc)}") from None
        context = gssapi.SecurityContext(creds=creds, usage="accept")
        # A bad token inside SPNEGO may pass step() and fail at the next use of the context: every
        # use is in here, so a forged token is a refusal, never a 500.
        try:
            reply = context.step(token)
            if not context.complete:
                raise ProviderRefused(FAILED, log_detail="the token needs another round trip (not Kerberos)")
            principal = str(context.initiator_name)
            anonymous = bool(context.actual_flags & gssapi.RequirementFlag.anonymity)
            delegated = context.delegated_creds
        except gssapi.exceptions.GSSError as exc:
            raise ProviderRefused(FAILED, log_detail=f"Negotiate token refused: {_reason(exc)}") from None
        if anonymous or principal.startswith("WELLKNOWN/ANONYMOUS"):
            raise ProviderRefused(FAILED, log_detail=f"an anonymous Kerberos principal ({principal[:128]})")
        identity = self._identity(principal, token)
        return Negotiated(identity, reply or None, _forwarded(delegated, principal))

    def _principal_for(self, host: str) -> str:
        return self.service_principal or f"HTTP/{host}@{self.realm}"

    def _acceptor(self, host: str) -> Any:
        """Acceptor credentials of the service the browser asked a ticket for."""
        import gssapi

        if not self.service_principal and not HOST_NAME.match(host):
            raise ProviderRefused(FAILED, log_detail=f"no service principal for the host name {host[:128]!r}")
        name = gssapi.Name(self._principal_for(host), gssapi.NameType.kerberos_principal)
        return gssapi.Credentials(name=name, usage="accept", store={"keytab": f"FILE:{self.keytab}"})

    def _identity(self, principal: str, token: bytes) -> Identity:
        name, _, realm = principal.rpartition("@")
        if realm == self.realm:
            username = name
        elif realm in self.allowed_realms:
            username = principal
        else:
            raise RealmNotAllowed(realm, log_detail=f"{principal[:256]}: realm not in DASH_AUTH_KRB5_ALLOWED_REALMS")
        once = {"id": authenticator_id(token), "until": time.time() + REPLAY_WINDOW}
        return Identity(username=username, connector=self.name, attributes={"principal": principal, "realm": realm},
                        private={"once": once})

    # -- health and check --------------------------------------------------------------------

    def ping(self) -> None:
        if not os.access(self.keytab, os.R_OK):
            raise ServiceUnavailable(log_detail=f"the keytab {self.keytab} cannot be read")

    def check(self, test_user: str | None = None) -> list[Finding]:
        try:
            held = keytab_principals(self.keytab)
        except Exception as exc:
            return [Finding(False, f"keytab {self.keytab}: cannot be read ({_reason(exc)})")]
        services = sorted({p for p in held if p.startswith("HTTP/") and p.endswith("@" + self.realm)})
        if self.service_principal:
            if self.service_principal not in held:
                return [Finding(False, f"keytab {self.keytab}: no key of {self.service_principal} "
                                       f"(it holds {', '.join(sorted(held)) or 'nothing'})")]
            services = [self.service_principal]
        elif not services:
            return [Finding(False, f"keytab {self.keytab}: no key of HTTP/<host>@{self.realm} "
                                   f"(it holds {', '.join(sorted(held)) or 'nothing'})")]
        findings = [Finding(True, f"keytab {self.keytab}: holds the key of {', '.join(services)}"
                                  + ("" if self.service_principal else " (the one of each request's host is used)"))]
        for principal in services[:3]:
            findings.append(self._kdc_round_trip(principal))
        return findings

    def _kdc_round_trip(self, principal: str) -> Finding:
        """Ask the KDC for a ticket to ``principal`` (as itself, with the keytab) and accept it with
        the keytab: the KDC answers, and the keytab's key is the one the KDC uses."""
        import gssapi

        from ..kerberos import memory_ccache

        def round_trip() -> None:
            name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
            with memory_ccache() as cache:
                client = gssapi.Credentials(name=name, usage="initiate",
                                            store={"client_keytab": f"FILE:{self.keytab}", "ccache": cache})
                token = gssapi.SecurityContext(name=name, creds=client, usage="initiate").step()
            acceptor = gssapi.Credentials(name=name, usage="accept", store={"keytab": f"FILE:{self.keytab}"})
            gssapi.SecurityContext(creds=acceptor, usage="accept").step(token)

        try:
            _within(CHECK_TIMEOUT, round_trip)
        except FutureTimeout:
            return Finding(False, f"KDC for {self.realm}: no answer within {CHECK_TIMEOUT:g} s")
        except Exception as exc:
            return Finding(False, f"KDC for {self.realm}: a ticket for {principal} that the keytab opens could not "
                                  f"be had: {_reason(exc)}")
        return Finding(True, f"KDC for {self.realm} answers: it issued a ticket for {principal} that the keytab's "
                             "key opens")


def _forwarded(delegated: Any, principal: str) -> Any:
    """What the browser delegated as a kerberos.Ticket, or a KerberosTicketUnavailable saying why none."""
    from ..kerberos import ticket_of

    if delegated is None:
        return KerberosTicketUnavailable(
            "the browser delegated no Kerberos credentials at sign-in (its policy must allow delegation to this "
            "site, e.g. Chromium's AuthNegotiateDelegateAllowlist)")
    try:
        return ticket_of(delegated, principal)
    except Exception as exc:  # GSSError, or no TGT among them
        log.warning("dash-enterprise-auth: the credentials %s delegated could not be kept: %s", principal, exc)
        return KerberosTicketUnavailable(f"the credentials the browser delegated could not be kept: {_reason(exc)}")


def keytab_principals(keytab: str) -> set[str]:
    """The principals a keytab holds keys of."""
    import krb5

    context = krb5.init_context()
    table = krb5.kt_resolve(context, f"FILE:{keytab}".encode())
    return {krb5.unparse_name_flags(context, entry.principal).decode() for entry in table}


def _within(seconds: float, call: Callable[[], None]) -> None:
    """``call()`` on a thread of its own, waited for at most ``seconds`` (gssapi releases the GIL
    while it waits for the KDC, which MIT krb5 does for about 27 s)."""
    done: Future[None] = Future()

    def run() -> None:
        try:
            done.set_result(call())
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=run, name="dash-auth-kdc-check", daemon=True).start()
    done.result(timeout=seconds)


def _reason(exc: Exception) -> str:
    from ..kerberos import _gss_reason

    return _gss_reason(exc)


# -- the authenticator inside a token: what makes it single-use --------------------------------

def authenticator_id(token: bytes) -> str:
    """A digest of the Kerberos authenticator in ``token`` (SPNEGO around Kerberos, or Kerberos
    alone): the part a browser makes anew for each token, which a replay repeats even when the
    bytes around it differ. The whole token's digest when it cannot be found there."""
    try:
        found = _authenticator_cipher(token)
    except (IndexError, ValueError):
        found = None
    return hashlib.sha256(b"authenticator:" + found if found else b"token:" + token).hexdigest()


def _authenticator_cipher(token: bytes) -> bytes | None:
    tag, start, end = _tlv(token, 0)
    if tag != 0x60:
        return None
    oid_tag, oid_start, oid_end = _tlv(token, start)
    oid = token[oid_start:oid_end]
    if oid_tag != 0x06:
        return None
    if oid == SPNEGO_OID:  # NegTokenInit [0] SEQUENCE { ..., mechToken [2] OCTET STRING }
        init = _child(token, oid_end, end, 0xA0)
        inner = _child(token, *_inside(token, init), 0x30)
        mech_token = _child(token, *_inside(token, inner), 0xA2)
        octets = _child(token, *_inside(token, mech_token), 0x04)
        start, end = _inside(token, octets)
        return _authenticator_cipher(token[start:end])
    if oid in KRB5_OIDS and token[oid_end:oid_end + 2] == b"\x01\x00":  # AP-REQ
        ap_req = _child(token, oid_end + 2, end, 0x6E)
        fields = _child(token, *_inside(token, ap_req), 0x30)
        authenticator = _child(token, *_inside(token, fields), 0xA4)  # EncryptedData
        encrypted = _child(token, *_inside(token, authenticator), 0x30)
        cipher = _child(token, *_inside(token, encrypted), 0xA2)
        octets = _child(token, *_inside(token, cipher), 0x04)
        start, end = _inside(token, octets)
        return token[start:end]
    return None


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at ``offset``."""
    tag, length, start = data[offset], data[offset + 1], offset + 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:
            raise ValueError("DER length")
        length, start = int.from_bytes(data[start:start + size], "big"), start + size
    if start + length > len(data):
        raise ValueError("DER element past the end")
    return tag, start, start + length


def _inside(data: bytes, offset: int) -> tuple[int, int]:
    _, start, end = _tlv(data, offset)
    return start, end


def _child(data: bytes, start: int, end: int, tag: int) -> int:
    """The offset of the first element tagged ``tag`` among those from ``start`` to ``end``."""
    while start < end:
        found, _, after = _tlv(data, start)
        if found == tag:
            return start
        start = after
    raise ValueError(f"no DER element {tag:#x}")
