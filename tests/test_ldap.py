"""The LDAP connector against a real OpenLDAP slapd started by the fixtures (no mock LDAP)."""
from __future__ import annotations

import gc
import html
import logging
import socket
import subprocess
import threading
import time
import types
from typing import Any

import pytest
from ldap3 import Connection, Server
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import parse_dn

from dash_enterprise_auth.connectors.ldap import DirectoryUnavailable, LdapConnector
from dash_enterprise_auth.errors import AccountLocked, ConfigurationError, InvalidCredentials
from dash_enterprise_auth.install import installed_on
from dash_enterprise_auth.settings import Settings

from .conftest import sign_in
from .servers.redis_server import make_tls_files
from .servers.slapd_server import DUP_DNS, PASSWORDS, USER_DNS, WEIRD_UID, Bind, SlapdServer
from .test_cli import cli

ANALYSTS_DN = "cn=analysts,ou=groups,dc=example,dc=org"
INVALID_CREDENTIALS = 49


def settings_for(server: SlapdServer, **extra: Any) -> dict[str, Any]:
    """protect() keywords for this server: LDAPS with its CA, the service account, users under the base."""
    return {
        "ldap_url": server.ldaps_url, "ldap_ca_file": str(server.ca_file), "ldap_bind_dn": server.service_dn,
        "ldap_bind_password": server.service_password, "ldap_user_base": server.base_dn, **extra,
    }


def connector_for(server: SlapdServer, **extra: Any) -> LdapConnector:
    """Built the way the app builds it: from settings, so option names and parsing are exercised too."""
    return LdapConnector.from_settings(Settings.load(LdapConnector.options, settings_for(server, **extra), {}))


def env_for(server: SlapdServer, **extra: str) -> dict[str, str]:
    return {f"DASH_AUTH_{k.upper()}": str(v) for k, v in settings_for(server, **extra).items()}


@pytest.fixture(scope="module")
def directory(slapd: SlapdServer) -> LdapConnector:
    return connector_for(slapd)


# -- signing in ----------------------------------------------------------------------------

def test_a_person_signs_in_with_the_directory_password_and_gets_name_mail_and_groups(directory):
    identity = directory.authenticate("alice", PASSWORDS["alice"])
    assert identity.username == "alice" and identity.connector == "ldap"
    assert identity.email == "alice@example.org" and identity.display_name == "Alice Liddell"
    assert sorted(identity.groups) == ["analysts", "staff"]
    assert ANALYSTS_DN in [g.lower() for g in identity.group_ids]
    assert identity.attributes["dn"].lower() == "uid=alice,ou=people,dc=example,dc=org"


@pytest.mark.parametrize("typed", ["ALICE", " alice", "Alice "])
def test_the_username_is_the_directorys_spelling_not_what_was_typed(directory, typed):
    assert directory.authenticate(typed, PASSWORDS["alice"]).username == "alice"


@pytest.mark.parametrize("username, password", [
    ("alice", "wrong-password"), ("alice", PASSWORDS["bob"]), ("nobody", "alice-password"),
])
def test_a_wrong_password_or_unknown_user_is_refused_with_the_same_message(directory, username, password):
    with pytest.raises(InvalidCredentials) as refused:
        directory.authenticate(username, password)
    assert refused.value.user_message == InvalidCredentials.default_message


def test_an_empty_password_never_signs_in_although_the_server_accepts_unauthenticated_binds(slapd, directory):
    # The danger is real: this server answers a DN with an empty password with success (RFC 4513 5.1.2).
    unauthenticated = subprocess.run(
        ["ldapwhoami", "-x", "-H", slapd.ldap_url.replace("localhost", "127.0.0.1"),
         "-D", "uid=alice,ou=people,dc=example,dc=org", "-w", ""], capture_output=True, text=True, timeout=20)
    assert unauthenticated.returncode == 0 and "anonymous" in unauthenticated.stdout
    for password in ("", None):
        with pytest.raises(InvalidCredentials):
            directory.authenticate("alice", password)  # type: ignore[arg-type]


@pytest.mark.parametrize("username", [
    "*", "a*", "al*", "*)(uid=*))(|(uid=*", "alice)(uid=*", "*)(|(uid=*", "\\", "alice\\", "alice\x00",
    "(", ")", "alice)", "we(ird)*", "we(ird)*\\*",
])
def test_filter_characters_in_a_username_are_escaped_and_match_nobody_else(directory, username):
    for password in (PASSWORDS["alice"], PASSWORDS[WEIRD_UID]):
        with pytest.raises(InvalidCredentials):
            directory.authenticate(username, password)


