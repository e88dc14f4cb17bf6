import dash
from dash import html

dash.register_page(__name__, path="/", name="Home", order=0)  # no rule: the app-wide one

layout = html.Div([html.H2("Home"), html.P("News for everyone who signs in.", id="home-news")])
