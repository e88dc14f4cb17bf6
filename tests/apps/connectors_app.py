"""One Dash app for the connector suite on the ASGI backends (tests/test_backends_connectors.py).

The backend comes from ``DASH_BACKEND`` (fastapi, quart; flask works too) and the protection
only from ``DASH_AUTH_*`` variables and the Dash plugin, so one app serves every connector.
It has:

- ``greeting``: who the viewer is, as JSON (the shape tests.test_install_extras.Browser.viewer
  reads), with the "Hello <user>" a person would see;
- ``ticket`` and ``GET /ccache``: the bytes of get_kerberos_ticket_cache() (base64 in the
  callback, raw from the route; 409 and the reason when there is no ticket);
- ``answer``: a background callback (DiskcacheManager, cache in ``BACKGROUND_CACHE_DIR``);
- ``saved``: set_user_data() in a callback (tests.apps.notes_app.save_request's ids), and
  ``GET /note`` to read it back;
- ``use-ticket`` / ``use-ticket-async``: klist run inside kerberos_ccache_file() ("file") or
  kerberos_ccache() ("env"); "env-hold" awaits 1 s inside ``async with kerberos_ccache()``, as an
  async driver would, "env-hold-sync" the same inside a plain ``with`` (a misuse that must fail clearly);
- ``new-name``: set_username();
- ``late-sync`` / ``late-async``: callbacks that call set_user_data() only once the test lets
  them (``SIGNAL_DIR``/<value>.go), after telling it they started (<value>.started), so the
  test can end the session while they run.
"""
import asyncio
import base64
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import dash
import diskcache
from dash import DiskcacheManager, Input, Output, dcc, html

import dash_enterprise_auth as auth

BACKEND = os.environ.get("DASH_BACKEND", "flask")
SIGNALS = Path(os.environ.get("SIGNAL_DIR") or tempfile.gettempdir())
WAIT_SECONDS = 30

cache = diskcache.Cache(os.environ.get("BACKGROUND_CACHE_DIR") or tempfile.mkdtemp())
app = dash.Dash(__name__, title="Connectors", backend=BACKEND, background_callback_manager=DiskcacheManager(cache))
server = app.server  # what uvicorn, hypercorn and gunicorn load

app.layout = html.Div([
    html.Div("NYC", id="city"),
    html.Div(id="greeting"),
    html.Div(id="ticket"),
    html.Button("Who am I?", id="ask"),
    html.Div(id="answer"),
    dcc.Input(id="note"),
    html.Div(id="saved"),
    dcc.Input(id="use-ticket"),
    html.Div(id="use-ticket-out"),
    dcc.Input(id="use-ticket-async"),
    html.Div(id="use-ticket-async-out"),
    dcc.Input(id="new-name"),
    html.Div(id="renamed"),
    dcc.Input(id="late-sync"),
    html.Div(id="late-sync-out"),
    dcc.Input(id="late-async"),
    html.Div(id="late-async-out"),
    auth.create_logout_button(),
])


def ticket_or_reason() -> tuple[bytes | None, str]:
    try:
        return auth.get_kerberos_ticket_cache(), ""
    except auth.KerberosTicketUnavailable as exc:
        return None, str(exc)


@app.callback(Output("greeting", "children"), Input("city", "children"))
def greet(_city):
    data = auth.get_user_data()
    ticket, reason = ticket_or_reason()
    return json.dumps({"hello": f"Hello {auth.get_username()}", "username": auth.get_username(),
                       "groups": data.get("groups"), "connector": data.get("connector"),
                       "kerberos_ticket_bytes": len(ticket) if ticket is not None else reason,
                       "kerberos_ticket_expiry": data.get("kerberos_ticket_expiry")})


@app.callback(Output("ticket", "children"), Input("city", "children"))
def ticket_in_a_callback(_city):
    ticket, reason = ticket_or_reason()
    return base64.b64encode(ticket).decode() if ticket is not None else f"unavailable: {reason}"


