"""The dash-auth API (1.x and 2.x) on top of this package, so migrating is one import.

``BasicAuth`` maps onto the basic connector and ``PlotlyAuth`` onto the
plotly connector; the group helpers read the viewer's groups from the session
instead of Flask's cookie session.
"""
from __future__ import annotations

import functools
import logging
import os
import re
from typing import Any, Callable, Iterable, Literal, Mapping

from flask import has_request_context

from .api import get_user_data, get_username, set_user_data, set_username
from .connectors.basic import BasicConnector
from .dash_pages import CALLBACK_RULE, OWN_CHECK, PUBLIC
from .install import protect
from .protection import Protection

log = logging.getLogger("dash_enterprise_auth")

CheckType = Literal["one_of", "all_of", "none_of"]


class _Auth:
    """What dash-auth's auth objects offered besides their constructor."""

    protection: Protection

    get_username = staticmethod(get_username)
    get_user_data = staticmethod(get_user_data)
    set_user_data = staticmethod(set_user_data)
    set_username = staticmethod(set_username)

    def is_authorized_hook(self, func: Callable[[dict], Any]) -> Callable[[dict], Any]:
        """Extra sign-in check for this app only; returning a false value refuses."""
        self.protection.hooks.append(func)
        return func


class BasicAuth(_Auth):
    """``dash_auth.BasicAuth(app, {"user": "password"})``, with a sign-in form and real sessions.

    Everyone in ``username_password_list`` (or accepted by ``auth_func``) may
    use the app unless ``DASH_AUTH_PRIVACY`` says otherwise. Plain passwords
    are compared in constant time; prefer a users file for anything shared.
    """

    def __init__(
        self,
        app: Any,
        username_password_list: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        auth_func: Callable[[str, str], bool] | None = None,
        public_routes: Iterable[str] | None = None,
        user_groups: Mapping[str, Iterable[str]] | Callable[[str], Iterable[str]] | None = None,
        secret_key: str | None = None,
    ) -> None:
        if (username_password_list is None) == (auth_func is None):
            raise ValueError("BasicAuth takes either username_password_list or auth_func, exactly one")
        users = None
        if username_password_list is not None:
            users = dict(username_password_list.items() if isinstance(username_password_list, Mapping)
                         else username_password_list)
        settings: dict[str, Any] = {
            "connector": BasicConnector(plain_users=users, auth_func=auth_func, user_groups=user_groups),
        }
        if public_routes:
            settings["public_paths"] = list(public_routes)
        if not os.environ.get("DASH_AUTH_PRIVACY"):
            settings["privacy"] = "authorized"
        server = getattr(app, "server", app)
        key = secret_key or getattr(server, "secret_key", None)
        if key and not (os.environ.get("DASH_AUTH_SECRET_KEY") or os.environ.get("DASH_AUTH_SECRET_KEY_FILE")):
            settings["secret_key"] = str(key)
        self.app = app
        self.protection: Protection = protect(app, **settings)


class PlotlyAuth(_Auth):
    """``dash_auth.PlotlyAuth(app, app_name, sharing, app_url)`` (dash-auth 1.x) on the plotly connector.

    The Plotly server (``DASH_AUTH_PLOTLY_DOMAIN`` or ``PLOTLY_DOMAIN``) and the
    owner's ``PLOTLY_USERNAME``/``PLOTLY_API_KEY`` come from the environment, as
    before; the app's Flask ``secret_key`` serves when ``DASH_AUTH_SECRET_KEY`` is unset.
    """

    def __init__(self, app: Any, app_name: str, sharing: str = "private", app_url: str | None = None) -> None:
        settings: dict[str, Any] = {"connector": "plotly", "plotly_app_name": app_name, "plotly_sharing": sharing}
        if app_url:
            settings["plotly_app_url"] = app_url[0] if isinstance(app_url, (list, tuple)) else app_url
        key = getattr(getattr(app, "server", app), "secret_key", None)
        if key and not (os.environ.get("DASH_AUTH_SECRET_KEY") or os.environ.get("DASH_AUTH_SECRET_KEY_FILE")):
            settings["secret_key"] = str(key)
        self.app = app
        self.protection = protect(app, **settings)


