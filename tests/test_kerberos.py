"""Kerberos tickets for the viewer, against a real MIT KDC and a real Kerberized (Negotiate) service."""
from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
from flask import Response

import dash_enterprise_auth as auth
from dash_enterprise_auth.kerberos import TIME_FORMAT

from .conftest import PASSWORDS as BASIC_PASSWORDS
from .conftest import sign_in
from .servers.kdc_server import APP_SERVICE, HTTP_SERVICE, KdcServer, SilentKdc
from .servers.negotiate_service import NegotiateService, negotiate_get
from .servers.slapd_server import PASSWORDS
from .test_ldap import settings_for
from .test_oidc import back_from_provider, oidc_settings


CAROL_PASSWORD = BASIC_PASSWORDS["carol"]


def serve_ccache(app) -> None:
    """``GET /ccache``: what get_kerberos_ticket_cache() returns, or (409) why it raised."""
    @app.server.route("/ccache")
    def ccache() -> Response:
        try:
            return Response(auth.get_kerberos_ticket_cache(), mimetype="application/octet-stream")
        except auth.KerberosTicketUnavailable as exc:
            return Response(str(exc), status=409)


def kerberized_app(make_app, slapd, realm: str, tmp_path: Path, **extra):
    """An LDAP-protected app with routes that hand out what the API returns, for the test to inspect."""
    app = make_app(krb5_realm=realm, allowed_groups=["analysts", "staff"], connector="ldap",
                   session_store=f"sqlite:///{tmp_path}/sessions.sqlite3", **settings_for(slapd), **extra)

    serve_ccache(app)

    @app.server.route("/user-data")
    def user_data() -> Response:
        import flask
        return flask.jsonify(auth.get_user_data())

    @app.server.route("/with-env")
    def with_env() -> Response:
        import flask
        before = os.environ.get("KRB5CCNAME")
        with auth.kerberos_ccache() as name:
            path = Path(name.removeprefix("FILE:"))
            inside = {"name": os.environ.get("KRB5CCNAME"), "mode": oct(stat.S_IMODE(path.stat().st_mode)),
                      "klist": subprocess.run(["klist"], capture_output=True, text=True).stdout}
        return flask.jsonify({**inside, "before": before, "after": os.environ.get("KRB5CCNAME"),
                              "exists_after": path.exists()})

    return app


