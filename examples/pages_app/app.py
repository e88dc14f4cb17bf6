"""A multi-page app with access per page: who may open each page is written beside the page.

- Home (``pages/home.py``): no rule of its own, so the app-wide one (``DASH_AUTH_PRIVACY``;
  ``authorized``, any signed-in person, when run as below).
- Finance (``pages/finance.py``): ``allowed_groups=["finance"]``.
- HR (``pages/hr.py``): ``allowed_users=["carol"]``, one page per person (``path_template``).
- About (``pages/about.py``): ``public=True``, open without signing in.

The menu comes from ``accessible_pages()``, so each viewer sees only the pages they may open.
Run it from this folder with the users in ``users.json`` (alice: finance; bob: nobody special;
carol: HR; passwords wonderland, builder, c4r0l-secret)::

    DASH_AUTH_CONNECTOR=basic DASH_AUTH_USERS_FILE=users.json DASH_AUTH_PRIVACY=authorized \\
        DASH_AUTH_SECRET_KEY=change-me python app.py
"""
import os

import dash
from dash import dcc, html

import dash_enterprise_auth as auth

app = dash.Dash(__name__, use_pages=True, title="Company portal", backend=os.environ.get("DASH_BACKEND", "flask"))
server = app.server  # gunicorn app:server, uvicorn/hypercorn app:server for the ASGI backends


def menu():
    """One link per page this viewer may open; a layout function runs at every page load."""
    return html.Nav([dcc.Link(page["name"], href=page["relative_path"], id=f"menu-{page['module'].split('.')[-1]}",
                              style={"marginRight": "1em"})
                     for page in auth.accessible_pages()], id="menu")


def layout():
    name = auth.get_username() if _in_request() else None
    return html.Div([
        html.Header([menu(), html.Span(f"Signed in as {name}" if name else "Not signed in", id="who"),
                     auth.create_logout_button() if name else html.A("Sign in", href="/_dash-auth/login")]),
        dash.page_container,
    ])


def _in_request() -> bool:
    """Dash also calls the layout function once at start-up, outside any request."""
    try:
        auth.get_username()
        return True
    except RuntimeError:
        return False


app.layout = layout

if __name__ == "__main__":
    app.run(debug=False, port=8050)