@app.callback(Output("answer", "children"), Input("ask", "n_clicks"), background=True, prevent_initial_call=True)
def who_am_i(clicks):
    data = auth.get_user_data()
    return json.dumps({"hello": f"Background hello {auth.get_username()}", "username": auth.get_username(),
                       "groups": data.get("groups"), "clicks": clicks, "pid": os.getpid()})


@app.callback(Output("saved", "children"), Input("note", "value"), prevent_initial_call=True)
def save(note):
    auth.set_user_data({"note": note})
    return "saved"


def _klist(how: str, where: str) -> dict:
    return {"how": how, "where": where, "KRB5CCNAME": os.environ.get("KRB5CCNAME"),
            "klist": subprocess.run(["klist", *(["-c", where] if how == "file" else [])], capture_output=True,
                                    text=True, timeout=20).stdout}


@app.callback(Output("use-ticket-out", "children"), Input("use-ticket", "value"), prevent_initial_call=True)
def use_ticket(how):
    before = os.environ.get("KRB5CCNAME")
    if how == "file":
        with auth.kerberos_ccache_file() as path:
            seen = _klist(how, f"FILE:{path}")
    else:
        with auth.kerberos_ccache() as name:
            seen = _klist(how, name)
    return json.dumps({**seen, "before": before, "after": os.environ.get("KRB5CCNAME")})


@app.callback(Output("use-ticket-async-out", "children"), Input("use-ticket-async", "value"),
              prevent_initial_call=True)
async def use_ticket_async(how):
    before = os.environ.get("KRB5CCNAME")
    if how == "file":
        with auth.kerberos_ccache_file() as path:
            await asyncio.sleep(0)
            seen = _klist(how, f"FILE:{path}")
    elif how == "env-hold":
        async with auth.kerberos_ccache() as name:
            await asyncio.sleep(1)  # an async driver talking to its server
            seen = _klist("env", name)
    else:
        with auth.kerberos_ccache() as name:  # "env", and "env-hold-sync": awaiting in a plain `with`
            await asyncio.sleep(1 if how == "env-hold-sync" else 0)
            seen = _klist("env", name)
    return json.dumps({**seen, "before": before, "after": os.environ.get("KRB5CCNAME")})


@app.callback(Output("renamed", "children"), Input("new-name", "value"), prevent_initial_call=True)
def rename(name):
    auth.set_username(name)
    data = auth.get_user_data()
    return json.dumps({"username": auth.get_username(), "preferred_username": data["preferred_username"]})


def _started(token: str) -> Path:
    (SIGNALS / f"{token}.started").touch()
    return SIGNALS / f"{token}.go"


@app.callback(Output("late-sync-out", "children"), Input("late-sync", "value"), prevent_initial_call=True)
def save_late(token):
    go, deadline = _started(token), time.monotonic() + WAIT_SECONDS
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    auth.set_user_data({"note": token})
    return f"saved {token}"


@app.callback(Output("late-async-out", "children"), Input("late-async", "value"), prevent_initial_call=True)
async def save_late_async(token):
    go, deadline = _started(token), time.monotonic() + WAIT_SECONDS
    while not go.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    auth.set_user_data({"note": token})
    return f"saved {token}"


def _ccache_answer() -> tuple[bytes, int, str]:
    ticket, reason = ticket_or_reason()
    if ticket is None:
        return reason.encode(), 409, "text/plain"
    return ticket, 200, "application/octet-stream"


if BACKEND == "fastapi":
    from fastapi.responses import JSONResponse, Response

    @server.get("/ccache")
    async def ccache():
        body, status, media_type = _ccache_answer()
        return Response(body, status, media_type=media_type)

    @server.get("/note")
    def note():
        return JSONResponse({"note": auth.get_user_data().get("note")})
elif BACKEND == "quart":
    import quart

    @server.route("/ccache")
    async def ccache():
        body, status, media_type = _ccache_answer()
        return quart.Response(body, status, mimetype=media_type)

    @server.route("/note")
    async def note():
        return {"note": auth.get_user_data().get("note")}
else:
    import flask

    @server.route("/ccache")
    def ccache():
        body, status, media_type = _ccache_answer()
        return flask.Response(body, status, mimetype=media_type)

    @server.route("/note")
    def note():
        return {"note": auth.get_user_data().get("note")}
