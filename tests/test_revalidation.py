"""Re-validation: a signed-in person disabled, deleted or taken out of the allowed groups at the
provider loses access within DASH_AUTH_REVALIDATE_INTERVAL, on every backend, without signing out.

Real providers only: a users file, a private OpenLDAP slapd, panva's oidc-provider.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from dash_enterprise_auth.users_file import add_user

from .clients import client_of
from .conftest import OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, IN_PROCESS_APP, UPDATE_GREETING
from .servers.oidc_server import client as oidc_client
from .servers.slapd_server import GROUP_DNS, PEOPLE_BASE, SlapdServer, ssha, to_ldif

INTERVAL = 2  # seconds; the README's default is 300
HTML = {"Accept": "text/html", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}


def page(client: Any) -> int:
    return client.get("/", headers=HTML).status_code


def dash_request(client: Any) -> int:
    return client.post("/_dash-update-component", json=UPDATE_GREETING).status_code


def sign_in_as(client: Any, username: str, password: str) -> None:
    answer = client.post("/_dash-auth/login", data={"username": username, "password": password, "next": "/"})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
    assert page(client) == 200


def stored_identity(app: Any, username: str) -> dict:
    from dash_enterprise_auth.install import installed_on

    sessions = installed_on(app.server).store.list_sessions(username)
    assert len(sessions) == 1, sessions
    return sessions[0].identity


def wait_past_interval() -> None:
    time.sleep(INTERVAL + 0.2)


@pytest.fixture(params=["flask", "fastapi", "quart"])
def backend(request: Any) -> str:
    return request.param


# -- basic: the users file --------------------------------------------------------------------------

@pytest.fixture
def own_users(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    add_user(path, "ann", "ann-password", ["analysts"])
    add_user(path, "ben", "ben-password", ["analysts"])
    add_user(path, "cid", "cid-password", ["analysts"])
    return path


def test_basic_a_removed_user_is_signed_out_and_changed_groups_take_effect(make_app, own_users, backend):
    app = make_app({"backend": backend}, users_file=str(own_users), revalidate_interval=INTERVAL)
    ann, ben, cid = client_of(app), client_of(app), client_of(app)
    for client, name in ((ann, "ann"), (ben, "ben"), (cid, "cid")):
        sign_in_as(client, name, f"{name}-password")
    add_user(own_users, "ann", "ann-password", ["staff"])  # out of the allowed group
    add_user(own_users, "cid", "cid-password", ["analysts", "staff"])  # still allowed, one group more
    text = own_users.read_text().replace('"ben"', '"ben-gone"')  # ben removed
    own_users.write_text(text)
    assert page(ann) == 200  # not due yet: the change is not seen before the interval
    wait_past_interval()
    assert page(ann) == 403 and dash_request(ann) == 403
    assert page(ben) == 302 and dash_request(ben) == 401
    assert page(cid) == 200 and dash_request(cid) == 200
    assert sorted(stored_identity(app, "cid")["groups"]) == ["analysts", "staff"]


def test_with_an_interval_of_0_nothing_is_asked_again(make_app, own_users):
    app = make_app(users_file=str(own_users), revalidate_interval=0)
    ann = client_of(app)
    sign_in_as(ann, "ann", "ann-password")
    add_user(own_users, "ann", "ann-password", ["staff"])
    wait_past_interval()
    assert page(ann) == 200


def test_a_users_file_that_turns_unusable_does_not_end_sessions(make_app, own_users, backend):
    app = make_app({"backend": backend}, users_file=str(own_users), revalidate_interval=INTERVAL)
    ann = client_of(app)
    sign_in_as(ann, "ann", "ann-password")
    good = own_users.read_text()
    own_users.write_text("{ not json")
    wait_past_interval()
    assert page(ann) == 200 and dash_request(ann) == 200  # cannot tell: fail open
    # The file comes back, without ann: the next try after the back-off ends her session.
    own_users.write_text(good.replace('"ann"', '"ann-gone"'))
    time.sleep(INTERVAL + 0.2)  # the back-off is the interval when that is shorter than 30 s
    assert page(ann) == 302


# -- ldap: a private slapd --------------------------------------------------------------------------

CAROL_DN, DAVE_DN = f"uid=carol,{PEOPLE_BASE}", f"uid=dave,{PEOPLE_BASE}"


def add_carol_and_dave(server: SlapdServer) -> None:
    people = [(dn, [("objectClass", "inetOrgPerson"), ("uid", uid), ("cn", uid.title()), ("sn", uid.title()),
                    ("mail", f"{uid}@example.org"), ("userPassword", ssha(f"{uid}-password"))])
              for dn, uid in ((CAROL_DN, "carol"), (DAVE_DN, "dave"))]
    server.modify(to_ldif(people), add=True)
    server.modify(f"dn: {GROUP_DNS['analysts']}\nchangetype: modify\nadd: member\nmember: {CAROL_DN}\n"
                  f"member: {DAVE_DN}\n")


@pytest.fixture
def directory(make_slapd) -> SlapdServer:
    server = make_slapd()
    add_carol_and_dave(server)
    return server


def ldap_app(make_app: Any, server: SlapdServer, backend: str = "flask") -> Any:
    return make_app({"backend": backend}, connector="ldap", ldap_url=server.ldaps_url,
                    ldap_ca_file=str(server.ca_file), ldap_bind_dn=server.service_dn,
                    ldap_bind_password=server.service_password, ldap_user_base=server.base_dn,
                    ldap_group_base=server.groups_base, allowed_groups=["analysts"], revalidate_interval=INTERVAL)


def test_ldap_removed_from_the_group_locked_or_deleted_people_lose_access_within_the_interval(
        make_app, directory, backend):
    app = ldap_app(make_app, directory, backend)
    clients = {name: client_of(app) for name in ("alice", "carol", "dave", "jsmith")}
    for name, client in clients.items():
        sign_in_as(client, name, "jsmith-password" if name == "jsmith" else f"{name}-password")
    directory.modify(f"dn: {GROUP_DNS['analysts']}\nchangetype: modify\ndelete: member\n"
                     f"member: uid=alice,{PEOPLE_BASE}\n")
    directory.modify(f"dn: {CAROL_DN}\nchangetype: modify\nadd: pwdAccountLockedTime\n"
                     "pwdAccountLockedTime: 000001010000Z\n")
    directory.modify(f"dn: {DAVE_DN}\nchangetype: delete\n")
    directory.modify(f"dn: {GROUP_DNS['staff']}\nchangetype: modify\nadd: member\n"
                     "member: cn=Smith\\, John,ou=people,dc=example,dc=org\n")
    wait_past_interval()
    assert page(clients["alice"]) == 403 and dash_request(clients["alice"]) == 403
    assert page(clients["carol"]) == 302 and dash_request(clients["carol"]) == 401
    assert page(clients["dave"]) == 302 and dash_request(clients["dave"]) == 401
    assert page(clients["jsmith"]) == 200 and dash_request(clients["jsmith"]) == 200
    assert sorted(stored_identity(app, "jsmith")["groups"]) == ["analysts", "staff"]
    assert stored_identity(app, "alice")["groups"] == ["staff"]  # her session lives on, refused by the policy
    for name in ("carol", "dave"):
        assert not installed_sessions(app, name)


def installed_sessions(app: Any, username: str) -> list:
    from dash_enterprise_auth.install import installed_on

    return installed_on(app.server).store.list_sessions(username)


def test_ldap_a_directory_that_is_down_keeps_sessions_and_re_validation_resumes_when_it_is_back(
        make_app, directory, backend):
    app = ldap_app(make_app, directory, backend)
    carol = client_of(app)
    sign_in_as(carol, "carol", "carol-password")
    directory.stop()
    wait_past_interval()
    started = time.monotonic()
    for _ in range(5):  # asked once, then held off for the back-off: no timeout per request
        assert page(carol) == 200 and dash_request(carol) == 200
    assert time.monotonic() - started < 5
    directory.start()
    directory.modify(f"dn: {CAROL_DN}\nchangetype: delete\n")
    time.sleep(INTERVAL + 0.2)
    assert page(carol) == 302


# -- oidc: refresh tokens at panva's oidc-provider ----------------------------------------------------

def oidc_app(make_app: Any, provider: Any, **extra: Any) -> Any:
    return make_app(connector="oidc", oidc_issuer=provider.issuer, oidc_client_id=OIDC_CLIENT_ID,
                    oidc_client_secret=OIDC_CLIENT_SECRET, oidc_scopes="openid email profile groups",
                    revalidate_interval=INTERVAL, **extra)


@pytest.fixture
def refreshing_provider(make_oidc_provider) -> Any:
    """A provider whose client may use refresh tokens, rotated at every use (the strictest case:
    a rotated token used twice revokes the whole grant)."""
    return make_oidc_provider(oidc_client(
        OIDC_CLIENT_ID, f"{IN_PROCESS_APP}/_dash-auth/callback/oidc", f"{IN_PROCESS_APP}/_dash-auth/signed-out",
        OIDC_CLIENT_SECRET, refresh_tokens=True), rotate_refresh_tokens=True)


def oidc_sign_in(app_client: Any, username: str = "alice") -> None:
    from .test_oidc import back_from_provider

    answer, location = back_from_provider(app_client, username)
    assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
    assert "offline_access" not in location  # (the code comes back; the scope was asked on the way out)


def test_oidc_asks_for_offline_access_and_keeps_the_refresh_token_private(make_app, refreshing_provider):
    from .test_oidc import to_provider

    app = oidc_app(make_app, refreshing_provider)
    alice = app.server.test_client()
    assert "offline_access" in to_provider(alice)
    oidc_sign_in(alice)
    identity = stored_identity(app, "alice")
    assert identity["private"]["refresh_token"]
    answer = alice.get("/", headers=HTML)
    assert answer.status_code == 200
    assert identity["private"]["refresh_token"] not in "".join(answer.headers.getlist("Set-Cookie"))


def test_oidc_re_validation_rotates_the_refresh_token_and_a_revoked_grant_ends_the_session(
        make_app, refreshing_provider):
    app = oidc_app(make_app, refreshing_provider)
    alice = app.server.test_client()
    oidc_sign_in(alice)
    first = stored_identity(app, "alice")["private"]["refresh_token"]
    wait_past_interval()
    assert dash_request(alice) == 200
    second = stored_identity(app, "alice")["private"]["refresh_token"]
    assert second != first  # rotated, and stored
    wait_past_interval()
    assert dash_request(alice) == 200  # the stored (rotated) token works: it was stored right
    third = stored_identity(app, "alice")["private"]["refresh_token"]
    revoked = requests.post(refreshing_provider.issuer + "/token/revocation", auth=(OIDC_CLIENT_ID, OIDC_CLIENT_SECRET),
                            data={"token": third, "token_type_hint": "refresh_token"}, timeout=5)
    assert revoked.status_code == 200
    wait_past_interval()
    assert page(alice) == 302 and dash_request(alice) == 401
    assert not installed_sessions(app, "alice")


def test_oidc_two_workers_due_at_once_never_race_into_a_revoked_token(make_app, refreshing_provider, tmp_path):
    """Two apps on one store are two workers; each request re-validates when due. With rotation,
    a token used twice would revoke the grant: the claim and the compare-and-set prevent it."""
    store = f"sqlite:///{tmp_path}/shared.sqlite3"
    first, second = (oidc_app(make_app, refreshing_provider, session_store=store) for _ in range(2))
    alice = first.server.test_client()
    oidc_sign_in(alice)
    cookie = alice.get_cookie("dash-auth-session").value
    workers = [app.server.test_client() for app in (first, second, first, second)]
    for worker in workers:
        worker.set_cookie("dash-auth-session", cookie)
    other = workers[1]
    for _ in range(3):
        wait_past_interval()
        answers: list[int] = []
        threads = [threading.Thread(target=lambda c=c: answers.append(dash_request(c))) for c in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [200, 200, 200, 200]
    wait_past_interval()
    assert dash_request(other) == 200 and dash_request(alice) == 200


def test_oidc_a_provider_stopped_during_re_validation_keeps_sessions_going(make_app, refreshing_provider):
    app = oidc_app(make_app, refreshing_provider)
    alice = app.server.test_client()
    oidc_sign_in(alice)
    refreshing_provider.stop()
    try:
        wait_past_interval()
        for _ in range(3):
            assert page(alice) == 200 and dash_request(alice) == 200
        wait_past_interval()
        assert page(alice) == 200 and dash_request(alice) == 200  # tried again after the back-off: still open
    finally:
        refreshing_provider.start()


# -- plotly: the stand-in Plotly server --------------------------------------------------------------

from .test_plotly import APP, plotly, plotly_settings, sign_in_at_plotly  # noqa: E402,F401  (its fixture too)


def test_plotly_unshared_or_revoked_viewers_lose_access_and_an_outage_keeps_sessions(make_app, plotly):
    app = make_app(**plotly_settings(plotly), revalidate_interval=INTERVAL)
    browsers = {name: app.server.test_client() for name in ("alice", "bob")}
    for name, browser in browsers.items():
        assert sign_in_at_plotly(browser, name, f"{name}-pw").status_code == 302
        assert page(browser) == 200
    plotly.files[APP]["viewers"].remove("bob")  # the owner stops sharing the app with bob
    wait_past_interval()
    assert page(browsers["bob"]) == 302 and dash_request(browsers["bob"]) == 401
    assert page(browsers["alice"]) == 200
    plotly.stop()
    try:
        wait_past_interval()
        assert page(browsers["alice"]) == 200 and dash_request(browsers["alice"]) == 200  # fail open
    finally:
        plotly.start()
    with plotly._lock:
        plotly._drop_token(stored_identity(app, "alice")["private"]["access_token"])  # revoked at Plotly
    time.sleep(INTERVAL + 0.2)
    assert page(browsers["alice"]) == 302
