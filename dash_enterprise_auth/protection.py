"""One protected app at run time: settings, connector, sessions and policy, and how a person signs in.

Framework-free: it reads plain :class:`~dash_enterprise_auth.web.Request`
values and writes plain :class:`~dash_enterprise_auth.web.Answer` values.
Building one from the settings and installing it on a server is
:mod:`dash_enterprise_auth.install`'s job.
"""
from __future__ import annotations

import base64
import binascii
import time
from dataclasses import replace
from typing import Any, Callable, Mapping

from .admissions import Admissions
from .audit import audit
from .blocking import refuse_io
from .config import CoreConfig
from .connectors import Identity
from .connectors.base import ProviderSharing
from .errors import AuthenticationError, InvalidCredentials, ProviderRefused
from .kerberos import Kerberos
from .methods import SignInMethods
from .origin import FormToken
from .pages import Pages
from .privacy import Policy
from .revalidation import Revalidation
from .session import COOKIE_NAME, SECURE_COOKIE_NAME, SessionLayer, Timeouts
from .share_links import ShareLinks
from .stores import SessionRecord, SessionStore
from .throttle import Throttle
from .urls import Prefixes
from .viewer import Viewer
from .web import Answer, Request

MAX_USERNAME = 256
MAX_PASSWORD = 1024

AuthorizedHook = Callable[[dict], Any]
_global_hooks: list[AuthorizedHook] = []


def is_authorized_hook(func: AuthorizedHook) -> AuthorizedHook:
    """Register an extra check run at every sign-in with the identity's data (a dict);
    a hook returning a false value refuses the sign-in."""
    _global_hooks.append(func)
    return func


