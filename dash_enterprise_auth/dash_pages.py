"""Access per page in a multi-page Dash app (Dash Pages, ``use_pages=True``).

Rules are keyword arguments of ``dash.register_page`` (Dash keeps them in
``dash.page_registry``): ``public=True``, ``allowed_users=[...]``,
``allowed_groups=[...]``. A page without them follows the app-wide policy.
The rule of a page holds wherever the page could reach the browser:

- its URL: the guard asks :class:`~dash_enterprise_auth.privacy.Pages`;
- in-app navigation: Dash Pages renders a page by calling its layout from
  its router callback, so each page's layout in the registry is wrapped and
  gives a no-access message to a viewer the rule refuses;
- its callbacks: every backend, and the WebSocket transport, asks
  ``Dash._prepare_callback`` for the function of a callback before running
  it; wrapped, it refuses a callback of a page (any function defined in the
  page's module or below it) to a viewer that page's rule refuses;
- the page HTML: Dash writes every page's layout into the "validation
  layout" of each page's HTML; it is rebuilt per viewer from the pages they
  may open, from layouts made once with no viewer (so nobody's name ends up
  in anybody else's page).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import functools
import inspect
import logging
import threading
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import quote

from .audit import audit
from .errors import ConfigurationError, NotAllowed, SignInRequired
from .identity import Identity
from .privacy import Decision, PageRule, Pages, Policy
from .viewer import current_script_root, forget, see, seen_viewer

log = logging.getLogger("dash_enterprise_auth")

RULE_KEYWORDS = ("public", "allowed_users", "allowed_groups")
# What dash.register_page itself stores in a registry entry; any other key is the app's own.
DASH_PAGE_KEYS = frozenset({
    "module", "path", "path_template", "name", "order", "title", "description", "image", "image_url",
    "redirect_from", "layout", "relative_path", "supplied_path", "supplied_name", "supplied_order",
    "supplied_title", "supplied_description", "supplied_layout", "supplied_image",
})
# Set on a callback's function by ``public_callback`` / ``protected_callback``: its own rule wins.
CALLBACK_RULE = "_dash_auth_callback_rule"
PUBLIC, OWN_CHECK = "public", "own_check"
OPEN = PageRule(public=True)
SHELL_ROUTES = ("_dash-layout", "_dash-dependencies", "_dash-update-component", "_dash-component-suites/",
                "_dash-ws-callback", "_reload-hash", "_favicon.ico")
_UNBUILT: Any = object()


def read_rules(registry: Mapping[str, Mapping[str, Any]]) -> dict[str, PageRule]:
    """The rule of every page that has one; a misspelt keyword or a bad value stops start-up."""
    return {module: rule for module, page in registry.items()
            if (rule := rule_of_page(module, page)) is not None}


def rule_of_page(module: str, page: Mapping[str, Any]) -> PageRule | None:
    for key in page:
        if key not in DASH_PAGE_KEYS and key not in RULE_KEYWORDS and _looks_like_a_rule(key):
            close = difflib.get_close_matches(key, RULE_KEYWORDS, n=1, cutoff=0.6)
            raise ConfigurationError(
                f"page {module!r}: dash.register_page got the unknown keyword {key}={_shown(page[key])}"
                + (f" (did you mean {close[0]}?)" if close else "")
                + ". The access rules of a page are public=, allowed_users= and allowed_groups=.")
    if not any(key in page for key in RULE_KEYWORDS):
        return None
    public = page.get("public", False)
    if not isinstance(public, bool):
        raise ConfigurationError(f"page {module!r}: public= takes True or False, not {_shown(public)}")
    users = _names(module, "allowed_users", page.get("allowed_users"))
    groups = _names(module, "allowed_groups", page.get("allowed_groups"))
    if public and (users or groups):
        raise ConfigurationError(f"page {module!r}: public=True opens the page to anyone; it cannot also "
                                 "have allowed_users or allowed_groups")
    if not public and not users and not groups:
        if "allowed_users" not in page and "allowed_groups" not in page:
            return None  # public=False alone: the app-wide rule
        raise ConfigurationError(f"page {module!r}: its allowed_users and allowed_groups are empty, which "
                                 "would open it to nobody; list someone, or remove the keywords to follow the "
                                 "app-wide rule")
    return PageRule.build(public, users, groups)


def _looks_like_a_rule(key: str) -> bool:
    folded = key.lower().replace("-", "_")
    return (folded.startswith(("allow", "public", "restrict", "private"))
            or bool(difflib.get_close_matches(folded, RULE_KEYWORDS, n=1, cutoff=0.75)))


def _names(module: str, keyword: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ConfigurationError(f"page {module!r}: {keyword}= takes a list of names, e.g. {keyword}=['finance'], "
                                 f"not {_shown(value)}")
    if not all(isinstance(name, str) and name.strip() for name in value):
        raise ConfigurationError(f"page {module!r}: {keyword}= must list non-empty names, not {_shown(value)}")
    return [name.strip() for name in value]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(rule: PageRule | None, policy: Policy) -> str:
    """A rule in words, for ``check``."""
    if rule is None:
        return "the app-wide rule: " + _listed(policy.level.value, policy.allowed_users, policy.allowed_groups)
    if rule.public:
        return "public: anyone, signed in or not"
    return _listed("restricted", rule.allowed_users, rule.allowed_groups)


def _listed(level: str, users: Iterable[str], groups: Iterable[str]) -> str:
    if level == "unauthorized":
        return "anyone, signed in or not"
    if level == "authorized":
        return "any signed-in person"
    names = [*(f"user {u}" for u in sorted(users)), *(f"group {g}" for g in sorted(groups))]
    return "only " + " or ".join(names) if names else "nobody"


class PageAccess:
    """The page rules of one Dash app, and the hooks that enforce them."""

    def __init__(self, app: Any, policy: Policy, protection: Any) -> None:
        self.app = app
        self.policy = policy
        self.protection = protection
        self._pages: Pages | None = _UNBUILT
        self._lock = threading.Lock()
        self._callback_rules: dict[str, PageRule | Policy | None] = {}
        self._layouts: dict[str, Any] = {}  # the registry's own layouts, before wrapping
        self._validation: tuple[list[tuple[str, Any]], list[Any]] | None = None
        self._redirects: dict[str, str] = {}
        self._uninstall_callback_check: Callable[[], None] = lambda: None
        self._routes = app.config.routes_pathname_prefix
        read_rules(self.registry)  # pages registered so far: a bad rule stops start-up here
        self._install()

    @property
    def registry(self) -> Mapping[str, dict[str, Any]]:
        import dash

        return dash.page_registry

    # -- built once, at the first request, when every page and callback is known -----------

    def pages(self) -> Pages | None:
        """The rules the guard applies; None when the app has no page rule and no public callback."""
        built = self._pages
        return self._build() if built is _UNBUILT else built

    def _build(self) -> Pages | None:
        with self._lock:
            if self._pages is not _UNBUILT:
                return self._pages
            rules = read_rules(self.registry)
            open_callbacks = any(getattr(_function(spec), CALLBACK_RULE, None) == PUBLIC
                                 for spec in self._callback_specs())
            if not rules and not open_callbacks:
                self._pages = None
                self._uninstall_callback_check()  # nothing to check: callbacks run as Dash prepares them
                return None
            if not hasattr(self.app, "_prepare_callback") or not hasattr(self.app, "_config"):
                raise ConfigurationError("page rules and public callbacks need Dash 4.2 or newer; "
                                         f"this is Dash {_dash_version()}")
            for module, page in self.registry.items():
                self._layouts[module] = page.get("layout")
                page["layout"] = self._guarded_layout(module, page.get("layout"))
            shell = tuple(self._routes + route for route in SHELL_ROUTES) + (self._assets_route(),)
            self._pages = Pages(rules, self.page_at, shell, open_callbacks)
            return self._pages

    def _callback_specs(self) -> Iterable[Mapping[str, Any]]:
        from dash import _callback

        return [*self.app.callback_map.values(), *_callback.GLOBAL_CALLBACK_MAP.values()]

    def _assets_route(self) -> str:
        return self._routes + self.app.config.assets_url_path.strip("/") + "/"

    def page_at(self, path: str) -> str | None:
        """The page (its module) Dash shows at this route path, as its router would pick it; None
        unless the server answers the path with Dash's page HTML (an app's own route, say
        ``/export``, never takes the rule of a page whose ``path_template`` it happens to fit)."""
        from dash._pages import _path_to_page

        target = self._redirects.get(path)
        route = target or path
        if not route.startswith(self._routes):
            return None
        page, _ = _path_to_page(route[len(self._routes):].strip("/"))
        if not page or (target is None and not _is_dash_page_view(_view_for(self.app.server, path))):
            return None
        return page.get("module")

    def page_name(self, path: str) -> str | None:
        module = self.page_at(path)
        return self.registry[module].get("name") if module in self.registry else None

    # -- who may open what ---------------------------------------------------------------------

    def rule(self, module: str | None) -> PageRule | Policy:
        pages = self.pages()
        return pages.rule(self.policy, module) if pages is not None else self.policy

    def accessible(self, identity: Identity | None) -> list[dict[str, Any]]:
        """The registry entries this viewer may open. Before the first request (Dash calls layout
        functions at start-up, while pages may still be registered) the rules are read afresh."""
        built = self._pages
        rules = read_rules(self.registry) if built is _UNBUILT else (built.rules if built is not None else {})
        return [page for module, page in self.registry.items()
                if rules.get(module, self.policy).decide(identity) is Decision.ALLOW]

    def checked_callback(self, output: str, func: Callable[..., Any], over_socket: bool) -> Callable[..., Any]:
        """``func``, refusing to run for a viewer the rule of its page refuses. The check runs when
        the callback is called, not when Dash prepares it: over a WebSocket, Dash prepares a sync
        callback on a worker thread and only the call runs in the request's context."""
        if self.pages() is None:
            return func
        try:
            rule = self._callback_rules[output]
        except KeyError:
            rule = self._callback_rules[output] = self._rule_of_callback(func)
        if rule is None:
            return func
        if inspect.iscoroutinefunction(func):
            async def checked_async(*args: Any, **kwargs: Any) -> Any:
                _refuse_unless_allowed(rule, output, over_socket)
                return await func(*args, **kwargs)
            return functools.wraps(func)(checked_async)

        def checked(*args: Any, **kwargs: Any) -> Any:
            _refuse_unless_allowed(rule, output, over_socket)
            return func(*args, **kwargs)
        return functools.wraps(func)(checked)

    def _rule_of_callback(self, func: Callable[..., Any]) -> PageRule | Policy | None:
        """None: no check beyond the guard's (Dash's own router, or a callback that checks itself)."""
        mark = getattr(func, CALLBACK_RULE, None)
        if mark == PUBLIC:
            return OPEN
        if mark == OWN_CHECK:
            return None
        module = getattr(inspect.unwrap(func), "__module__", None) or ""
        if module == "dash" or module.startswith("dash."):
            return None
        owners = [page for page in self.registry if module == page or module.startswith(page + ".")]
        return self.rule(max(owners, key=len) if owners else None)

    # -- what reaches the browser --------------------------------------------------------------

    def _guarded_layout(self, module: str, layout: Any) -> Callable[..., Any]:
        def refusal() -> Any:
            viewer = seen_viewer()
            identity = viewer.identity if viewer is not None else None
            decision = self.rule(module).decide(identity)
            return None if decision is Decision.ALLOW else self._no_access(module, identity)

        if inspect.iscoroutinefunction(layout):
            async def guarded_async(**kwargs: Any) -> Any:
                refused = refusal()
                return refused if refused is not None else await layout(**kwargs)
            return functools.wraps(layout)(guarded_async)

        def guarded(**kwargs: Any) -> Any:
            refused = refusal()
            if refused is not None:
                return refused
            return layout(**kwargs) if callable(layout) else layout
        return functools.wraps(layout)(guarded) if callable(layout) else guarded

    def _no_access(self, module: str, identity: Identity | None) -> Any:
        from dash import html

        name = self.registry[module].get("name") or module
        if identity is None:
            target = _pathname() or current_script_root() + (self.registry[module].get("relative_path") or "/")
            login = (current_script_root() + self.protection.prefixes.requests + "_dash-auth/login?next="
                     + quote(target, safe="/"))
            return html.Div([html.H2("Sign in to open this page"),
                             html.P(f"The page {name} is open only to signed-in people."),
                             html.A("Sign in", href=login, className="dash-auth-button")],
                            className="dash-auth-no-access")
        return html.Div([html.H2("No access"),
                         html.P(f"You are signed in as {identity.username}, who may not open the page {name}. "
                                "To get access, ask the app's owner.")],
                        className="dash-auth-no-access")

    def validation_layout(self, identity: Identity | None) -> Any:
        from dash import html

        pages, rest = self._validation_pieces()
        return html.Div([layout for module, layout in pages
                         if self.rule(module).decide(identity) is Decision.ALLOW] + rest)

    def _validation_pieces(self) -> tuple[list[tuple[str, Any]], list[Any]]:
        """Every page's layout and the app's, made once with no viewer: the validation layout
        is for Dash's checks of callback ids, never for one person's data."""
        if self._validation is None:
            token = see(self.protection, None, current_script_root())
            try:
                pages = [(module, made) for module, layout in self._layouts.items()
                         if (made := _made(layout, f"page {module!r}")) is not None]
                app_layout = _made(self.app.layout, "the app's layout")
            finally:
                forget(token)
            extra = list(getattr(self.app, "_extra_components", None) or ())
            self._validation = pages, [*([app_layout] if app_layout is not None else []), *extra]
        return self._validation

    # -- hooks into the Dash app ---------------------------------------------------------------

    def _install(self) -> None:
        app = self.app
        if hasattr(app, "_prepare_callback"):
            prepare = app._prepare_callback

            def prepare_callback(g: Any, body: Mapping[str, Any]) -> Any:
                return self.checked_callback(body["output"], prepare(g, body), "dash_websocket" in g)
            app._prepare_callback = prepare_callback

            def uninstall() -> None:
                if app._prepare_callback is prepare_callback:  # never undo what was wrapped around it since
                    app._prepare_callback = prepare
            self._uninstall_callback_check = uninstall
        if hasattr(app, "_config"):
            make_config = app._config

            def config() -> dict[str, Any]:
                made = make_config()
                if "validation_layout" in made and self.pages() is not None:
                    viewer = seen_viewer()
                    made["validation_layout"] = self.validation_layout(viewer.identity if viewer else None)
                return made
            app._config = config
        backend = getattr(app, "backend", None)
        if backend is not None and hasattr(backend, "add_redirect_rule"):
            add_redirect = backend.add_redirect_rule

            def add_redirect_rule(dash_app: Any, fullname: str, path: str) -> Any:
                self._redirects[fullname] = self._routes + path.lstrip("/")
                return add_redirect(dash_app, fullname, path)
            backend.add_redirect_rule = add_redirect_rule
        if hasattr(app, "enable_pages"):  # protect() from the Dash plugin runs before Dash imports the pages
            enable_pages = app.enable_pages

            def enable_pages_then_check() -> None:
                enable_pages()
                read_rules(self.registry)  # the pages folder was just imported
            app.enable_pages = enable_pages_then_check


