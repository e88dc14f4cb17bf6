"""A Dash app whose callback keeps what the viewer types with set_user_data, for the store-failure tests."""
import dash
from dash import Input, Output, dcc, html

import dash_enterprise_auth as auth

app = dash.Dash(__name__, title="Notes")
server = app.server  # the gunicorn target

app.layout = html.Div([dcc.Input(id="note"), html.Div(id="saved")])


@app.callback(Output("saved", "children"), Input("note", "value"), prevent_initial_call=True)
def save(note):
    auth.set_user_data({"note": note})
    return "saved"


@server.route("/note")
def note():
    return {"note": auth.get_user_data().get("note")}


def save_request(note: str) -> dict:
    """The body Dash's renderer posts to _dash-update-component when the input changes."""
    return {"output": "saved.children", "outputs": {"id": "saved", "property": "children"},
            "inputs": [{"id": "note", "property": "value", "value": note}], "changedPropIds": ["note.value"]}
