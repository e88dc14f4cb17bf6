"""The example app plus two small routes that write and read set_user_data, for scale-out tests."""
import flask

import dash_enterprise_auth as auth
from examples.app import app, server  # noqa: F401  (server is the gunicorn target)


@server.route("/user-data", methods=["GET", "PUT"])
def user_data():
    if flask.request.method == "PUT":
        auth.set_user_data(flask.request.get_json())
        return {"saved": True}
    data = auth.get_user_data()
    return {k: v for k, v in data.items() if k not in ("email", "name", "connector", "preferred_username")}