def _refuse_unless_allowed(rule: PageRule | Policy, output: str, over_socket: bool) -> None:
    """Over HTTP a refusal is the guard's 401 or 403. Over a WebSocket, Dash prints a traceback for
    any error and shows it nowhere outside debug mode, so the callback does not update instead (the
    socket of a session that ends is closed by the guard)."""
    viewer = seen_viewer()
    identity = viewer.identity if viewer is not None else None
    decision = rule.decide(identity)
    if decision is Decision.ALLOW:
        return
    if identity is not None:
        audit("forbidden", user=identity.username, client="", outcome="refused", callback=output)
    if over_socket:
        from dash.exceptions import PreventUpdate

        raise PreventUpdate
    if decision is Decision.SIGN_IN:
        raise SignInRequired(log_detail=f"anonymous callback {output}")
    raise NotAllowed(f"Signed in as {identity.username}, who may not use this part of the app.",
                     log_detail=f"callback {output}")


def _view_for(server: Any, path: str) -> Any:
    """The function the server answers ``GET path`` with (Flask, Quart: werkzeug's map; FastAPI:
    the first matching route), or None."""
    if hasattr(server, "url_map"):
        try:
            endpoint, _ = server.url_map.bind("").match(path, method="GET")
        except Exception:  # werkzeug's NotFound, MethodNotAllowed, RequestRedirect
            return None
        return server.view_functions.get(endpoint)
    from starlette.routing import Match

    scope = {"type": "http", "path": path, "method": "GET", "root_path": "", "headers": []}
    for route in getattr(server, "routes", ()):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "endpoint", None)
    return None


