import dash
from dash import html

dash.register_page(__name__, path="/", public=True)

layout = html.Div("The lobby", id="lobby")
