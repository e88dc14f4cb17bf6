import dash
from dash import Input, Output, html

import dash_enterprise_auth as auth

dash.register_page(__name__, path="/finance", name="Finance", order=1, redirect_from=["/money"],
                   allowed_groups=["finance"])

layout = html.Div([
    html.H2("Finance"),
    html.P("Quarterly revenue: 12.4 M", id="revenue"),
    html.Button("Export the report", id="export"),
    html.Div(id="exported"),
])


@dash.callback(Output("exported", "children"), Input("export", "n_clicks"), prevent_initial_call=True)
def export(n_clicks):
    # The side effect a refused callback must never have.
    print(f"finance report exported by {auth.get_username()}", flush=True)
    return f"Report exported ({n_clicks})"