def list_groups(*, groups_key: str = "groups", groups_str_split: str | None = None) -> list[str] | None:
    """The viewer's groups; None when nobody is signed in (or outside a request)."""
    if not has_request_context() and not _in_callback():
        return None
    data = get_user_data()
    if not data:
        return None
    groups = data.get(groups_key, [])
    if isinstance(groups, str):
        groups = re.split(groups_str_split, groups) if groups_str_split else [groups]
    return list(groups)


def check_groups(
    groups: Iterable[str] | None = None,
    *,
    groups_key: str = "groups",
    groups_str_split: str | None = None,
    check_type: CheckType = "one_of",
) -> bool | None:
    """None when not signed in; otherwise whether the viewer's groups pass ``check_type``."""
    have = list_groups(groups_key=groups_key, groups_str_split=groups_str_split)
    if have is None:
        return None
    if groups is None:
        return True
    wanted = list(groups)
    if check_type == "one_of":
        return any(g in have for g in wanted)
    if check_type == "all_of":
        return all(g in have for g in wanted)
    if check_type == "none_of":
        return not any(g in have for g in wanted)
    raise ValueError(f"check_type must be one_of, all_of or none_of, not {check_type!r}")


def protected(
    unauthenticated_output: Any,
    *,
    missing_permissions_output: Any = None,
    groups: Iterable[str] | None = None,
    groups_key: str = "groups",
    groups_str_split: str | None = None,
    check_type: CheckType = "one_of",
) -> Callable:
    """Replace a function's result (or a static value) by other outputs for viewers without the groups."""
    if missing_permissions_output is None:
        missing_permissions_output = unauthenticated_output

    def produce(output: Any, *args: Any, **kwargs: Any) -> Any:
        return output(*args, **kwargs) if callable(output) else output

    def decorator(output: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            allowed = check_groups(groups, groups_key=groups_key, groups_str_split=groups_str_split,
                                   check_type=check_type)
            if allowed is None:
                return produce(unauthenticated_output)
            if not allowed:
                return produce(missing_permissions_output)
            return produce(output, *args, **kwargs)

        return functools.wraps(output)(run) if callable(output) else run()

    return decorator


def protected_callback(
    *callback_args: Any,
    unauthenticated_output: Any = None,
    missing_permissions_output: Any = None,
    groups: Iterable[str] | None = None,
    groups_key: str = "groups",
    groups_str_split: str | None = None,
    check_type: CheckType = "one_of",
    **callback_kwargs: Any,
) -> Callable:
    """A Dash callback that runs only for viewers in ``groups``; others leave the outputs unchanged."""
    import dash
    from dash.exceptions import PreventUpdate

    def decorator(func: Callable) -> Callable:
        def leave_unchanged() -> Any:
            log.info("dash-enterprise-auth: %s refused %s (not in %s)", get_username(), func.__name__,
                     list(groups or ()))
            raise PreventUpdate

        guarded = protected(
            unauthenticated_output if unauthenticated_output is not None else leave_unchanged,
            missing_permissions_output=(missing_permissions_output if missing_permissions_output is not None
                                        else leave_unchanged),
            groups=groups, groups_key=groups_key, groups_str_split=groups_str_split, check_type=check_type,
        )(func)
        setattr(guarded, CALLBACK_RULE, OWN_CHECK)  # its groups decide, not the rule of its page
        return dash.callback(*callback_args, **callback_kwargs)(guarded)

    return decorator


def public_callback(*callback_args: Any, **callback_kwargs: Any) -> Callable:
    """A Dash callback anyone may run, signed in or not, whatever the rule of the app or of its
    page: for the components of public pages and public paths (dash-auth's ``public_callback``)."""
    import dash

    def decorator(func: Callable) -> Callable:
        setattr(func, CALLBACK_RULE, PUBLIC)
        return dash.callback(*callback_args, **callback_kwargs)(func)

    return decorator


def _in_callback() -> bool:
    from .viewer import _callback_cookies

    return _callback_cookies() is not None
