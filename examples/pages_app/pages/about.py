import dash
from dash import Input, Output, html

import dash_enterprise_auth as auth

dash.register_page(__name__, path="/about", name="About", order=3, public=True)  # no sign-in needed

layout = html.Div([
    html.H2("About"),
    html.P("The company portal. Anyone may read this page.", id="about-text"),
    html.Button("Who am I?", id="whoami-button"),
    html.Div(id="whoami"),
])


@dash.callback(Output("whoami", "children"), Input("whoami-button", "n_clicks"), prevent_initial_call=True)
def whoami(_n_clicks):
    name = auth.get_username()
    return f"You are {name}" if name else "You are an anonymous visitor"
