import dash
from dash import html

dash.register_page(__name__, path="/vault", allowed_groups="finance")

layout = html.Div("vault")
