"""``protect(app)``: read the settings, build the app's :class:`Protection`, install it on its server.

The only way in: the Dash plugin and the dash-auth compatibility classes call
it too. Everything is built up front, so every configuration mistake stops
start-up instead of surfacing on a request.
"""
from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any, Callable, Mapping

import flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import asgi, flask_adapter
from . import viewer as viewer_module
from .config import CONNECTOR, CORE_OPTIONS, DEFAULT_STORE_FILE, PRIVACY, CoreConfig
from .connectors import Connector, available, connector_class
from .connectors.base import ProviderSharing
from .dash_pages import PageAccess
from .methods import SignInMethods, check_list, display_name_option
from .errors import ConfigurationError
from .pages import Pages
from .protection import Protection
from .settings import Settings
from .stores import open_store, redact
from .urls import Prefixes

log = logging.getLogger("dash_enterprise_auth")

EXTENSION = "dash_enterprise_auth"
# The protection of each ASGI server (FastAPI, Quart); a Flask server keeps its own in ``extensions``.
_asgi_protections: "weakref.WeakKeyDictionary[Any, Protection]" = weakref.WeakKeyDictionary()


def protect(app: Any, **overrides: Any) -> Protection:
    """Protect a Dash app (2.x, 3.x, 4.x, on the Flask, FastAPI or Quart backend) or a Flask app
    with the configured connector.

    Settings come from ``DASH_AUTH_*`` variables; keyword arguments override
    them (``protect(app, privacy="authorized")``). ``connector`` may also be a
    connector instance. Protecting the same app again with the same settings
    returns the existing protection.
    """
    server = _server(app)
    existing = installed_on(server)
    if existing is not None:
        if overrides and overrides != existing.overrides:
            raise ConfigurationError(
                "this app is already protected by dash_enterprise_auth with other settings; "
                "call protect() once (with DASH_AUTH_CONNECTOR set, Dash >= 3 protects it already)"
            )
        return existing

    _ensure_log_output()
    config, methods = load_configuration(overrides)
    root = _app_root(app, server)
    instance = Path(server.instance_path) if isinstance(server, flask.Flask) else root / "instance"
    default_store = instance / DEFAULT_STORE_FILE
    store = open_store(config.session_store or "sqlite:///" + str(default_store))
    prefixes = _prefixes(app)
    pages = Pages(_template_folder(server, root), _title_getter(app, server), prefixes)
    protection = Protection(config, methods, store, prefixes, pages, overrides)
    if hasattr(app, "callback_map") and hasattr(app, "config"):  # a Dash app: its pages may have rules
        protection.page_access = PageAccess(app, protection.policy, protection)

    if isinstance(server, flask.Flask):
        if config.proxy_hops:
            hops = config.proxy_hops
            server.wsgi_app = ProxyFix(server.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops,
                                       x_prefix=hops)
        flask_adapter.install(server, protection)
        server.extensions[EXTENSION] = protection
    else:
        asgi.install(server, protection, config.proxy_hops)
        _asgi_protections[server] = protection
    if hasattr(app, "interpolate_index"):
        _add_session_script(app, prefixes)
    viewer_module.remember_protection(protection)
    log.info(
        "dash-enterprise-auth: protecting %s (%s) with the %s, privacy %s, sessions in %s",
        getattr(app, "title", None) or getattr(server, "name", "the app"), type(server).__name__,
        methods.names + (" connectors" if len(methods.all) > 1 else " connector"),
        config.privacy.value, redact(config.session_store) if config.session_store else default_store,
    )
    return protection


def installed_on(server: Any) -> Protection | None:
    """The protection installed on this Flask, FastAPI or Quart server, if any."""
    if isinstance(server, flask.Flask):
        return server.extensions.get(EXTENSION)
    return _asgi_protections.get(server)