def _is_dash_page_view(view: Any) -> bool:
    return (getattr(view, "__module__", "") or "").startswith("dash.") and getattr(view, "__name__", "") in (
        "index", "catchall")


def _pathname() -> str | None:
    """The browser's path in Dash Pages' router callback (the page's own URL, variables included)."""
    from dash import callback_context

    try:
        value = callback_context.inputs.get("_pages_location.pathname")
    except Exception:  # not inside a callback
        return None
    return value if isinstance(value, str) else None


def _function(spec: Mapping[str, Any]) -> Any:
    return spec.get("callback")


def _made(layout: Any, what: str) -> Any:
    """A layout's value (a layout function called with no arguments, as Dash does); None if it fails."""
    try:
        value = layout() if callable(layout) else layout
        if inspect.isawaitable(value):
            with concurrent.futures.ThreadPoolExecutor(1) as pool:  # this thread may be an event loop's
                value = pool.submit(asyncio.run, _awaited(value)).result()
        return value
    except Exception as exc:  # an app's layout function; its components are then left out
        log.warning("dash-enterprise-auth: %s failed when made with no viewer (%s: %s); its components are "
                    "left out of the validation layout", what, type(exc).__name__, exc)
        return None


async def _awaited(value: Any) -> Any:
    return await value


def _dash_version() -> str:
    import dash

    return getattr(dash, "__version__", "unknown")
