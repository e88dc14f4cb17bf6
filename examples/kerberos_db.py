"""Query a Kerberized service as the viewer, with the viewer's own Kerberos ticket.

Run behind a password connector with a realm, e.g.::

    DASH_AUTH_CONNECTOR=ldap DASH_AUTH_KRB5_REALM=CORP.EXAMPLE.COM ... \\
    KERBERIZED_URL=https://reports.corp.example.com/api/whoami \\
    gunicorn examples.kerberos_db:server

Each sign-in through the form also gets the person a TGT; the callback below
uses it to call an HTTP service that checks ``Authorization: Negotiate``, so
the service sees (and applies its row-level security to) the viewer, not the
app. Database drivers work the same way (see ``query_database``).
"""
import base64
import os

import dash
import gssapi
import requests
from dash import Input, Output, html

import dash_enterprise_auth as auth

URL = os.environ.get("KERBERIZED_URL", "http://localhost:8080/")

app = dash.Dash(__name__, title="Reports as you")
server = app.server

app.layout = html.Div([
    html.H1("Reports, fetched with your own Kerberos ticket"),
    auth.create_logout_button(),
    html.Button("Fetch", id="fetch"),
    html.Pre(id="answer"),
])


@app.callback(Output("answer", "children"), Input("fetch", "n_clicks"), prevent_initial_call=True)
def fetch(_clicks):
    try:
        # A private copy of the viewer's ticket cache for this block only; gssapi reads it
        # through the path, not KRB5CCNAME, so concurrent callbacks never mix tickets.
        with auth.kerberos_ccache_file() as ccache:
            creds = gssapi.Credentials(usage="initiate", store={"ccache": f"FILE:{ccache}"})
            host = requests.utils.urlparse(URL).hostname
            context = gssapi.SecurityContext(name=gssapi.Name(f"HTTP@{host}", gssapi.NameType.hostbased_service),
                                             creds=creds, usage="initiate")
            token = base64.b64encode(context.step()).decode()
        response = requests.get(URL, headers={"Authorization": f"Negotiate {token}"}, timeout=10)
    except auth.KerberosTicketUnavailable as exc:
        return f"No ticket: {exc}"
    return f"{response.status_code}\n{response.text[:2000]}"


def query_database(sql: str):
    """The same for a driver that only reads KRB5CCNAME (psycopg with gssencmode, impyla, pyodbc):
    ``kerberos_ccache()`` sets it for the block, one block at a time per process."""
    import psycopg  # not a dependency of this package; shown for the pattern

    with auth.kerberos_ccache():
        with psycopg.connect(os.environ["DATABASE_DSN"], gssencmode="require") as connection:
            return connection.execute(sql).fetchall()


if __name__ == "__main__":
    app.run(debug=False)
