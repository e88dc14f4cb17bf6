"""One protected app: settings, connector, sessions and policy, installed on its Flask server.

:func:`protect` is the only way in; the Dash plugin and the dash-auth
compatibility classes call it too. It builds everything up front, so every
configuration mistake stops start-up instead of surfacing on a request.
"""
from __future__ import annotations

import base64
import binascii
import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import flask
from flask import Request, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from . import viewer as viewer_module
from .audit import audit
from .config import CONNECTOR, CORE_OPTIONS, DEFAULT_STORE_FILE, PRIVACY, CoreConfig
from .connectors import Connector, Identity, PasswordConnector, available, connector_class
from .errors import AuthenticationError, ConfigurationError, InvalidCredentials
from .kerberos import Kerberos
from .origin import FormToken
from .privacy import Policy
from .session import COOKIE_NAME, SECURE_COOKIE_NAME, SessionLayer, Timeouts
from .settings import Settings
from .share_links import ShareLinks
from .stores import SessionRecord, SessionStore, open_store, redact
from .throttle import Throttle
from .urls import Prefixes
from .viewer import Viewer

log = logging.getLogger("dash_enterprise_auth")

EXTENSION = "dash_enterprise_auth"
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
    """Everything the guard and the routes need for one app."""

    def __init__(
        self,
        server: flask.Flask,
        config: CoreConfig,
        connector: Connector,
        store: SessionStore,
        prefixes: Prefixes,
        title: Callable[[], str],
        overrides: Mapping[str, Any],
    ) -> None:
        self.server = server
        self.config = config
        self.connector = connector
        self.store = store
        self.prefixes = prefixes
        self.title = title
        self.overrides = dict(overrides)
        self.sessions = SessionLayer(store, config.secret_key, Timeouts(config.idle_timeout, config.max_age))
        self.throttle = Throttle(store)
        self.form_token = FormToken(config.secret_key)
        self.kerberos = Kerberos(
            config.krb5_realm, config.secret_key, keytab=config.krb5_keytab, timeout=Kerberos.timeout_of(connector),
            service_principal=config.krb5_service_principal, delegate_to=config.krb5_delegate_to,
        ) if config.krb5_realm else None
        self.share_links = ShareLinks(connector.admits_share_key, config.secret_key, config.max_age,
                                      self._cookie_path)
        self.policy = Policy.build(
            config.privacy, config.allowed_users, config.allowed_groups, config.public_paths, prefixes.routes
        )
        self.hooks: list[AuthorizedHook] = []

    @property
    def accepts_passwords(self) -> bool:
        return isinstance(self.connector, PasswordConnector)

    # -- cookies ---------------------------------------------------------------

    def _cookie_path(self, request: Request) -> str:
        return self.prefixes.app_root(request)

    def cookie_name(self, request: Request) -> str:
        """``__Host-`` when served over HTTPS at the site root: the browser then refuses
        any copy of the cookie set by a sibling subdomain or over plain HTTP."""
        if request.is_secure and self._cookie_path(request) == "/":
            return SECURE_COOKIE_NAME
        return COOKIE_NAME

    def set_cookie(self, response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            self.cookie_name(request), token, path=self._cookie_path(request),
            secure=request.is_secure, httponly=True, samesite="Lax",
        )

    def clear_cookie(self, response: Response, request: Request) -> None:
        response.delete_cookie(
            self.cookie_name(request), path=self._cookie_path(request),
            secure=request.is_secure, httponly=True, samesite="Lax",
        )

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

    def _viewer(self, record: SessionRecord) -> Viewer:
        """The viewer of a live record; renews its Kerberos ticket when that is due."""
        identity = record.as_identity()
        if self.kerberos is not None and self.kerberos.due_for_renewal(identity.private, time.time()):
            renewed = self.kerberos.renewed(identity)
            if renewed is not None and self.sessions.replace_identity(record, renewed):
                identity = renewed
        return Viewer(identity, record)

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
        return Viewer(self.sign_in(username, password, request.remote_addr or "", via="header"))

    # -- signing in ------------------------------------------------------------

    def sign_in(self, username: str, password: str, client: str, via: str) -> Identity:
        """Throttle, verify, run the authorized hooks; audit every outcome."""
        connector = self.connector
        if not isinstance(connector, PasswordConnector):
            raise InvalidCredentials("This app does not accept passwords.", log_detail="password to " + connector.name)
        username = username.strip()
        if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
            raise InvalidCredentials(log_detail="oversized username or password")
        try:
            self.throttle.check(username, client)
            identity = connector.authenticate(username, password)
        except AuthenticationError as exc:
            event = "throttled" if exc.status == 429 else "sign_in_failed"
            if event == "sign_in_failed" and isinstance(exc, InvalidCredentials):
                self.throttle.failed(username, client)
            audit(event, user=username[:64], client=client, outcome="refused", via=via,
                  reason=exc.log_detail or type(exc).__name__)
            raise
        self.run_hooks(identity, client, via)
        self.throttle.succeeded(username)
        if self.kerberos is not None and via == "form":  # header requests keep no session to hold it
            identity = self.kerberos.attach(identity, password)
        return identity

    def run_hooks(self, identity: Identity, client: str, via: str) -> None:
        for hook in (*_global_hooks, *self.hooks):
            if not hook(identity.public_dict()):
                audit("sign_in_failed", user=identity.username, client=client, outcome="refused",
                      via=via, reason=f"is_authorized_hook {getattr(hook, '__name__', hook)}")
                raise AuthenticationError("Your account is not allowed to use this app.",
                                          log_detail="refused by an is_authorized_hook")

    def start_session(self, identity: Identity, request: Request | None = None) -> str:
        """A new session (new id: no fixation) for ``identity``; the cookie value.
        The session the browser had until now, if any, ends."""
        previous = self.viewer_from_cookie(request) if request is not None else None
        if previous is not None and previous.record is not None:
            self.sessions.end(previous.record)
        token, _ = self.sessions.start(identity)
        return token


