"""The logout button, as the commercial package builds it."""
from __future__ import annotations

from typing import Any

from .settings import Settings
from .config import LOGOUT_URL


def create_logout_button(label: str = "Logout", style: dict[str, Any] | None = None,
                         logout_url: str | None = None) -> Any:
    """``html.Div(className="dash-logout-frame")`` around ``html.A(label, className="dash-logout-btn")``.

    The link points at the package's logout route under the app's
    ``requests_pathname_prefix``, so call this after the Dash app exists.
    ``logout_url`` or ``DASH_LOGOUT_URL`` replace that target.
    """
    from dash import html

    href = logout_url or Settings.load([LOGOUT_URL]).get(LOGOUT_URL) or _default_logout_href()
    return html.Div(
        html.A(label, href=href, className="dash-logout-btn", style=style),
        className="dash-logout-frame",
    )


def _default_logout_href() -> str:
    import dash

    try:
        prefix = dash.get_app().config.requests_pathname_prefix
    except Exception:  # no Dash app created yet (get_app raises Exception subclasses)
        prefix = "/"
    return f"{prefix}_dash-auth/logout"