class Protection:
    """Everything the guard and the package's routes need for one app."""

    def __init__(
        self,
        config: CoreConfig,
        methods: SignInMethods,
        store: SessionStore,
        prefixes: Prefixes,
        pages: Pages,
        overrides: Mapping[str, Any],
    ) -> None:
        self.config = config
        self.methods = methods
        self.connector = methods.primary  # the first listed; use ``methods`` for a given capability
        connector = methods.primary
        self.store = store
        self.prefixes = prefixes
        self.pages = pages
        self.overrides = dict(overrides)
        self.sessions = SessionLayer(store, config.secret_key, Timeouts(config.idle_timeout, config.max_age))
        self.revalidation = Revalidation(methods, self.sessions, config.revalidate_interval)
        self.admissions = Admissions(store, self._acts_on_by_itself_at)
        self.throttle = Throttle(store)
        self.form_token = FormToken(config.secret_key)
        self.kerberos = Kerberos(
            config.krb5_realm, config.secret_key, keytab=config.krb5_keytab,
            timeout=Kerberos.timeout_of(methods.password or connector),
            service_principal=config.krb5_service_principal, delegate_to=config.krb5_delegate_to,
        ) if config.krb5_realm else None
        admits = connector.admits_share_key if isinstance(connector, ProviderSharing) else (lambda key: False)
        self.share_links = ShareLinks(admits, config.secret_key, config.max_age, self.cookie_path)
        self.policy = Policy.build(
            config.privacy, config.allowed_users, config.allowed_groups, config.public_paths, prefixes.routes
        )
        self.hooks: list[AuthorizedHook] = []
        self.page_access: Any = None  # a Dash app's PageAccess (dash_pages), set when installed

    @property
    def accepts_passwords(self) -> bool:
        return self.methods.password is not None

    def title(self) -> str:
        return self.pages.app_title()

    # -- cookies ---------------------------------------------------------------

    def cookie_path(self, request: Request) -> str:
        return self.prefixes.app_root(request)

    def cookie_name(self, request: Request) -> str:
        """``__Host-`` when served over HTTPS at the site root: the browser then refuses
        any copy of the cookie set by a sibling subdomain or over plain HTTP."""
        if request.is_secure and self.cookie_path(request) == "/":
            return SECURE_COOKIE_NAME
        return COOKIE_NAME

    def set_cookie(self, answer: Answer, request: Request, token: str) -> None:
        answer.set_cookie(self.cookie_name(request), token, path=self.cookie_path(request),
                          secure=request.is_secure)

    def clear_cookie(self, answer: Answer, request: Request) -> None:
        answer.delete_cookie(self.cookie_name(request), path=self.cookie_path(request), secure=request.is_secure)

    # -- who is it -------------------------------------------------------------

    def viewer_from_cookie(self, request: Request) -> Viewer | None:
        record = self.sessions.resume(request.cookies.get(self.cookie_name(request)))
        return self._viewer(record) if record else None

    def viewer_from_cookies(self, cookies: Mapping[str, str]) -> Viewer | None:
        """For background callbacks, where the scheme of the original request is unknown."""
        for name in (SECURE_COOKIE_NAME, COOKIE_NAME):
            record = self.sessions.resume(cookies.get(name))
            if record is not None:
                return self._viewer(record)
        return None

    def _viewer(self, record: SessionRecord) -> Viewer | None:
        """The viewer of a live record, re-validated at the provider when that is due (None: the
        provider ended the person's access); renews its Kerberos ticket when that is due."""
        now = time.time()
        if self.revalidation.due(record, now):
            revalidated = self.revalidation.revalidated(record, now)
            if revalidated is None:
                return None
            record = revalidated
        identity = record.as_identity()
        if self.kerberos is not None and self.kerberos.due_for_renewal(identity.private, now):
            refuse_io("renewing a Kerberos ticket")
            renewed = self.kerberos.renewed(identity)
            if renewed is not None and self.sessions.replace_identity(record, renewed):
                identity = renewed
        return Viewer(identity, record)

    def _acts_on_by_itself_at(self, record: SessionRecord) -> float:
        """The first moment the check does more than read this record: it expires, its idle timer
        is due to be written, the provider to be asked again, its Kerberos ticket to be renewed.
        An admission made from the record holds until then at the latest (see ``admissions``)."""
        at = min(record.expires_at, record.last_seen + self.sessions.timeouts.touch_every,
                 record.validated_at + self.revalidation.every)
        if self.kerberos is not None:
            at = min(at, self.kerberos.renewal_due_at(record.as_identity().private, time.time()))
        return at

    def viewer_from_header(self, request: Request) -> Viewer | None:
        """HTTP Basic credentials for scripts; None when the request has none.

        A malformed header or wrong credentials raise AuthenticationError (401).
        """
        header = request.headers.get("Authorization")
        if header is None or not self.accepts_passwords:
            return None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidCredentials("The Authorization header is not valid HTTP Basic credentials.",
                                     log_detail="malformed Basic header") from None
        username, colon, password = decoded.partition(":")
        if not colon:
            raise InvalidCredentials("The Authorization header is not valid HTTP Basic credentials.",
                                     log_detail="Basic header without a colon")
        identity = self.verify_password(username, password, request.client, via="header")
        self.run_hooks(identity, request.client, via="header")
        return Viewer(identity)

    # -- signing in ------------------------------------------------------------

    def verify_password(self, username: str, password: str, client: str, via: str) -> Identity:
        """Throttle and verify; audit every refusal."""
        connector = self.methods.password
        if connector is None:
            raise InvalidCredentials("This app does not accept passwords.",
                                     log_detail="password to " + self.methods.names)
        username = username.strip()
        if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
            raise InvalidCredentials(log_detail="oversized username or password")
        try:
            failures = self.throttle.check(username, client)
            identity = connector.authenticate_from_memory(username, password)
            if identity is None:
                refuse_io("checking a password")
                identity = connector.authenticate(username, password)
        except AuthenticationError as exc:
            event = "throttled" if exc.status == 429 else "sign_in_failed"
            if event == "sign_in_failed" and isinstance(exc, InvalidCredentials):
                self.throttle.failed(username, client)
            audit(event, user=username[:64], client=client, outcome="refused", via=via,
                  reason=exc.log_detail or type(exc).__name__)
            raise
        self.throttle.succeeded(username, failures)
        return identity

    def run_hooks(self, identity: Identity, client: str, via: str) -> None:
        hooks = (*_global_hooks, *self.hooks)
        if hooks:
            refuse_io("running the app's is_authorized hooks")  # the app's code may wait on anything
        for hook in hooks:
            if not hook(identity.public_dict()):
                audit("sign_in_failed", user=identity.username, client=client, outcome="refused",
                      via=via, reason=f"is_authorized_hook {getattr(hook, '__name__', hook)}")
                raise AuthenticationError("Your account is not allowed to use this app.",
                                          log_detail="refused by an is_authorized_hook")

    def complete_sign_in(self, identity: Identity, request: Request, via: str, password: str | None = None,
                         forwarded: Any = None) -> str:
        """Every sign-in that starts a session ends here, whatever the connector: the authorized
        hooks, the Kerberos ticket (the one a browser ``forwarded`` through Negotiate, else from the
        password, else by delegation), a new session (new id: no fixation; the browser's previous
        session ends) and the audit line. The cookie value."""
        self.run_hooks(identity, request.client, via)
        if self.kerberos is not None:
            identity = self.kerberos.attach(identity, password, forwarded)
        previous = self.viewer_from_cookie(request)
        if previous is not None and previous.record is not None:
            self.sessions.end(previous.record)
        token, _ = self.sessions.start(identity)
        audit("sign_in", user=identity.username, client=request.client, outcome="success", via=via,
              connector=identity.connector)
        return token

    def from_directory(self, identity: Identity) -> Identity:
        """A sign-in with no password (a Kerberos ticket) takes the person's groups, email and name
        from the directory listed beside it (``spnego,ldap``), read by its service account, so the
        privacy rules see the same groups whichever way the person signed in. No entry, or a
        disabled one, refuses the sign-in; a directory that does not answer fails it closed."""
        directory = self.methods.directory
        if directory is None:
            return identity
        refuse_io("looking a person up in the directory")
        try:
            found = directory.look_up(identity.username)
        except InvalidCredentials as exc:
            raise ProviderRefused(f"You signed in as {identity.username}, who has no entry in this app's directory. "
                                  "Contact your administrator.", log_detail="directory: " + exc.log_detail) from None
        return replace(identity, email=found.email or identity.email,
                       display_name=found.display_name or identity.display_name, groups=found.groups,
                       group_ids=found.group_ids, attributes={**identity.attributes, **found.attributes})

    def start_session(self, identity: Identity) -> str:
        """A session for ``identity`` with no sign-in around it (``testing.signed_in_client``)."""
        token, _ = self.sessions.start(identity)
        return token
