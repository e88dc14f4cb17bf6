"""One Dash app for the behaviour suite, on the backend ``DASH_BACKEND`` names (flask, fastapi, quart).

It is protected only through the ``DASH_AUTH_*`` variables and the Dash plugin, as a team would
run it, and has one of everything the guard must cover: a sync and an ``async def`` callback, a
WebSocket callback (on the ASGI backends), an asset, a route added on the server, a
``hooks.route`` route, the MCP endpoint and a callback that stores data with set_user_data().
"""
import os

import dash
from dash import Input, Output, dcc, hooks, html

import dash_enterprise_auth as auth

BACKEND = os.environ.get("DASH_BACKEND", "flask")
ASGI = BACKEND != "flask"


@hooks.route("hook-route")
def hook_route():
    return {"route": "hook"}


app = dash.Dash(__name__, title="Backends", backend=BACKEND, enable_mcp=True,
                **({"websocket_callbacks": True} if ASGI else {}))
server = app.server  # what gunicorn, uvicorn and hypercorn load

app.layout = html.Div([
    html.H1(id="greeting"),
    html.Div(id="async-greeting"),
    dcc.Input(id="note"),
    html.Div(id="saved"),
    dcc.Dropdown(id="city", options=["NYC", "MTL"], value="NYC"),
    auth.create_logout_button(),
])


@app.callback(Output("greeting", "children"), Input("city", "value"))
def greet(_city):
    return f"Hello {auth.get_username()}"


@app.callback(Output("async-greeting", "children"), Input("city", "value"))
async def greet_async(_city):
    return f"Async hello {auth.get_username()} {auth.get_user_data().get('groups')}"


@app.callback(Output("saved", "children"), Input("note", "value"), prevent_initial_call=True)
def save(note):
    auth.set_user_data({"note": note})
    return f"saved {auth.get_user_data().get('note')}"


if BACKEND == "fastapi":
    @server.get("/added-route")
    def added_route():
        return {"route": "added", "user": auth.get_username()}
elif BACKEND == "quart":
    @server.route("/added-route")
    async def added_route():
        return {"route": "added", "user": auth.get_username()}
else:
    @server.route("/added-route")
    def added_route():
        return {"route": "added", "user": auth.get_username()}
