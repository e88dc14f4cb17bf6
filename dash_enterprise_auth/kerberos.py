"""The viewer's Kerberos tickets: obtained at a password sign-in, kept encrypted with the session.

With ``DASH_AUTH_KRB5_REALM`` set, a sign-in through the form (ldap or basic
connector) also asks the KDC for a TGT with the password just given, through
gssapi's ``acquire_cred_with_password`` (in memory, no ``KRB5CCNAME``, never
a command line). The credential cache it writes is read back as bytes,
encrypted with a key derived from the app secret (Fernet, from
``cryptography``) and kept in the session record's private part: never in a
cookie, ``get_user_data()``, a log line or a page. It goes with the session
at logout and expiry, and is renewed (libkrb5, see ``_renew_in_place``) before
it expires while the session is in use and the ticket's ``renew_till`` is still ahead.

A Kerberos failure never fails the sign-in: the viewer signs in, and
``get_kerberos_ticket_cache()`` raises, saying why there is no ticket. Neither
does a KDC that never answers: every KDC call on a request path is waited for
at most the connector's timeout (``Kerberos.ask_kdc``).
"""
from __future__ import annotations

import asyncio
import base64
import ctypes
import ctypes.util
import functools
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .errors import ConfigurationError, KerberosTicketUnavailable
from .settings import Secret

log = logging.getLogger("dash_enterprise_auth")

PRIVATE_KEY = "krb5"  # where Identity.private keeps the ticket
# Renew once less than this share of the ticket's life is left, so a request every few
# minutes keeps a ticket alive without asking the KDC on every request.
RENEW_WHEN_LEFT = 0.5
RENEWAL_RETRY = 60.0  # seconds before a failed renewal is tried again (per process)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Seconds a request waits for the KDC when the connector has no timeout of its own (basic).
KDC_TIMEOUT = 5.0
# KDC calls given up on that may still be waiting, per app and process: each holds a thread
# until MIT krb5 gives up itself (about 27 s for a KDC that never answers).
MAX_PENDING_KDC_CALLS = 4


@dataclass(frozen=True)
class Ticket:
    """A credential cache and the times that matter about its TGT."""

    principal: str
    ccache: bytes
    expires_at: float
    renew_till: float

    @property
    def renewable(self) -> bool:
        # MIT marks tickets renewable even with a zero renewable life: trust renew_till, not the flag.
        return self.renew_till > time.time()


@contextmanager
def private_ccache(data: bytes | None = None) -> Iterator[Path]:
    """A credential cache file only this process's user can read, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="dash-auth-krb5-"))  # mode 0700
    path = folder / "ccache"
    try:
        if data is not None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def memory_ccache() -> Iterator[str]:
    """The name of a credential cache in this process's memory, destroyed afterwards: what
    waits for the KDC, so a call still waiting when the process exits leaves no file behind."""
    import krb5

    context = krb5.init_context()
    cache = krb5.cc_new_unique(context, b"MEMORY")
    try:
        yield f"MEMORY:{cache.name.decode()}"
    finally:
        krb5.cc_destroy(context, cache)


def _renew_in_place(cache_name: str) -> None:
    """Renew the TGT in credential cache ``cache_name``, replacing what it holds, by calling
    libkrb5 itself: pykrb5's get_renewed_creds keeps the GIL while it waits for the KDC, which
    stops every thread of the process (the one meant to give up on it too); ctypes releases
    it for each call. KerberosTicketUnavailable carries libkrb5's message."""
    lib = _libkrb5()
    context, cache, client = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    creds = ctypes.create_string_buffer(1024)  # a krb5_creds (under 200 bytes), filled in by libkrb5

    def check(code: int) -> None:
        if code:
            message = lib.krb5_get_error_message(context, code)
            text = ctypes.string_at(message).decode(errors="replace")
            lib.krb5_free_error_message(context, message)
            raise KerberosTicketUnavailable(text)

    with ExitStack() as cleanup:
        check(lib.krb5_init_context(ctypes.byref(context)))
        cleanup.callback(lib.krb5_free_context, context)
        check(lib.krb5_cc_resolve(context, cache_name.encode(), ctypes.byref(cache)))
        cleanup.callback(lib.krb5_cc_close, context, cache)
        check(lib.krb5_cc_get_principal(context, cache, ctypes.byref(client)))
        cleanup.callback(lib.krb5_free_principal, context, client)
        check(lib.krb5_get_renewed_creds(context, creds, client, cache, None))
        cleanup.callback(lib.krb5_free_cred_contents, context, creds)
        check(lib.krb5_cc_initialize(context, cache, client))
        check(lib.krb5_cc_store_cred(context, cache, creds))