def test_a_username_made_of_filter_characters_signs_in_as_exactly_itself(directory):
    identity = directory.authenticate("we(ird)*\\name", PASSWORDS[WEIRD_UID])
    assert identity.username == "we(ird)*\\name" and "weird" in identity.groups


def test_a_username_that_matches_two_entries_is_refused(directory):
    with pytest.raises(InvalidCredentials) as refused:
        directory.authenticate("dup", PASSWORDS["dup"])
    assert "more than one" in refused.value.log_detail


def test_an_account_locked_by_the_password_policy_cannot_sign_in(directory):
    with pytest.raises(InvalidCredentials):
        directory.authenticate("locked", PASSWORDS["locked"])


def test_an_active_directory_disabled_account_is_refused_but_only_after_its_password(directory):
    with pytest.raises(InvalidCredentials):  # the wrong password learns nothing about the account
        directory.authenticate("disabled", "wrong-password")
    with pytest.raises(AccountLocked) as refused:
        directory.authenticate("disabled", PASSWORDS["disabled"])
    assert refused.value.status == 403 and "disabled" in refused.value.user_message


# -- groups --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [{}, {"ldap_group_base": "ou=groups,dc=example,dc=org"}], ids=["memberOf", "search"])
def test_a_dn_with_an_escaped_comma_finds_its_groups(slapd, mode):
    identity = connector_for(slapd, **mode).authenticate("jsmith", PASSWORDS["jsmith"])
    assert identity.display_name == "Smith, John" and "analysts" in identity.groups


@pytest.mark.parametrize("mode", [{}, {"ldap_group_base": "ou=groups,dc=example,dc=org"}], ids=["memberOf", "search"])
def test_nested_groups_are_counted_only_when_asked(slapd, mode):
    flat = connector_for(slapd, **mode).authenticate("nina", PASSWORDS["nina"])
    assert list(flat.groups) == ["data-team"]
    nested = connector_for(slapd, ldap_nested_groups="true", **mode).authenticate("nina", PASSWORDS["nina"])
    assert sorted(nested.groups) == ["analysts", "data-team"]


def test_a_group_filter_over_uniquemember_or_username_works(slapd):
    by_name = connector_for(slapd, ldap_group_base="ou=groups,dc=example,dc=org",
                            ldap_group_filter="(&(objectClass=groupOfNames)(member=uid={username},ou=people,dc=example,dc=org))")
    assert sorted(by_name.authenticate("alice", PASSWORDS["alice"]).groups) == ["analysts", "staff"]


@pytest.mark.parametrize("allowed", ["analysts", "ANALYSTS", ANALYSTS_DN, ANALYSTS_DN.upper()])
def test_allowed_groups_match_names_and_full_dns(make_app, slapd, allowed):
    app = make_app(connector="ldap", allowed_groups=[allowed], **settings_for(slapd))
    client = app.server.test_client()
    assert sign_in(client, "alice", PASSWORDS["alice"]).status_code == 302
    assert client.get("/").status_code == 200
    other = app.server.test_client()
    sign_in(other, "bob", PASSWORDS["bob"])
    assert other.get("/").status_code == 403


# -- the sign-in form ----------------------------------------------------------------------

def test_the_form_refuses_bad_input_with_a_page_never_a_500(make_app, slapd):
    app = make_app(connector="ldap", **settings_for(slapd))
    client = app.server.test_client()
    for username, password in [("alice", ""), ("*", "x"), ("alice\x00", PASSWORDS["alice"]), ("dup", "dup-password"),
                               ("*)(uid=*))(|(uid=*", "x"), ("locked", PASSWORDS["locked"])]:
        response = sign_in(client, username, password)
        assert response.status_code == 401, username
        assert "incorrect" in response.get_data(as_text=True)
        assert client.get("/").status_code == 401  # still no session
    disabled = sign_in(client, "disabled", PASSWORDS["disabled"])
    assert disabled.status_code == 403 and "disabled in the directory" in disabled.get_data(as_text=True)