def load_configuration(overrides: Mapping[str, Any] | None = None) -> tuple[CoreConfig, SignInMethods]:
    """Read and check every setting and build the connectors: what protect() and the
    ``check`` command share. Raises ConfigurationError naming the first bad setting."""
    overrides = dict(overrides or {})
    given = overrides.get("connector")
    if isinstance(given, Connector):
        del overrides["connector"]
    names = sorted(available())
    known = [*CORE_OPTIONS, *(option for name in names for option in _options_of(name)),
             *(display_name_option(name) for name in names)]
    Settings.warn_unknown(known)
    settings = Settings.load(known, overrides)
    if isinstance(given, Connector):
        connectors: list[Connector] = [given]
    else:
        listed = [name.strip() for name in (settings.get(CONNECTOR) or "").split(",") if name.strip()]
        if not listed:
            raise ConfigurationError("DASH_AUTH_CONNECTOR is not set: use one of " + ", ".join(names)
                                     + " (or several, comma-separated)")
        kinds = [connector_class(name) for name in listed]
        check_list(kinds)
        connectors = [kind.from_settings(settings) for kind in kinds]
    methods = SignInMethods(connectors, {c.name: settings.get(display_name_option(c.name)) for c in connectors})
    connector = methods.primary
    imposed = connector.privacy_level() if isinstance(connector, ProviderSharing) else None
    if imposed is not None and settings.is_set(PRIVACY):
        raise ConfigurationError(f"DASH_AUTH_PRIVACY is not used with the {connector.name} connector, whose own "
                                 f"settings decide who may view the app (here: {imposed}): unset it")
    accepts_tickets = methods.negotiate is not None
    return CoreConfig.from_settings(settings, privacy=imposed, accepts_tickets=accepts_tickets), methods


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


def _server(app: Any) -> Any:
    """The server to guard: a Flask app, or a Dash app's Flask, FastAPI or Quart server."""
    server = app if isinstance(app, flask.Flask) else getattr(app, "server", None)
    if isinstance(server, flask.Flask) or hasattr(server, "build_middleware_stack") or (
            hasattr(server, "asgi_app") and hasattr(server, "register_error_handler")):
        return server
    raise ConfigurationError(
        "dash_enterprise_auth.protect() needs a Dash app (Flask, FastAPI or Quart backend) or a Flask app; "
        f"got {type(app).__name__} with server {type(server).__name__}"
    )


def _prefixes(app: Any) -> Prefixes:
    config = getattr(app, "config", None)
    routes = getattr(config, "routes_pathname_prefix", None) if not isinstance(app, flask.Flask) else None
    requests = getattr(config, "requests_pathname_prefix", None) if routes else None
    return Prefixes(routes or "/", requests or routes or "/")


def _app_root(app: Any, server: Any) -> Path:
    """The app's folder (beside its ``assets/``): where its ``templates/`` and ``instance/`` live."""
    if isinstance(server, flask.Flask):
        return Path(server.root_path)
    assets = getattr(getattr(app, "config", None), "assets_folder", None)
    return Path(assets).parent if assets else Path.cwd()


def _template_folder(server: Any, root: Path) -> Callable[[], str | None]:
    """The app's own ``templates/`` folder, read when a page renders (a Flask app may set it late)."""
    if isinstance(server, flask.Flask):
        return lambda: str(Path(server.root_path) / server.template_folder) if server.template_folder else None
    return lambda: str(root / "templates")


def _title_getter(app: Any, server: Any) -> Callable[[], str]:
    return lambda: str(getattr(app, "title", None) or getattr(server, "name", None) or "Dash")


def _add_session_script(app: Any, prefixes: Prefixes) -> None:
    """Make the Dash page go to sign-in when its session ends: a callback answering 401 over HTTP,
    or the WebSocket closed because the session ended."""
    original = app.interpolate_index

    def interpolate_index(**kwargs: Any) -> str:
        src = viewer_module.current_script_root() + prefixes.requests + "_dash-auth/static/session.js"
        kwargs["scripts"] = kwargs.get("scripts", "") + f'\n<script src="{src}"></script>'
        return original(**kwargs)

    app.interpolate_index = interpolate_index