def klist(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "cc"
    path.write_bytes(data)
    return subprocess.run(["klist", "-c", f"FILE:{path}"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def signed_in(make_app, slapd, kdc, tmp_path):
    app = kerberized_app(make_app, slapd, kdc.realm, tmp_path)
    client = app.server.test_client()
    assert sign_in(client, "alice", PASSWORDS["alice"]).status_code == 302
    return app, client


def test_a_directory_sign_in_gives_the_viewer_a_real_ticket_cache(signed_in, kdc, negotiate_service, tmp_path):
    _, client = signed_in
    response = client.get("/ccache")
    assert response.status_code == 200
    listing = klist(response.data, tmp_path)
    assert f"Default principal: alice@{kdc.realm}" in listing and f"krbtgt/{kdc.realm}@{kdc.realm}" in listing
    answer = negotiate_get(negotiate_service.url, tmp_path / "cc")
    assert answer.status_code == 200 and answer.json()["principal"] == f"alice@{kdc.realm}"


def test_a_basic_connector_sign_in_gets_a_ticket_too(make_app, kdc, tmp_path):
    kdc.add_principal("carol", CAROL_PASSWORD)  # carol of the users file, with the same password in the realm
    app = make_app(krb5_realm=kdc.realm)  # the basic connector and its users file

    serve_ccache(app)

    client = app.server.test_client()
    assert sign_in(client, "carol").status_code == 302
    assert f"Default principal: carol@{kdc.realm}" in klist(client.get("/ccache").data, tmp_path)


def test_user_data_shows_the_expiry_but_never_the_ticket(signed_in, kdc, tmp_path):
    app, client = signed_in
    data = client.get("/user-data").get_json()
    expiry = time.mktime(time.strptime(data["kerberos_ticket_expiry"], TIME_FORMAT)) - time.timezone
    assert abs(expiry - (time.time() + kdc.ticket_lifetime)) < 120
    ccache = client.get("/ccache").data
    assert "ccache" not in str(data) and "krb5" not in str(data) and ccache.hex() not in str(data)
    cookie = client.get_cookie("dash-auth-session").value
    assert len(cookie) < 200  # a signed id, not the ticket
    stored = b"".join(row[0].encode() if isinstance(row[0], str) else bytes(row[0]) for row in
                      sqlite3.connect(tmp_path / "sessions.sqlite3").execute("SELECT body FROM sessions"))
    # encrypted at rest: neither the cache nor its TGT's bytes appear in the store
    assert ccache not in stored and ccache[-200:] not in stored and b"krbtgt" not in stored


def test_logout_takes_the_ticket_with_the_session(signed_in, tmp_path):
    _, client = signed_in
    assert client.get("/ccache").status_code == 200
    client.get("/_dash-auth/logout", headers={"Sec-Fetch-Site": "same-origin", "Accept": "text/html"})
    assert client.get("/ccache").status_code == 401
    rows = sqlite3.connect(tmp_path / "sessions.sqlite3").execute("SELECT count(*) FROM sessions").fetchone()
    assert rows == (0,)


def test_kerberos_ccache_sets_krb5ccname_for_the_block_only(signed_in, kdc):
    _, client = signed_in
    seen = client.get("/with-env").get_json()
    assert seen["name"].startswith("FILE:") and seen["mode"] == "0o600"
    assert f"alice@{kdc.realm}" in seen["klist"]
    assert seen["after"] == seen["before"] and not seen["exists_after"]


def test_a_failed_kerberos_step_does_not_fail_the_sign_in(make_app, slapd, kdc, tmp_path, caplog):
    app = kerberized_app(make_app, slapd, "WRONG.REALM", tmp_path)
    client = app.server.test_client()
    assert sign_in(client, "alice", PASSWORDS["alice"]).status_code == 302
    refused = client.get("/ccache")
    assert refused.status_code == 409 and "the KDC gave no ticket for alice@WRONG.REALM" in refused.get_data(as_text=True)
    assert PASSWORDS["alice"] not in caplog.text

    app = kerberized_app(make_app, slapd, kdc.realm, tmp_path / "2", privacy="authorized")
    client = app.server.test_client()
    assert sign_in(client, "disabled", PASSWORDS["disabled"]).status_code == 403  # not a KDC matter
    weird = app.server.test_client()
    sign_in(weird, "we(ird)*\\name", PASSWORDS["we(ird)*\\name"])
    reason = weird.get("/ccache").get_data(as_text=True)
    assert "the KDC gave no ticket" in reason  # no such principal in the realm


def test_without_a_realm_the_error_says_so(make_app, slapd, tmp_path):
    app = make_app(connector="ldap", **settings_for(slapd))

    serve_ccache(app)

    client = app.server.test_client()
    sign_in(client, "alice", PASSWORDS["alice"])
    assert "DASH_AUTH_KRB5_REALM is not configured" in client.get("/ccache").get_data(as_text=True)


def test_a_ticket_is_renewed_while_the_session_is_used_and_expires_when_it_is_not(
        make_app, slapd, make_kdc, tmp_path):
    short_lived_kdc = make_kdc(realm="SHORT.EXAMPLE.ORG", ticket_lifetime=20, max_renewable_life=600, clockskew=1)
    app = kerberized_app(make_app, slapd, short_lived_kdc.realm, tmp_path)
    client = app.server.test_client()
    assert sign_in(client, "alice", PASSWORDS["alice"]).status_code == 302
    first = client.get("/user-data").get_json()["kerberos_ticket_expiry"]
    time.sleep(12)  # past half the ticket's life: the next request renews it
    assert client.get("/ccache").status_code == 200
    renewed = client.get("/user-data").get_json()["kerberos_ticket_expiry"]
    assert renewed > first

    idle = app.server.test_client()
    assert sign_in(idle, "bob", PASSWORDS["bob"]).status_code == 302
    kdc_stopped_meanwhile = short_lived_kdc
    kdc_stopped_meanwhile.stop()  # no renewal possible: the ticket runs out
    time.sleep(21)
    expired = idle.get("/ccache")
    assert expired.status_code == 409 and "expired at" in expired.get_data(as_text=True)
    assert idle.get("/user-data").status_code == 200  # the session itself goes on


def delegating_app(make_app, oidc_provider, kdc, tmp_path):
    """An OIDC app (no password ever reaches it) with the app's keytab, delegating to HTTP/localhost."""
    app = make_app(**oidc_settings(oidc_provider), krb5_realm=kdc.realm, krb5_keytab=str(kdc.app_keytab),
                   krb5_service_principal=APP_SERVICE, krb5_delegate_to=[HTTP_SERVICE],
                   session_store=f"sqlite:///{tmp_path}/sessions.sqlite3")

    serve_ccache(app)

    return app


def test_an_oidc_sign_in_gets_tickets_by_constrained_delegation(make_app, oidc_provider, make_kdc, tmp_path):
    kdc = make_kdc(backend="ldap")  # MIT serves S4U2Proxy only from its LDAP database
    kdc.allow_delegation(APP_SERVICE, to=[HTTP_SERVICE])
    service = NegotiateService(kdc).start()
    try:
        app = delegating_app(make_app, oidc_provider, kdc, tmp_path)
        browser = app.server.test_client()
        assert back_from_provider(browser, "alice")[0].status_code == 302
        response = browser.get("/ccache")
        assert response.status_code == 200, response.get_data(as_text=True)
        (tmp_path / "cc").write_bytes(response.data)
        answer = negotiate_get(service.url, tmp_path / "cc")
        assert answer.status_code == 200 and answer.json()["principal"] == f"alice@{kdc.realm}"
    finally:
        service.stop()


def test_without_constrained_delegation_the_sign_in_works_and_the_error_says_why(
        make_app, oidc_provider, make_kdc, tmp_path):
    kdc = make_kdc()  # the DB2 database: S4U2Self works, S4U2Proxy is refused
    app = delegating_app(make_app, oidc_provider, kdc, tmp_path)
    browser = app.server.test_client()
    assert back_from_provider(browser, "alice")[0].status_code == 302
    reason = browser.get("/ccache").get_data(as_text=True)
    assert f"constrained delegation (S4U2Proxy) of alice@{kdc.realm} to {HTTP_SERVICE}@{kdc.realm} failed" in reason


def test_delegation_settings_go_together(make_app, oidc_provider):
    from dash_enterprise_auth.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="DASH_AUTH_KRB5_SERVICE_PRINCIPAL together"):
        make_app(**oidc_settings(oidc_provider), krb5_realm="EXAMPLE.ORG", krb5_keytab="/etc/app.keytab")


# -- a KDC that never answers (or answers late) ----------------------------------------------------
#
# MIT krb5 1.20 itself waits about 27 s for such a KDC, close to gunicorn's 30 s worker timeout.

MARGIN = 4.0  # seconds allowed on top of a timeout, for a loaded 2-core CI


@contextmanager
def silent_kdc(kdc: KdcServer, answer_after: float | None = None) -> Iterator[SilentKdc]:
    """``kdc``'s realm behind a KDC that never answers (or answers ``answer_after`` seconds late)
    for the block: KRB5_CONFIG points at it (libkrb5 reads it at each call), then back."""
    server = SilentKdc(kdc, answer_after).start()
    previous = os.environ["KRB5_CONFIG"]
    os.environ["KRB5_CONFIG"] = str(server.krb5_conf)
    try:
        yield server
    finally:
        os.environ["KRB5_CONFIG"] = previous
        server.stop()


@pytest.fixture
def ccache_folders(tmp_path, monkeypatch) -> Callable[[], list[str]]:
    """The app's private credential cache folders (tempfile's folder is the test's own meanwhile)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return lambda: sorted(path.name for path in folder.glob("dash-auth-krb5-*"))


def kdc_calls() -> list[threading.Thread]:
    """KDC calls of the app still under way, the ones given up on included."""
    return [thread for thread in threading.enumerate() if thread.name == "dash-auth-kdc"]


def wait_until_kdc_calls_end(seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while kdc_calls() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not kdc_calls(), "a KDC call given up on never ended"


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def kdc_unavailable(client) -> str:
    answer = client.get("/ccache")
    assert answer.status_code == 409, answer.status_code
    return answer.get_data(as_text=True)


@pytest.mark.parametrize("connector, timeout", [("ldap", 2), ("basic", 5)])
def test_a_kdc_that_never_answers_holds_a_sign_in_for_the_connector_timeout_only(
        make_app, slapd, kdc, tmp_path, ccache_folders, connector, timeout):
    if connector == "ldap":  # DASH_AUTH_LDAP_TIMEOUT bounds the KDC too
        app = kerberized_app(make_app, slapd, kdc.realm, tmp_path, ldap_timeout=timeout)
        username, password = "alice", PASSWORDS["alice"]
    else:  # no timeout setting of its own: 5 s
        app = make_app(krb5_realm=kdc.realm)
        serve_ccache(app)
        username, password = "carol", CAROL_PASSWORD
    client = app.server.test_client()
    with silent_kdc(kdc) as hung:
        response, took = timed(lambda: sign_in(client, username, password))
        assert response.status_code == 302 and took < timeout + MARGIN, f"the sign-in took {took:.1f} s"
        assert hung.requests > 0  # the KDC was asked, and said nothing
        reason = kdc_unavailable(client)
        assert f"the KDC for {kdc.realm} did not answer within {timeout} s" in reason, reason
        assert not ccache_folders()
    wait_until_kdc_calls_end()  # the KDC went away: the call given up on ends
    assert kdc_unavailable(client) == reason and not ccache_folders()


def test_a_kdc_answering_after_the_sign_in_gave_up_changes_nothing(make_app, slapd, kdc, tmp_path, ccache_folders):
    app = kerberized_app(make_app, slapd, kdc.realm, tmp_path, ldap_timeout=2)
    client = app.server.test_client()
    issued = kdc.log_path.read_text().count("ISSUE: authtime")
    with silent_kdc(kdc, answer_after=3) as late:
        response, took = timed(lambda: sign_in(client, "alice", PASSWORDS["alice"]))
        assert response.status_code == 302 and took < 2 + MARGIN, f"the sign-in took {took:.1f} s"
        reason = kdc_unavailable(client)
        assert "did not answer within 2 s" in reason
        wait_until_kdc_calls_end(30)  # with a TGT: the KDC issued it late, and the client got it
        assert late.answered > 0 and kdc.log_path.read_text().count("ISSUE: authtime") > issued
    assert kdc_unavailable(client) == reason  # nothing reached the session
    assert not ccache_folders()


def test_kdc_calls_that_hang_are_bounded_and_later_sign_ins_do_not_wait_for_them(
        make_app, slapd, kdc, tmp_path, ccache_folders):
    from dash_enterprise_auth import kerberos

    app = kerberized_app(make_app, slapd, kdc.realm, tmp_path, ldap_timeout=3)
    clients = [app.server.test_client() for _ in range(kerberos.MAX_PENDING_KDC_CALLS)]
    with silent_kdc(kdc):
        with ThreadPoolExecutor(len(clients)) as pool:
            answers = list(pool.map(lambda client: sign_in(client, "alice", PASSWORDS["alice"]).status_code,
                                    clients))
        assert answers == [302] * len(clients) and len(kdc_calls()) == len(clients)  # all still waiting
        latecomer = app.server.test_client()
        response, took = timed(lambda: sign_in(latecomer, "alice", PASSWORDS["alice"]))
        assert response.status_code == 302 and took < 2, f"the sign-in took {took:.1f} s"  # no 3 s wait
        reason = kdc_unavailable(latecomer)
        assert f"the KDC for {kdc.realm} has not answered {len(clients)} earlier requests" in reason, reason
        assert len(kdc_calls()) == len(clients)
    wait_until_kdc_calls_end()
    assert not ccache_folders()


def test_renewing_against_a_kdc_that_never_answers_is_bounded_and_keeps_the_ticket(
        make_app, slapd, make_kdc, tmp_path, ccache_folders):
    short_lived_kdc = make_kdc(realm="RENEW.EXAMPLE.ORG", ticket_lifetime=16, max_renewable_life=600, clockskew=1)
    app = kerberized_app(make_app, slapd, short_lived_kdc.realm, tmp_path, ldap_timeout=2)
    client = app.server.test_client()
    assert sign_in(client, "alice", PASSWORDS["alice"]).status_code == 302
    ticket = client.get("/ccache").data
    with silent_kdc(short_lived_kdc) as hung:
        time.sleep(9)  # past half the ticket's life: the next request renews it
        response, took = timed(lambda: client.get("/ccache"))
        assert response.status_code == 200 and took < 2 + MARGIN, f"the request took {took:.1f} s"
        assert response.data == ticket and hung.requests > 0
        assert not ccache_folders()
    wait_until_kdc_calls_end()
    assert not ccache_folders()


def test_delegation_against_a_kdc_that_never_answers_is_bounded_by_the_provider_timeout(
        make_app, oidc_provider, kdc, tmp_path, ccache_folders):
    app = delegating_app(make_app, oidc_provider, kdc, tmp_path)  # DASH_AUTH_OIDC_TIMEOUT: 5 s
    browser = app.server.test_client()
    with silent_kdc(kdc) as hung:
        (response, _), took = timed(lambda: back_from_provider(browser, "alice"))
        assert response.status_code == 302 and took < 5 + MARGIN, f"the sign-in took {took:.1f} s"
        reason = kdc_unavailable(browser)
        assert f"the KDC for {kdc.realm} did not answer within 5 s" in reason and hung.requests > 0, reason
        assert not ccache_folders()
    wait_until_kdc_calls_end()
    assert not ccache_folders()


def test_kerberos_ccache_blocks_take_turns_in_async_code_and_a_plain_with_cannot_freeze_the_loop():
    """Two coroutines of one event loop: ``async with`` waits for the other block off the loop; a
    plain ``with`` while another coroutine holds KRB5CCNAME is refused, naming ``async with``."""
    import asyncio

    from dash_enterprise_auth.kerberos import CcacheInEnvironment

    before = os.environ.get("KRB5CCNAME")
    seen: list[str] = []

    async def holder(tag: bytes) -> None:
        async with CcacheInEnvironment(tag) as name:
            seen.append(Path(name.removeprefix("FILE:")).read_bytes().decode())
            await asyncio.sleep(0.2)
            assert os.environ["KRB5CCNAME"] == name  # nobody else's ticket meanwhile

    async def plain_with() -> str:
        await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError, match="async with kerberos_ccache"):
            with CcacheInEnvironment(b"c"):
                pass
        return "refused"

    async def main() -> list:
        return await asyncio.gather(holder(b"a"), holder(b"b"), plain_with())

    assert asyncio.run(main())[2] == "refused"
    assert sorted(seen) == ["a", "b"] and os.environ.get("KRB5CCNAME") == before
