"""A Dash app whose callback runs in the background (DiskcacheManager, another process).

Such callbacks have no Flask request: get_username() must find the viewer
through dash.callback_context.cookies.
"""
import os

import dash
import diskcache
from dash import DiskcacheManager, Input, Output, html

import dash_enterprise_auth as auth

cache = diskcache.Cache(os.environ["BACKGROUND_CACHE_DIR"])
app = dash.Dash(__name__, background_callback_manager=DiskcacheManager(cache), title="Background")
server = app.server

app.layout = html.Div([
    html.Button("Who am I?", id="ask"),
    html.Div(id="answer"),
    auth.create_logout_button(),
])


@app.callback(Output("answer", "children"), Input("ask", "n_clicks"), background=True,
              prevent_initial_call=True)
def who_am_i(_clicks):
    data = auth.get_user_data()
    return f"Background hello {auth.get_username()} ({', '.join(data['groups'])}) pid {os.getpid()}"
