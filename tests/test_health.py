"""``/_dash-auth/health`` follows the identity provider: 503 while it does not answer, 200 once it does.

Load balancers take an instance out of rotation on a 503, so health must not say 200 while nobody
can sign in (a cached discovery document or metadata is no proof that the provider answers).
"""
from __future__ import annotations

import time

import pytest

from dash_enterprise_auth.connectors import http
from dash_enterprise_auth.connectors.http import Probe
from dash_enterprise_auth.errors import ProviderUnavailable

from .conftest import IN_PROCESS_APP, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET
from .servers.oidc_server import client
from .test_oidc import oidc_settings
from .test_plotly import plotly, plotly_settings  # noqa: F401  (plotly, idp: fixtures)
from .test_saml import idp, saml_settings  # noqa: F401


@pytest.fixture
def no_reuse(monkeypatch):
    """Every health check asks the provider (the app reuses an answer for a few seconds)."""
    monkeypatch.setattr(http, "PROBE_REUSE", 0.0)


def health(app) -> int:
    return app.server.test_client().get("/_dash-auth/health").status_code


def test_oidc_health_fails_while_the_provider_is_stopped_and_recovers(make_app, make_oidc_provider, no_reuse):
    provider = make_oidc_provider(client(OIDC_CLIENT_ID, f"{IN_PROCESS_APP}/_dash-auth/callback/oidc",
                                         f"{IN_PROCESS_APP}/_dash-auth/signed-out", OIDC_CLIENT_SECRET))
    app = make_app(**oidc_settings(provider, oidc_timeout=2))
    assert health(app) == 200
    provider.stop()  # the discovery document stays cached for sign-ins; health must not trust it
    started = time.monotonic()
    assert health(app) == 503
    assert time.monotonic() - started < 10
    provider.start()
    assert health(app) == 200


def test_saml_health_fails_while_the_metadata_url_does_not_answer_and_recovers(make_app, idp, no_reuse):
    app = make_app(**saml_settings(idp, saml_timeout=2))
    assert health(app) == 200
    idp.stop()
    assert health(app) == 503
    idp.start()
    assert health(app) == 200


def test_plotly_health_fails_while_the_api_does_not_answer_and_recovers(make_app, plotly, no_reuse):
    app = make_app(**plotly_settings(plotly, plotly_timeout=2))
    assert health(app) == 200
    plotly.down()
    assert health(app) == 503
    plotly.up()
    assert health(app) == 200


def test_a_probe_answer_is_reused_for_a_few_seconds_so_health_checks_cannot_hammer_the_provider(monkeypatch):
    calls = []
    outcome = {"fail": False}

    def reach() -> None:
        calls.append(time.monotonic())
        if outcome["fail"]:
            raise ProviderUnavailable(log_detail="down")

    monkeypatch.setattr(http, "PROBE_REUSE", 0.5)
    probe = Probe(reach)
    for _ in range(20):
        probe()
    assert len(calls) == 1
    outcome["fail"] = True
    time.sleep(0.6)
    for _ in range(20):
        with pytest.raises(ProviderUnavailable):
            probe()  # the failure is reused too: a dead provider is not asked twenty times
    assert len(calls) == 2
    outcome["fail"] = False
    time.sleep(0.6)
    probe()
    assert len(calls) == 3