@functools.lru_cache(maxsize=None)
def _libkrb5() -> ctypes.CDLL:
    """The libkrb5 that gssapi and pykrb5 have loaded already (so MEMORY caches are shared)."""
    lib = ctypes.CDLL(ctypes.util.find_library("krb5") or "libkrb5.so.3")
    handle, out = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
    signatures = {
        "krb5_init_context": [out], "krb5_free_context": [handle],
        "krb5_cc_resolve": [handle, ctypes.c_char_p, out], "krb5_cc_close": [handle, handle],
        "krb5_cc_get_principal": [handle, handle, out], "krb5_free_principal": [handle, handle],
        "krb5_get_renewed_creds": [handle, handle, handle, handle, ctypes.c_char_p],
        "krb5_free_cred_contents": [handle, handle], "krb5_cc_initialize": [handle, handle, handle],
        "krb5_cc_store_cred": [handle, handle, handle],
        "krb5_get_error_message": [handle, ctypes.c_int32], "krb5_free_error_message": [handle, handle],
    }
    for name, arguments in signatures.items():
        getattr(lib, name).argtypes = arguments
        getattr(lib, name).restype = ctypes.c_int32
    for name in ("krb5_free_context", "krb5_free_principal", "krb5_free_cred_contents", "krb5_free_error_message"):
        getattr(lib, name).restype = None
    lib.krb5_get_error_message.restype = ctypes.c_void_p
    return lib


def _ticket_times(path: Path, principal: str) -> tuple[float, float]:
    """(end time, renew-till) of the TGT in a credential cache file, read with pykrb5."""
    import krb5

    realm = principal.rpartition("@")[2]
    tgt = f"krbtgt/{realm}@{realm}".encode()
    cache = krb5.cc_resolve(krb5.init_context(), f"FILE:{path}".encode())
    for creds in cache:
        if creds.server.name == tgt:
            return float(creds.times.endtime), float(creds.times.renew_till)
    raise KerberosTicketUnavailable(f"the KDC's answer for {principal} holds no TGT")


def ticket_of(creds: Any, principal: str) -> Ticket:
    """The TGT in gssapi credentials ``creds`` (acquired with a password, or delegated by a browser
    through Negotiate) as a :class:`Ticket`; gssapi's GSSError when it cannot be stored, and
    KerberosTicketUnavailable when it holds no TGT of ``principal``'s realm."""
    import gssapi.raw

    with private_ccache() as path:
        gssapi.raw.store_cred_into({b"ccache": f"FILE:{path}".encode()}, creds, usage="initiate", overwrite=True)
        expires_at, renew_till = _ticket_times(path, principal)
        return Ticket(principal, path.read_bytes(), expires_at, renew_till)