def test_a_password_ldap3_cannot_send_is_a_wrong_password_not_an_outage(make_app, slapd):
    # ldap3 prepares a bind's password (SASLprep, RFC 4013) and raises on NUL and control characters;
    # that once passed for a server failure: a 503 the throttle did not count, and the server demoted.
    app = make_app(connector="ldap", **settings_for(slapd))
    protection = installed_on(app.server)
    client = app.server.test_client()
    for password in (PASSWORDS["alice"] + "\x00", "\x00", "x\x1b[31m"):
        for username in ("alice", "nobody"):
            response = sign_in(client, username, password)
            assert response.status_code == 401, (username, password)
            assert "The username or password is incorrect." in response.get_data(as_text=True)
    assert protection.connector.servers._failed_at == {}  # the server answered: it stays first
    assert protection.throttle.store.failures("account:alice")[0] == 3  # counted as wrong passwords
    assert sign_in(client, "alice", PASSWORDS["alice"]).status_code == 302
    assert client.get("/").status_code == 200


# -- what a refusal gives away ------------------------------------------------------------

def user_binds(server: SlapdServer, mark: int, answered: int, wait: float = 5.0) -> list[Bind]:
    """The binds slapd logged after ``mark`` other than the service account's, once ``answered``
    of them have their result in the log (slapd logs a result after sending it), or after ``wait``."""
    deadline = time.monotonic() + wait
    while True:
        binds = [b for b in server.binds_since(mark) if rdns(b.dn) != rdns(server.service_dn)]
        if sum(b.result is not None for b in binds) >= answered or time.monotonic() > deadline:
            return binds
        time.sleep(0.02)


def rdns(dn: str) -> list[tuple[str, str]]:
    """A DN as (attribute, value) pairs in lower case, to compare DNs however they are escaped."""
    return [(name.lower(), value.lower()) for name, value, _ in parse_dn(dn)]


def test_an_unknown_or_ambiguous_username_costs_the_directory_a_password_bind_like_a_wrong_password(make_app, slapd):
    # Refusing an unknown name without a bind answers faster than checking a password, which tells
    # an attacker which usernames exist. What they can measure: the directory's work and the page.
    app = make_app(connector="ldap", **settings_for(slapd))
    attempts = {
        "wrong password": ("alice", "wrong-password"),
        "unknown username": ("nobody", "wrong-password"),
        "unknown username, someone's password": ("nobody", PASSWORDS["alice"]),
        "username of two entries, their password": ("dup", PASSWORDS["dup"]),
    }
    seen = {}
    for case, (username, password) in attempts.items():
        client = app.server.test_client()
        mark = slapd.log_mark()
        response = sign_in(client, username, password)
        binds = user_binds(slapd, mark, answered=1)
        assert [b.result for b in binds] == [INVALID_CREDENTIALS], f"{case}: {binds}"
        under_base = rdns(binds[0].dn)[-len(rdns(slapd.base_dn)):] == rdns(slapd.base_dn)
        assert under_base and len(rdns(binds[0].dn)) > len(rdns(slapd.base_dn)), f"{case}: {binds}"
        if username != "alice":  # a DN nobody has, never one of the entries found
            assert all(rdns(binds[0].dn) != rdns(dn) for dn in (*USER_DNS.values(), *DUP_DNS)), binds
        assert client.get("/").status_code == 401, case  # no session
        page = response.get_data(as_text=True).replace(f'value="{html.escape(username)}"', 'value="(typed)"')
        headers = sorted((k, v) for k, v in response.headers.items() if k != "Content-Length")
        seen[case] = (response.status_code, headers, page)
    assert seen["wrong password"][0] == 401 and "The username or password is incorrect." in seen["wrong password"][2]
    assert all(answer == seen["wrong password"] for answer in seen.values()), "every refusal looks the same"


def test_a_directory_that_accepts_a_bind_as_anyone_still_signs_no_unknown_user_in(make_app, make_slapd, caplog):
    # Some directories and proxies answer a password bind as a name they do not have with success.
    lax = "dc=accepts-any-bind"
    server = make_slapd(accept_any_bind_under=lax)
    assert Connection(Server(server.ldap_url), f"uid=nobody,{lax}", "anything").bind()  # the danger is real
    app = make_app(connector="ldap", privacy="authorized", **settings_for(server, ldap_user_base=lax))
    client = app.server.test_client()
    mark = server.log_mark()
    response = sign_in(client, "nobody", "anything")
    assert [b.result for b in user_binds(server, mark, answered=1)] == [0]  # the directory said yes
    assert response.status_code == 401 and "The username or password is incorrect." in response.get_data(as_text=True)
    assert client.get("/").status_code == 401
    assert "accepted a password bind as a DN that does not exist" in caplog.text  # the operator is told


# -- TLS, referrals ------------------------------------------------------------------------

