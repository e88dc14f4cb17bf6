"""A multi-page app for what examples/pages_app does not show: dash-auth's ``public_callback`` and
``protected_callback`` inside a restricted page, a callback of the app module (not a page), and
pages with bad rules (``PAGES_FOLDER=typo_pages`` or ``string_pages``), which must stop start-up.

Each callback prints a line when it runs: a refused callback must never have printed.
"""
import os

import dash
from dash import Input, Output, html

import dash_enterprise_auth as auth

BACKEND = os.environ.get("DASH_BACKEND", "flask")
app = dash.Dash(__name__, use_pages=True, pages_folder=os.environ.get("PAGES_FOLDER", "pages"), backend=BACKEND,
                **({"websocket_callbacks": True} if BACKEND != "flask" else {}))  # ASGI: callbacks over a socket
server = app.server

app.layout = html.Div([html.Button("App note", id="app-button"), html.Div(id="app-note"), dash.page_container])


@app.callback(Output("app-note", "children"), Input("app-button", "n_clicks"), prevent_initial_call=True)
def app_note(_n_clicks):
    print(f"app callback run by {auth.get_username()}", flush=True)
    return f"noted for {auth.get_username()}"
