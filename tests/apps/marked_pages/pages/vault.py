import dash
from dash import Input, Output, html

import dash_enterprise_auth as auth

dash.register_page(__name__, path="/vault", allowed_groups=["finance"])

layout = html.Div([
    html.Button("Ticker", id="ticker-button"), html.Div(id="ticker"),
    html.Button("Contract", id="contract-button"), html.Div(id="contract"),
    html.Button("Secret", id="secret-button"), html.Div(id="secret"),
])


@auth.public_callback(Output("ticker", "children"), Input("ticker-button", "n_clicks"), prevent_initial_call=True)
def ticker(_n_clicks):
    print(f"ticker run by {auth.get_username()}", flush=True)
    return "ticker: 42"


@auth.protected_callback(Output("contract", "children"), Input("contract-button", "n_clicks"),
                         groups=["contractors"], prevent_initial_call=True)
def contract(_n_clicks):
    print(f"contract run by {auth.get_username()}", flush=True)
    return f"contract for {auth.get_username()}"


@dash.callback(Output("secret", "children"), Input("secret-button", "n_clicks"), prevent_initial_call=True)
def secret(_n_clicks):
    print(f"secret run by {auth.get_username()}", flush=True)
    return "the vault code"