def test_ldaps_and_starttls_verify_the_certificate_and_host_name(slapd):
    assert connector_for(slapd).authenticate("alice", PASSWORDS["alice"])
    starttls = connector_for(slapd, ldap_url=slapd.ldap_url)
    assert starttls.authenticate("alice", PASSWORDS["alice"]).username == "alice"


@pytest.mark.parametrize("case", ["host name mismatch", "unknown CA", "system CAs", "StartTLS host mismatch"])
def test_certificate_errors_fail_closed_with_a_clear_reason(slapd, tmp_path, case):
    other_ca, _ = make_tls_files(tmp_path)
    settings = {
        "host name mismatch": {"ldap_url": slapd.ldaps_url.replace("localhost", "127.0.0.1")},
        "unknown CA": {"ldap_ca_file": str(other_ca)},
        "system CAs": {"ldap_ca_file": ""},
        "StartTLS host mismatch": {"ldap_url": slapd.ldap_url.replace("localhost", "127.0.0.1")},
    }[case]
    connector = connector_for(slapd, **settings)
    with pytest.raises(DirectoryUnavailable) as refused:
        connector.authenticate("alice", PASSWORDS["alice"])
    assert "certificate" in refused.value.log_detail and "refused" in refused.value.log_detail
    reason = "does not name this host" if "host" in case else "not trusted"
    assert reason in refused.value.log_detail
    with pytest.raises(DirectoryUnavailable):
        connector.ping()


def test_a_ca_file_replaced_on_disk_is_used_by_every_new_connection(slapd, tmp_path):
    other_ca, _ = make_tls_files(tmp_path)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(other_ca.read_bytes())
    connector = connector_for(slapd, ldap_ca_file=str(ca_file))
    with pytest.raises(DirectoryUnavailable) as refused:
        connector.authenticate("alice", PASSWORDS["alice"])
    assert "not trusted" in refused.value.log_detail
    ca_file.write_bytes(slapd.ca_file.read_bytes())
    assert connector.authenticate("alice", PASSWORDS["alice"]).username == "alice"
    # open connections stay; check() opens new ones. One byte longer, so the change shows even
    # within one tick of the file system's clock.
    ca_file.write_bytes(other_ca.read_bytes() + b"\n")
    server_finding = connector.check()[0]
    assert not server_finding.ok and "not trusted" in server_finding.message


