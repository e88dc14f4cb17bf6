"""Dash >= 3 loads this module through the ``dash_hooks`` entry point.

With ``DASH_AUTH_CONNECTOR`` set, every Dash app in the process is protected
as it is created, with no change to its code. Without it, nothing happens but
one log line, so installing the package never changes an app by surprise.
"""
from __future__ import annotations

import logging
import os

from dash import hooks

from .install import protect

log = logging.getLogger("dash_enterprise_auth")


@hooks.setup(priority=1000)
def protect_on_setup(app) -> None:
    if os.environ.get("DASH_AUTH_CONNECTOR", "").strip():
        protect(app)
    else:
        log.info("dash-enterprise-auth: DASH_AUTH_CONNECTOR is not set; %s is not protected",
                 getattr(app.config, "name", "the app"))
