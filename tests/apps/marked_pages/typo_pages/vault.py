import dash
from dash import html

dash.register_page(__name__, path="/vault", allowed_group=["finance"])

layout = html.Div("vault")