class Kerberos:
    """Tickets for one app: its realm and the key that encrypts them at rest."""

    def __init__(self, realm: str, secret_key: Secret, *, keytab: str | None = None,
                 service_principal: str | None = None, delegate_to: tuple[str, ...] = (),
                 timeout: float = KDC_TIMEOUT) -> None:
        try:  # all three now: a missing one must stop start-up, not fail every sign-in later
            import gssapi  # noqa: F401
            import krb5  # noqa: F401
            from cryptography.fernet import Fernet
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        except ImportError as exc:
            raise ConfigurationError(
                f"DASH_AUTH_KRB5_REALM needs a package that is not installed ({exc.name}): "
                "pip install 'dash-enterprise-auth[kerberos]'") from None

        self.realm = realm
        self.keytab = keytab
        self.service_principal = service_principal and self._principal(service_principal)
        self.delegate_to = tuple(self._principal(target) for target in delegate_to)
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"dash-enterprise-auth kerberos ticket cache v1").derive(secret_key.reveal().encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        # username -> when renewing may be tried again: a KDC that is down or hangs must not
        # cost every request a timeout.
        self._retry_renewal_at: dict[str, float] = {}
        self.timeout = timeout
        self._kdc_slots = threading.BoundedSemaphore(MAX_PENDING_KDC_CALLS)

    @staticmethod
    def timeout_of(connector: Any) -> float:
        """The connector's own timeout (DASH_AUTH_LDAP_TIMEOUT, DASH_AUTH_OIDC_TIMEOUT, ...), else
        KDC_TIMEOUT: a sign-in waits for the KDC as long as for the directory or provider."""
        for holder in (connector, getattr(connector, "servers", None)):  # ldap keeps it with its servers
            timeout = getattr(holder, "timeout", None)
            if isinstance(timeout, (int, float)) and timeout > 0:
                return float(timeout)
        return KDC_TIMEOUT

    def _principal(self, name: str) -> str:
        return name if "@" in name else f"{name}@{self.realm}"

    def ask_kdc(self, call: Callable[[], Ticket]) -> Ticket:
        """``call()`` (blocking KDC work) in a thread of its own, waited for at most ``timeout``.

        MIT krb5 1.20 waits about 27 s for a KDC that never answers, close to gunicorn's 30 s
        worker timeout, and has no setting to shorten that; gssapi (and ``_renew_in_place``)
        release the GIL while they wait, so the caller can give up first. A call given up on
        finishes on its own later: its ticket is dropped (only the caller seals it into a
        session) and it writes no file before the KDC answers. It keeps one of
        MAX_PENDING_KDC_CALLS slots until then; with every slot taken the KDC is not asked at
        all, so hung calls never pile up and a sign-in meanwhile waits for nothing.
        """
        if not self._kdc_slots.acquire(blocking=False):
            raise KerberosTicketUnavailable(
                f"the KDC for {self.realm} has not answered {MAX_PENDING_KDC_CALLS} earlier requests of this "
                "process yet, so it was not asked again; sign in again later for a ticket")
        answer: Future[Ticket] = Future()

        def run() -> None:
            try:
                answer.set_result(call())
            except BaseException as exc:  # handed to the caller, if it still waits
                answer.set_exception(exc)
            finally:
                self._kdc_slots.release()

        try:
            threading.Thread(target=run, name="dash-auth-kdc", daemon=True).start()
        except RuntimeError:  # no thread to be had: the slot must not be lost with it
            self._kdc_slots.release()
            raise
        try:
            return answer.result(timeout=self.timeout)
        except FutureTimeout:
            raise KerberosTicketUnavailable(
                f"the KDC for {self.realm} did not answer within {self.timeout:g} s") from None

    # -- obtaining and renewing ------------------------------------------------------------

    def with_password(self, username: str, password: str) -> Ticket:
        """A TGT for ``username@realm``; KerberosTicketUnavailable says why not."""
        import gssapi
        import gssapi.raw

        principal = f"{username}@{self.realm}"
        try:
            name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
            creds = gssapi.raw.acquire_cred_with_password(name, password.encode(), usage="initiate").creds
            return ticket_of(creds, principal)
        except gssapi.exceptions.GSSError as exc:
            raise KerberosTicketUnavailable(f"the KDC gave no ticket for {principal}: {_gss_reason(exc)}") from None

    def delegated(self, username: str) -> Ticket:
        """Tickets for ``username`` without their password: S4U2Self with the app's keytab,
        then S4U2Proxy to each DASH_AUTH_KRB5_DELEGATE_TO service (constrained delegation)."""
        import gssapi
        import gssapi.raw

        assert self.keytab and self.service_principal
        principal = self._principal(username)
        kerberos_name = gssapi.NameType.kerberos_principal
        step = f"S4U2Self for {principal}"
        try:
            with memory_ccache() as work:
                app = gssapi.Credentials(name=gssapi.Name(self.service_principal, kerberos_name), usage="initiate",
                                         store={"client_keytab": self.keytab, "ccache": work})
                user = app.impersonate(gssapi.Name(principal, kerberos_name), usage="initiate")
                for target in self.delegate_to:
                    step = f"constrained delegation (S4U2Proxy) of {principal} to {target}"
                    gssapi.SecurityContext(name=gssapi.Name(target, kerberos_name), creds=user, usage="initiate").step()
                with private_ccache() as out:  # a file only once the KDC has answered
                    gssapi.raw.store_cred_into({b"ccache": f"FILE:{out}".encode()}, user, usage="initiate",
                                               overwrite=True)
                    expires_at, _ = _ticket_times(out, principal)
                    return Ticket(principal, out.read_bytes(), expires_at, 0.0)
        except gssapi.exceptions.GSSError as exc:
            raise KerberosTicketUnavailable(f"{step} failed: {_gss_reason(exc)}") from None

    def renew(self, ticket: Ticket) -> Ticket:
        """``ticket`` renewed by the KDC; its cache waits for the KDC in memory, not in a file."""
        import krb5

        try:
            context = krb5.init_context()
            with memory_ccache() as name:
                cache = krb5.cc_resolve(context, name.encode())
                with private_ccache(ticket.ccache) as path:
                    stored = krb5.cc_resolve(context, f"FILE:{path}".encode())
                    client = krb5.cc_get_principal(context, stored)
                    krb5.cc_initialize(context, cache, client)
                    for creds in stored:
                        krb5.cc_store_cred(context, cache, creds)
                _renew_in_place(name)
                with private_ccache() as path:
                    renewed = krb5.cc_resolve(context, f"FILE:{path}".encode())
                    krb5.cc_initialize(context, renewed, client)
                    for creds in cache:
                        krb5.cc_store_cred(context, renewed, creds)
                    expires_at, renew_till = _ticket_times(path, ticket.principal)
                    return Ticket(ticket.principal, path.read_bytes(), expires_at, renew_till)
        except (krb5.Krb5Error, KerberosTicketUnavailable) as exc:
            raise KerberosTicketUnavailable(f"renewing the ticket of {ticket.principal} failed: {exc}") from None

    # -- keeping it with the session ----------------------------------------------------------

    def seal(self, ticket: Ticket) -> dict[str, Any]:
        """What goes into ``Identity.private``: the cache encrypted, the times in clear."""
        return {"principal": ticket.principal, "ccache": self._fernet.encrypt(ticket.ccache).decode(),
                "expires_at": ticket.expires_at, "renew_till": ticket.renew_till, "issued_at": time.time()}

    def unseal(self, private: Mapping[str, Any]) -> Ticket:
        """The ticket kept for a session; KerberosTicketUnavailable with the reason otherwise."""
        from cryptography.fernet import InvalidToken

        sealed = private.get(PRIVATE_KEY)
        if not sealed:
            raise KerberosTicketUnavailable("this sign-in obtained no Kerberos ticket (password sign-ins "
                                            "through the form do, and Kerberos sign-ins whose browser delegates)")
        if sealed.get("error"):
            raise KerberosTicketUnavailable(sealed["error"])
        try:
            data = self._fernet.decrypt(sealed["ccache"].encode())
        except (InvalidToken, KeyError, AttributeError):
            raise KerberosTicketUnavailable("the stored ticket cannot be decrypted (was DASH_AUTH_SECRET_KEY "
                                            "changed?); sign in again") from None
        return Ticket(sealed["principal"], data, float(sealed["expires_at"]), float(sealed["renew_till"]))

    def attach(self, identity: Any, password: str | None = None, forwarded: Any = None) -> Any:
        """``identity`` with a ticket (or the reason there is none) in its private part: the one
        a browser ``forwarded`` (a Ticket) through Negotiate, else from the password when there is
        one, else by constrained delegation when the app has a keytab and its principal, else the
        reason the browser gave none (``forwarded`` as a KerberosTicketUnavailable)."""
        impersonates = bool(self.keytab and self.service_principal)
        if not isinstance(forwarded, Ticket) and password is None and not impersonates:
            if isinstance(forwarded, KerberosTicketUnavailable):
                return _with_private(identity, {**identity.private, PRIVATE_KEY: {"error": str(forwarded)}})
            return identity
        try:
            if isinstance(forwarded, Ticket):
                sealed = self.seal(forwarded)
            elif password is not None:
                sealed = self.seal(self.ask_kdc(lambda: self.with_password(identity.username, password)))
            else:
                sealed = {**self.seal(self.ask_kdc(lambda: self.delegated(identity.username))), "delegated": True}
        except KerberosTicketUnavailable as exc:
            log.warning("dash-enterprise-auth: no Kerberos ticket for %s: %s", identity.username, exc)
            sealed = {"error": str(exc)}
        except Exception as exc:  # a Kerberos problem must never fail the sign-in itself
            log.exception("dash-enterprise-auth: getting a Kerberos ticket for %s failed", identity.username)
            sealed = {"error": f"getting a Kerberos ticket failed unexpectedly ({type(exc).__name__}); "
                               "the operator's log has the details"}
        return _with_private(identity, {**identity.private, PRIVATE_KEY: sealed})

    def due_for_renewal(self, private: Mapping[str, Any], now: float) -> bool:
        """Cheap (no decryption): whether a kept ticket should be renewed now. Delegated
        tickets are simply asked for again (the keytab needs no password)."""
        sealed = private.get(PRIVATE_KEY)
        return now >= self.renewal_due_at(private, now) and \
            now >= self._retry_renewal_at.get(sealed.get("principal", ""), 0.0)

    @staticmethod
    def renewal_due_at(private: Mapping[str, Any], now: float) -> float:
        """When a kept ticket becomes due for renewal (half its life left); inf when it never
        will: none kept, not renewable, or already expired at ``now``."""
        sealed = private.get(PRIVATE_KEY)
        if not sealed or "expires_at" not in sealed:
            return math.inf
        expires_at = sealed["expires_at"]
        renewable = sealed.get("delegated") or expires_at < sealed["renew_till"]
        if not renewable or now >= expires_at:
            return math.inf
        life = max(1.0, expires_at - sealed.get("issued_at", now))
        return expires_at - life * RENEW_WHEN_LEFT

    def renewed(self, identity: Any) -> Any | None:
        """``identity`` with its ticket renewed, or None when that failed (the old one stays)."""
        sealed = identity.private.get(PRIVATE_KEY, {})
        delegated = sealed.get("delegated")
        self._retry_renewal_at[sealed.get("principal", "")] = time.time() + RENEWAL_RETRY
        try:
            if delegated:
                ticket = self.ask_kdc(lambda: self.delegated(identity.username))
            else:
                kept = self.unseal(identity.private)
                ticket = self.ask_kdc(lambda: self.renew(kept))
        except KerberosTicketUnavailable as exc:
            log.warning("dash-enterprise-auth: the Kerberos ticket of %s was not renewed: %s", identity.username, exc)
            return None
        except Exception:  # the request goes on with the ticket it has
            log.exception("dash-enterprise-auth: renewing the Kerberos ticket of %s failed", identity.username)
            return None
        self._retry_renewal_at.pop(ticket.principal, None)
        renewed = {**self.seal(ticket), **({"delegated": True} if delegated else {})}
        return _with_private(identity, {**identity.private, PRIVATE_KEY: renewed})


def _with_private(identity: Any, private: dict[str, Any]) -> Any:
    from dataclasses import replace

    return replace(identity, private=private)


def _gss_reason(exc: Exception) -> str:
    """The Kerberos part of a GSSError: 'Preauthentication failed', 'Client not found', ..."""
    minor = getattr(exc, "min_code", None)
    text = str(exc)
    if "Minor" in text:
        text = text.split("Minor (", 1)[-1].split("): ", 1)[-1].rstrip(")")
    return f"{text.strip()}" + (f" (minor {minor})" if minor else "")


# -- the KRB5CCNAME helper --------------------------------------------------------------------

class CcacheInEnvironment:
    """``KRB5CCNAME`` pointing at a private copy of a ticket cache for one block: ``with`` in sync
    code, ``async with`` in ``async def`` callbacks.

    The environment belongs to the whole process, so the blocks run one at a time (a lock): two
    callbacks never see each other's tickets. ``async with`` waits for the lock off the event
    loop, so a block may ``await`` inside. A plain ``with`` on the event loop while another
    callback of the same loop holds the lock would wait forever and freeze the worker: it raises
    instead, naming ``async with``.
    """

    _lock = threading.Lock()
    _holder: int | None = None  # the thread that took the lock (an event loop's, for coroutines)

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._stack = ExitStack()
        self._previous: str | None = None

    def __enter__(self) -> str:
        if _on_event_loop() and CcacheInEnvironment._holder == threading.get_ident():
            raise RuntimeError(
                "kerberos_ccache(): another callback on this event loop holds KRB5CCNAME; in an async "
                "callback use `async with kerberos_ccache()` (or kerberos_ccache_file())")
        self._lock.acquire()
        return self._point()

    async def __aenter__(self) -> str:
        if not self._lock.acquire(blocking=False):
            await asyncio.get_running_loop().run_in_executor(None, self._lock.acquire)
        return self._point()

    def __exit__(self, *exc: Any) -> None:
        self._restore()

    async def __aexit__(self, *exc: Any) -> None:
        self._restore()

    def _point(self) -> str:
        CcacheInEnvironment._holder = threading.get_ident()
        try:
            path = self._stack.enter_context(private_ccache(self._data))
        except BaseException:
            self._release()
            raise
        name = f"FILE:{path}"
        self._previous = os.environ.get("KRB5CCNAME")
        os.environ["KRB5CCNAME"] = name
        return name

    def _restore(self) -> None:
        try:
            if self._previous is None:
                os.environ.pop("KRB5CCNAME", None)
            else:
                os.environ["KRB5CCNAME"] = self._previous
            self._stack.close()
        finally:
            self._release()

    def _release(self) -> None:
        CcacheInEnvironment._holder = None
        self._lock.release()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