def protect(app: Any, **overrides: Any) -> Protection:
    """Protect a Dash app (2.x, 3.x, 4.x) or a Flask app with the configured connector.

    Settings come from ``DASH_AUTH_*`` variables; keyword arguments override
    them (``protect(app, privacy="authorized")``). ``connector`` may also be a
    connector instance. Protecting the same app again with the same settings
    returns the existing protection.
    """
    server = _flask_server(app)
    existing = server.extensions.get(EXTENSION)
    if existing is not None:
        if overrides and overrides != existing.overrides:
            raise ConfigurationError(
                "this app is already protected by dash_enterprise_auth with other settings; "
                "call protect() once (with DASH_AUTH_CONNECTOR set, Dash >= 3 protects it already)"
            )
        return existing

    _ensure_log_output()
    config, connector = load_configuration(overrides)
    store = open_store(config.session_store or _default_store_url(server))
    prefixes = _prefixes(app)
    protection = Protection(server, config, connector, store, prefixes, _title_getter(app, server), overrides)

    from .guard import install_guard
    from .views import build_blueprint

    if config.proxy_hops:
        hops = config.proxy_hops
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops,
                                   x_prefix=hops)
    server.register_blueprint(build_blueprint(protection, prefixes))
    install_guard(server, protection)
    if hasattr(app, "interpolate_index"):
        _add_session_script(app, prefixes)
    server.extensions[EXTENSION] = protection
    viewer_module.remember_protection(protection)
    log.info(
        "dash-enterprise-auth: protecting %s with the %s connector, privacy %s, sessions in %s",
        server.name, connector.name, config.privacy.value, _describe_store(config.session_store, server),
    )
    return protection


def load_configuration(overrides: Mapping[str, Any] | None = None) -> tuple[CoreConfig, Connector]:
    """Read and check every setting and build the connector: what protect() and the
    ``check`` command share. Raises ConfigurationError naming the first bad setting."""
    overrides = dict(overrides or {})
    given = overrides.get("connector")
    if isinstance(given, Connector):
        del overrides["connector"]
    known = [*CORE_OPTIONS, *(option for name in available() for option in _options_of(name))]
    Settings.warn_unknown(known)
    settings = Settings.load(known, overrides)
    if isinstance(given, Connector):
        connector = given
    else:
        name = settings.get(CONNECTOR)
        if not name:
            raise ConfigurationError("DASH_AUTH_CONNECTOR is not set: use one of " + ", ".join(sorted(available())))
        connector = connector_class(name).from_settings(settings)
    imposed = connector.privacy_level()
    if imposed is not None and settings.is_set(PRIVACY):
        raise ConfigurationError(f"DASH_AUTH_PRIVACY is not used with the {connector.name} connector, whose own "
                                 f"settings decide who may view the app (here: {imposed}): unset it")
    return CoreConfig.from_settings(settings, privacy=imposed), connector


def _ensure_log_output() -> None:
    """The audit trail must reach the operator even when the app configures no logging:
    then (no handler on our logger or the root) log INFO and up to stderr."""
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _options_of(name: str) -> tuple:
    try:
        return tuple(connector_class(name).options)
    except ConfigurationError:
        return ()


def _flask_server(app: Any) -> flask.Flask:
    server = app if isinstance(app, flask.Flask) else getattr(app, "server", None)
    if not isinstance(server, flask.Flask):
        raise ConfigurationError(
            "dash_enterprise_auth.protect() needs a Dash app on the Flask backend or a Flask app; "
            f"got {type(app).__name__} with server {type(server).__name__}"
        )
    return server


def _prefixes(app: Any) -> Prefixes:
    config = getattr(app, "config", None)
    routes = getattr(config, "routes_pathname_prefix", None) if not isinstance(app, flask.Flask) else None
    requests = getattr(config, "requests_pathname_prefix", None) if routes else None
    return Prefixes(routes or "/", requests or routes or "/")


def _title_getter(app: Any, server: flask.Flask) -> Callable[[], str]:
    return lambda: str(getattr(app, "title", None) or server.name)


def _default_store_url(server: flask.Flask) -> str:
    return "sqlite:///" + str(Path(server.instance_path) / DEFAULT_STORE_FILE)


def _describe_store(url: str | None, server: flask.Flask) -> str:
    return redact(url) if url else str(Path(server.instance_path) / DEFAULT_STORE_FILE)


def _add_session_script(app: Any, prefixes: Prefixes) -> None:
    """Make the Dash page reload into sign-in when a callback answers 401 (session ended)."""
    original = app.interpolate_index

    def interpolate_index(**kwargs: Any) -> str:
        src = flask.request.script_root + prefixes.requests + "_dash-auth/static/session.js"
        kwargs["scripts"] = kwargs.get("scripts", "") + f'\n<script src="{src}"></script>'
        return original(**kwargs)

    app.interpolate_index = interpolate_index