def test_sign_ins_from_many_threads_at_once_all_succeed(directory):
    """As under gthread workers: the threads share the connector and each keeps its own bind connection."""
    failures: list[BaseException] = []

    def sign_in_a_few_times(username: str) -> None:
        try:
            for _ in range(10):
                assert directory.authenticate(username, PASSWORDS[username]).username == username
        except BaseException as exc:  # reported below, in the test's own thread
            failures.append(exc)

    threads = [threading.Thread(target=sign_in_a_few_times, args=(user,))
               for user in ("alice", "bob", "jsmith", "nina") * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == [] and not any(thread.is_alive() for thread in threads)


def test_turning_verification_off_works_but_is_logged_loudly(slapd, caplog):
    with caplog.at_level(logging.WARNING, logger="dash_enterprise_auth"):
        connector = connector_for(slapd, ldap_url=slapd.ldaps_url.replace("localhost", "127.0.0.1"),
                                  ldap_tls_verify="false", ldap_ca_file="")
    assert connector.authenticate("alice", PASSWORDS["alice"]).username == "alice"
    assert "INSECURE LDAP SETTING: DASH_AUTH_LDAP_TLS_VERIFY=false" in caplog.text
    assert any(not f.ok and "INSECURE" in f.message for f in connector.check())


def test_a_plain_ldap_url_uses_starttls_unless_told_otherwise(slapd, caplog):
    plain = connector_for(slapd, ldap_url=slapd.ldap_url, ldap_start_tls="false")
    assert plain.authenticate("alice", PASSWORDS["alice"]).username == "alice"
    assert "passwords cross the network in clear text" in caplog.text


class ConnectionCounter:
    """A TCP listener that only counts who connects: where a referral would send the password."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


def test_referrals_are_never_followed_so_no_credentials_go_to_another_host(make_slapd):
    server = make_slapd()
    evil = ConnectionCounter()
    server.modify(f"""dn: ou=partners,ou=people,{server.base_dn}
changetype: add
objectClass: referral
objectClass: extensibleObject
ou: partners
ref: ldap://localhost:{evil.port}/ou=people,{server.base_dn}
""")
    # ldap3's default (auto_referrals=True) does follow it, with the credentials of the connection:
    naive = Connection(Server(server.ldap_url), server.service_dn, server.service_password, auto_bind=True)
    with pytest.raises(LDAPException):  # the counter hangs up on it
        naive.search(f"ou=partners,ou=people,{server.base_dn}", "(uid=*)")
    followed = evil.accepted
    connector = connector_for(server)
    assert connector.authenticate("alice", PASSWORDS["alice"]).username == "alice"
    with pytest.raises(InvalidCredentials):
        connector.authenticate("mallory", "anything")
    user_base_is_the_referral = connector_for(server, ldap_user_base=f"ou=partners,ou=people,{server.base_dn}")
    with pytest.raises((InvalidCredentials, DirectoryUnavailable)):
        user_base_is_the_referral.authenticate("alice", PASSWORDS["alice"])
    assert followed >= 1 and evil.accepted == followed


# -- reliability ---------------------------------------------------------------------------

def test_failover_to_the_second_server_and_recovery_after_a_full_outage(make_slapd, tmp_path):
    first = make_slapd()
    second = make_slapd(service_password=first.service_password)  # replicas share the service account
    both_cas = tmp_path / "cas.pem"
    both_cas.write_bytes(first.ca_file.read_bytes() + second.ca_file.read_bytes())
    connector = connector_for(first, ldap_url=f"{first.ldaps_url},{second.ldaps_url}", ldap_timeout="2",
                              ldap_ca_file=str(both_cas))
    assert connector.authenticate("alice", PASSWORDS["alice"]).username == "alice"
    first.stop()
    assert connector.authenticate("alice", PASSWORDS["alice"]).username == "alice"
    second.stop()
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable) as down:
        connector.authenticate("alice", PASSWORDS["alice"])
    assert time.monotonic() - started < 10 and down.value.status == 503
    assert "no directory server answers" in down.value.log_detail
    first.start()
    assert connector.authenticate("alice", PASSWORDS["alice"]).username == "alice"


def test_the_service_connection_is_reused_across_sign_ins(directory):
    directory.authenticate("alice", PASSWORDS["alice"])
    service = directory._service
    directory.authenticate("bob", PASSWORDS["bob"])
    directory.ping()
    assert service is not None and directory._service is service and not service.closed


def accepted_connections(server: SlapdServer, mark: int) -> int:
    with open(server.log_path, "rb") as log:
        log.seek(mark)
        return log.read().count(b" ACCEPT from ")


def test_sign_ins_bind_on_a_kept_connection_and_each_bind_is_checked(slapd):
    connector = connector_for(slapd)
    connector.authenticate("alice", PASSWORDS["alice"])  # opens the service and the bind connections
    mark = slapd.log_mark()
    assert connector.authenticate("bob", PASSWORDS["bob"]).username == "bob"
    with pytest.raises(InvalidCredentials):
        connector.authenticate("alice", PASSWORDS["bob"])
    with pytest.raises(InvalidCredentials):
        connector.authenticate("nobody", PASSWORDS["alice"])
    assert connector.authenticate("alice", PASSWORDS["alice"]).username == "alice"
    binds = user_binds(slapd, mark, answered=4)  # bob, alice (wrong), a DN nobody has, alice
    assert [b.result for b in binds] == [0, INVALID_CREDENTIALS, INVALID_CREDENTIALS, 0]
    assert rdns(binds[0].dn) == rdns(USER_DNS["bob"]) and rdns(binds[3].dn) == rdns(USER_DNS["alice"])
    assert accepted_connections(slapd, mark) == 0  # all four on the kept connection


def test_no_connection_keeps_a_users_password(slapd):
    connector = connector_for(slapd)
    password = PASSWORDS["alice"]
    connector.authenticate("alice", password)
    with pytest.raises(InvalidCredentials):
        connector.authenticate("bob", password)
    connections = [item for item in gc.get_objects() if isinstance(item, Connection)]
    not_data = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
    seen, found, todo = set(), [], [connector, *connections]
    while todo:  # the connector, every ldap3 connection (the kept ones too) and what they hold
        item = todo.pop()
        if id(item) in seen or isinstance(item, not_data):
            continue
        seen.add(id(item))
        if isinstance(item, str) and password in item or isinstance(item, bytes) and password.encode() in item:
            found.append(item)
        todo.extend(gc.get_referents(item))
    assert len(connections) >= 2 and found == []


def test_a_dead_directory_gives_503_pages_while_existing_sessions_keep_working(make_app, make_slapd):
    server = make_slapd()
    app = make_app(connector="ldap", **settings_for(server))
    signed_in = app.server.test_client()
    assert sign_in(signed_in, "alice", PASSWORDS["alice"]).status_code == 302
    server.stop()
    assert signed_in.get("/").status_code == 200
    assert signed_in.get("/_dash-auth/health").status_code == 503
    page = sign_in(app.server.test_client(), "alice", PASSWORDS["alice"])
    assert page.status_code == 503 and "directory server does not answer" in page.get_data(as_text=True)
    server.start()
    assert app.server.test_client().get("/_dash-auth/health").status_code == 200
    assert sign_in(app.server.test_client(), "bob", PASSWORDS["bob"]).status_code == 302


def test_a_wrong_service_password_is_a_503_and_never_logged(make_app, slapd, caplog):
    caplog.set_level(logging.DEBUG)
    app = make_app(connector="ldap", **settings_for(slapd, ldap_bind_password="not-the-service-password"))
    response = sign_in(app.server.test_client(), "alice", PASSWORDS["alice"])
    assert response.status_code == 503
    assert "service account's bind was refused" in caplog.text
    good = make_app(connector="ldap", **settings_for(slapd))
    sign_in(good.server.test_client(), "alice", PASSWORDS["alice"])
    sign_in(good.server.test_client(), "alice", "wrong")
    assert "not-the-service-password" not in caplog.text and slapd.service_password not in caplog.text
    assert PASSWORDS["alice"] not in caplog.text


# -- configuration and the check command ---------------------------------------------------

@pytest.mark.parametrize("settings, message", [
    ({"ldap_url": "http://ldap.corp"}, "DASH_AUTH_LDAP_URL='http://ldap.corp' is not valid"),
    ({"ldap_url": "ldaps://ldap.corp/dc=corp?uid"}, "is not valid"),
    ({"ldap_url": ""}, "DASH_AUTH_LDAP_URL is not set"),
    ({"ldap_bind_dn": ""}, "DASH_AUTH_LDAP_BIND_DN"),
    ({"ldap_user_filter": "uid={username}"}, "DASH_AUTH_LDAP_USER_FILTER='uid={username}' is not valid"),
    ({"ldap_user_filter": "(&(objectClass=person)(|(uid={username})(mail={username})))"}, "USERNAME_ATTRIBUTE"),
    ({"ldap_timeout": "soon"}, "DASH_AUTH_LDAP_TIMEOUT='soon' is not valid"),
    ({"ldap_start_tls": "maybe"}, "DASH_AUTH_LDAP_START_TLS='maybe' is not valid"),
])
def test_bad_settings_stop_start_up_naming_the_variable(slapd, settings, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?").replace("|", r"\|").replace("{", r"\{").replace("}", r"\}")):
        connector_for(slapd, **settings)


def test_a_dn_template_binds_without_a_service_account(slapd):
    connector = connector_for(slapd, ldap_bind_dn="", ldap_bind_password="", ldap_user_base="",
                              ldap_user_dn_template="uid={username},ou=people,dc=example,dc=org")
    assert connector.username_attribute == "uid"
    assert sorted(connector.authenticate("alice", PASSWORDS["alice"]).groups) == ["analysts", "staff"]
    for username in ("*", "alice,ou=people", "bob", "alice+cn=x"):
        with pytest.raises(InvalidCredentials):
            connector.authenticate(username, PASSWORDS["alice"])


def test_check_reports_servers_tls_service_bind_and_a_users_groups(slapd):
    env = {"DASH_AUTH_CONNECTOR": "ldap", "DASH_AUTH_SECRET_KEY": "k" * 40, "DASH_AUTH_PRIVACY": "authorized",
           **env_for(slapd, ldap_url=f"{slapd.ldaps_url},{slapd.ldap_url}")}
    result = cli("check", "--user", "alice", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok   ldap server {slapd.ldaps_url}: answers, LDAPS, certificate verified" in result.stdout
    assert f"ok   ldap server {slapd.ldap_url}: answers, StartTLS, certificate verified" in result.stdout
    assert "service account cn=dash-app,ou=services,dc=example,dc=org: bind works" in result.stdout
    assert "groups: analysts, staff" in result.stdout or "groups: staff, analysts" in result.stdout
    assert slapd.service_password not in result.stdout + result.stderr

    broken = cli("check", "--user", "nobody", env={**env, "DASH_AUTH_LDAP_URL": slapd.ldaps_url.replace("localhost", "127.0.0.1")})
    assert broken.returncode == 1
    assert "FAIL ldap server" in broken.stdout and "certificate does not name this host" in broken.stdout
