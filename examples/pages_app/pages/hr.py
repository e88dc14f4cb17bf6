import dash
from dash import Input, Output, html

import dash_enterprise_auth as auth

dash.register_page(__name__, path_template="/hr/<person>", path="/hr/alice", name="HR", order=2,
                   allowed_users=["carol"])


def layout(person=None, **_query):
    return html.Div([
        html.H2(f"HR file of {person}"),
        html.P("Salary band: confidential", id="salary"),
        html.Button("Show reviews", id="reviews-button"),
        html.Div(id="reviews"),
    ])


@dash.callback(Output("reviews", "children"), Input("reviews-button", "n_clicks"), prevent_initial_call=True)
def reviews(_n_clicks):
    print(f"hr reviews read by {auth.get_username()}", flush=True)
    return "Reviews: exceeds expectations"
