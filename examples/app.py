"""The example app from the commercial dash_enterprise_auth docs, unchanged.

Nothing here mentions a connector: the package protects the app through
Dash's plugin hook as soon as ``DASH_AUTH_CONNECTOR`` is set (``make demo``
sets it to ``basic`` with the demo users in ``demo-users.json``). On Dash 2.x,
call ``dash_enterprise_auth.protect(app)`` after creating the app.
"""
import dash
from dash import Input, Output, dcc, html

import dash_enterprise_auth as auth

app = dash.Dash(__name__, title="Sales dashboard")
server = app.server  # for gunicorn: gunicorn examples.app:server

app.layout = html.Div(
    [
        html.H1(id="greeting"),
        auth.create_logout_button(),
        dcc.Dropdown(
            id="city",
            options=[
                {"label": "New York City", "value": "NYC"},
                {"label": "Montreal", "value": "MTL"},
                {"label": "San Francisco", "value": "SF"},
            ],
            value="NYC",
        ),
        dcc.Graph(id="graph"),
    ]
)


@app.callback(Output("greeting", "children"), Input("city", "value"))
def greet(_city):
    return f"Hello {auth.get_username()}"


@app.callback(Output("graph", "figure"), Input("city", "value"))
def update_graph(city):
    sales = {"NYC": [4, 1, 3], "MTL": [2, 4, 5], "SF": [3, 2, 4]}[city]
    return {
        "data": [{"x": ["Q1", "Q2", "Q3"], "y": sales, "type": "bar", "name": city}],
        "layout": {"title": {"text": f"Sales in {city}"}},
    }


if __name__ == "__main__":
    app.run(debug=False, port=8050)
