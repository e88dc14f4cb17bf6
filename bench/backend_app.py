"""examples/app.py on the Dash backend ``DASH_BACKEND`` names (flask, fastapi, quart).

bench/throughput.py serves this module under uvicorn (FastAPI) and hypercorn
(Quart). examples/app.py creates its app with ``dash.Dash(__name__, ...)``,
which is always Flask, and stays as users read it: this module imports it
with ``dash.Dash`` standing, for the duration of the import only, for a
subclass that adds ``backend=DASH_BACKEND``. Layout, callbacks and title are
therefore the example's own, and the package protects the app (or stays
idle) through its Dash plugin exactly as it does on Flask. Run from the repo
root: ``DASH_BACKEND=fastapi uvicorn bench.backend_app:server``.
"""
import os

import dash

BACKEND = os.environ["DASH_BACKEND"]


class _DashOnBackend(dash.Dash):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, backend=BACKEND, **kwargs)


_Dash, dash.Dash = dash.Dash, _DashOnBackend
try:
    from examples.app import app  # noqa: E402
finally:
    dash.Dash = _Dash

server = app.server  # FastAPI or Quart: what uvicorn and hypercorn load
