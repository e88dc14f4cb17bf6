"""The example app behind ``dash-auth`` 2.x ``BasicAuth``: the peer in bench/throughput.py.

It reuses ``examples.app`` unchanged (same layout, same callbacks), so the only
difference from the no-auth variant is dash-auth's per-request check of the
``Authorization: Basic`` header. Run from the repo root:
``gunicorn bench.peer_dash_auth_app:server``.
"""
import os

import dash_auth

# This package must stay inactive here, or we would measure two guards at once.
for _name in [n for n in os.environ if n.startswith("DASH_AUTH_")]:
    del os.environ[_name]

from examples.app import app  # noqa: E402  (after the environment is cleaned)

USERS: dict[str, str] = {"alice": "wonderland"}

dash_auth.BasicAuth(app, USERS)
server = app.server
