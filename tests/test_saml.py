"""The SAML connector against a real IdP (SimpleSAMLphp) started by the fixtures.

Malicious responses are made from a genuine signed response of that IdP:
tampered, stripped of signatures, or re-signed (with a foreign key, or with
the IdP's own key after changing a condition the signature cannot vouch for).
"""
from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from .conftest import SAML_SP_ACS_URL as ACS
from .conftest import SAML_SP_ENTITY_ID as SP_ENTITY_ID
from .conftest import IN_PROCESS_APP, UPDATE_GREETING
from .servers.saml_idp import auto_post_form, submit_login

HTML = {"Accept": "text/html", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}
NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
      "ds": "http://www.w3.org/2000/09/xmldsig#"}


@pytest.fixture
def idp(make_saml_idp):
    return make_saml_idp(sp_entity_id=SP_ENTITY_ID, sp_acs_url=ACS)


def saml_settings(idp, **extra: Any) -> dict[str, Any]:
    return {"connector": "saml", "saml_idp_metadata_url": idp.metadata_url, "allowed_groups": ["analysts"], **extra}


def at_the_idp(app, username: str = "alice", password: str = "alice-password",
               next_url: str = "/") -> tuple[Any, requests.Session, dict[str, str]]:
    """A fresh sign-in at the IdP: the app's test client, the browser's session at the IdP, and the
    form the IdP's page would POST to the ACS."""
    browser = app.server.test_client()
    started = browser.get("/_dash-auth/login", query_string={"next": next_url}, headers=HTML)
    assert started.status_code == 302, started.get_data(as_text=True)[:300]
    http = requests.Session()
    action, fields = auto_post_form(submit_login(http, http.get(started.headers["Location"]), username, password))
    assert action == ACS and "SAMLResponse" in fields and "RelayState" in fields
    return browser, http, fields


def genuine_response(app, username: str = "alice", password: str = "alice-password") -> tuple[Any, dict[str, str]]:
    """The app's test client and a genuine signed response for it, ready to post to the ACS."""
    browser, _, fields = at_the_idp(app, username, password)
    return browser, fields


def post_to_acs(browser, fields: dict[str, str]):
    # A cross-site POST from the IdP's page: no Sec-Fetch-Site: same-origin, no cookies of ours needed.
    return browser.post("/_dash-auth/callback/saml", data=fields,
                        headers={"Accept": "text/html", "Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "cross-site"})


def has_session(browser) -> bool:
    return browser.post("/_dash-update-component", json=UPDATE_GREETING).status_code == 200


def refused(browser, response) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code in (400, 401), (response.status_code, body[:300])
    assert "Traceback" not in body and not has_session(browser)


def xml_of(fields: dict[str, str]) -> etree._Element:
    return etree.fromstring(base64.b64decode(fields["SAMLResponse"]))


def with_xml(fields: dict[str, str], root: etree._Element | bytes) -> dict[str, str]:
    data = root if isinstance(root, bytes) else etree.tostring(root)
    return {**fields, "SAMLResponse": base64.b64encode(data).decode()}


# -- the round trip ----------------------------------------------------------------------------

def test_an_analyst_signs_in_at_the_idp_and_the_app_knows_her(make_app, idp):
    app = make_app(**saml_settings(idp))
    browser, fields = genuine_response(app)
    answer = post_to_acs(browser, fields)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    response = browser.post("/_dash-update-component", json=UPDATE_GREETING)
    assert response.status_code == 200 and "Hello alice" in response.get_data(as_text=True)


@pytest.mark.parametrize("next_url, lands_on", [("/reports?q=1", "/reports?q=1"), ("https://evil.example/", "/"),
                                                ("//evil.example/", "/")])
def test_next_survives_the_round_trip_but_never_leaves_the_app(make_app, idp, next_url, lands_on):
    app = make_app(**saml_settings(idp))
    browser, _, fields = at_the_idp(app, next_url=next_url)
    answer = post_to_acs(browser, fields)
    assert answer.status_code == 302 and answer.headers["Location"] == lands_on


def test_someone_outside_the_allowed_groups_is_refused(make_app, idp):
    app = make_app(**saml_settings(idp))
    browser, fields = genuine_response(app, "bob", "bob-password")
    assert post_to_acs(browser, fields).status_code == 302
    assert browser.get("/", headers=HTML).status_code == 403


def test_the_authn_request_is_signed_when_the_app_has_a_key(make_app, make_saml_idp, tmp_path):
    key_pem, cert_pem = rsa_pair("dash app")
    (tmp_path / "sp.crt").write_text(cert_pem)
    (tmp_path / "sp.key").write_text(key_pem)
    idp = make_saml_idp(sp_entity_id=SP_ENTITY_ID, sp_acs_url=ACS, sp_cert_pem=cert_pem)
    app = make_app(**saml_settings(idp, saml_sp_cert_file=str(tmp_path / "sp.crt"),
                                   saml_sp_key_file=str(tmp_path / "sp.key")))
    location = app.server.test_client().get("/_dash-auth/login?next=/", headers=HTML).headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] and query["Signature"]
    browser, fields = genuine_response(app)  # SimpleSAMLphp checks the signature (validate.authnrequest)
    assert post_to_acs(browser, fields).status_code == 302
    metadata = app.server.test_client().get("/_dash-auth/saml/metadata")
    assert metadata.status_code == 200 and b'AuthnRequestsSigned="true"' in metadata.data


def test_the_sp_metadata_names_the_entity_and_the_acs(make_app, idp):
    app = make_app(**saml_settings(idp))
    metadata = app.server.test_client().get("/_dash-auth/saml/metadata")
    assert metadata.status_code == 200 and metadata.content_type == "application/samlmetadata+xml"
    root = etree.fromstring(metadata.data)
    assert root.get("entityID") == SP_ENTITY_ID
    acs = root.find(".//{urn:oasis:names:tc:SAML:2.0:metadata}AssertionConsumerService")
    assert acs.get("Location") == ACS and acs.get("Binding").endswith("HTTP-POST")


# -- attacks: a refusal page, never a session or a 500 -------------------------------------------

def test_a_replayed_response_is_refused_with_the_same_or_a_fresh_relaystate(make_app, idp):
    app = make_app(**saml_settings(idp))
    browser, fields = genuine_response(app)
    assert post_to_acs(browser, fields).status_code == 302
    attacker = app.server.test_client()
    refused(attacker, post_to_acs(attacker, fields))  # the RelayState was used
    fresh = parse_qs(urlsplit(attacker.get("/_dash-auth/login?next=/", headers=HTML).headers["Location"]).query)
    refused(attacker, post_to_acs(attacker, {**fields, "RelayState": fresh["RelayState"][0]}))  # InResponseTo


def test_a_response_to_a_request_this_app_never_made_is_refused(make_app, idp):
    app = make_app(**saml_settings(idp))
    _, fields = genuine_response(app)
    other_app = make_app(**saml_settings(idp))  # same IdP, same SP entity, its own state
    browser = other_app.server.test_client()
    state = parse_qs(urlsplit(browser.get("/_dash-auth/login?next=/", headers=HTML).headers["Location"]).query)
    refused(browser, post_to_acs(browser, {**fields, "RelayState": state["RelayState"][0]}))


@pytest.mark.parametrize("change", ["NameID", "attribute", "unsigned", "foreign key"])
def test_a_tampered_or_unsigned_or_foreign_signed_response_is_refused(make_app, idp, change, tmp_path):
    app = make_app(**saml_settings(idp))
    browser, fields = genuine_response(app)
    root = xml_of(fields)
    if change == "NameID":
        name_id = root.find(".//saml:Subject/saml:NameID", NS)
        name_id.text = "bob"
    elif change == "attribute":
        for value in root.iterfind(".//saml:AttributeValue", NS):
            if value.text == "staff":
                value.text = "admins"
    elif change == "unsigned":
        for signature in root.iterfind(".//ds:Signature", NS):
            signature.getparent().remove(signature)
    else:
        rsa_key, cert_pem = rsa_pair("attacker")
        for signature in root.iterfind(".//ds:Signature", NS):
            signature.getparent().remove(signature)
        assertion = root.find(".//saml:Assertion", NS)
        signed = OneLogin_Saml2_Utils.add_sign(etree.tostring(assertion), rsa_key, cert_pem)
        root.replace(assertion, etree.fromstring(signed))
    refused(browser, post_to_acs(browser, with_xml(fields, root)))


def test_a_comment_inside_the_nameid_does_not_cut_the_name(make_app, idp):
    """CVE-2017-11427: comments are not signed (exclusive c14n drops them), so the signature
    still holds; a parser that reads the first text node would see 'ali'."""
    app = make_app(**saml_settings(idp, privacy="authorized"))
    browser, fields = genuine_response(app)
    raw = base64.b64decode(fields["SAMLResponse"])
    commented = re.sub(rb"(<saml:NameID[^>]*>)(ali)(ce</saml:NameID>)", rb"\1\2<!-- -->\3", raw, count=1)
    assert commented != raw
    answer = post_to_acs(browser, with_xml(fields, commented))
    if answer.status_code == 302:
        response = browser.post("/_dash-update-component", json=UPDATE_GREETING)
        assert "Hello alice" in response.get_data(as_text=True)
    else:
        refused(browser, answer)


@pytest.mark.parametrize("payload", [
    "not base64 at all!!", base64.b64encode(b"<samlp:Response").decode(), "",
    base64.b64encode(b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;'
                     b'&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><r>&c;&c;&c;</r>').decode(),
    base64.b64encode(b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
    .decode(),
])
def test_garbage_truncated_and_dtd_payloads_are_refused(make_app, idp, payload):
    app = make_app(**saml_settings(idp))
    browser, fields = genuine_response(app)
    answer = post_to_acs(browser, {**fields, "SAMLResponse": payload})
    refused(browser, answer)
    assert b"root:" not in answer.data


def rsa_pair(common_name: str) -> tuple[str, str]:
    """A private key and self-signed certificate (PEM), RSA as SAML signatures use."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            cert.public_bytes(serialization.Encoding.PEM).decode())


def idp_initiated(app, idp) -> tuple[Any, dict[str, str]]:
    browser = app.server.test_client()
    http = requests.Session()
    posted = submit_login(http, http.get(idp.idp_initiated_url()), "alice", "alice-password")
    action, fields = auto_post_form(posted)
    assert action == ACS and "SAMLResponse" in fields
    return browser, fields


def test_idp_initiated_sign_in_is_refused_unless_turned_on(make_app, idp):
    app = make_app(**saml_settings(idp))
    browser, fields = idp_initiated(app, idp)
    refused(browser, post_to_acs(browser, fields))

    allowing = make_app(**saml_settings(idp, saml_allow_idp_initiated=True))
    browser, fields = idp_initiated(allowing, idp)
    assert post_to_acs(browser, fields).status_code == 302 and has_session(browser)
    replayer = allowing.server.test_client()
    refused(replayer, post_to_acs(replayer, fields))  # the assertion id is remembered: no second use


def test_a_solicited_response_cannot_pass_as_an_unsolicited_one(make_app, idp):
    app = make_app(**saml_settings(idp, saml_allow_idp_initiated=True))
    browser, fields = genuine_response(app)  # an answer to this app's AuthnRequest, with InResponseTo
    stolen = {k: v for k, v in fields.items() if k != "RelayState"}
    attacker = app.server.test_client()
    refused(attacker, post_to_acs(attacker, stolen))


def at_the_idp_until_back(http: requests.Session, url: str) -> str:
    """Follow the IdP's own redirects; the first Location that points at the app, unfollowed."""
    for _ in range(10):
        if url.startswith(IN_PROCESS_APP):
            return url
        answer = http.get(url, allow_redirects=False)
        assert answer.is_redirect, answer.text[:300]
        url = answer.headers["Location"]
    raise AssertionError("too many redirects at the IdP")


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def test_logout_ends_the_app_session_and_the_idps(make_app, idp):
    app = make_app(**saml_settings(idp))
    browser, http, fields = at_the_idp(app)
    assert post_to_acs(browser, fields).status_code == 302 and has_session(browser)

    out = browser.get("/_dash-auth/logout", headers=HTML)
    assert out.status_code == 302 and out.headers["Location"].startswith(idp.slo_url) and not has_session(browser)
    back = at_the_idp_until_back(http, out.headers["Location"])
    assert urlsplit(back).path == "/_dash-auth/saml/sls" and "SAMLResponse" in back
    done = browser.get(local(back), headers=HTML)
    assert done.status_code == 302 and done.headers["Location"] == "/_dash-auth/signed-out"
    again = http.get(browser.get("/_dash-auth/login?next=/", headers=HTML).headers["Location"])
    assert 'name="password"' in again.text  # the IdP's session ended too


@pytest.mark.parametrize("username_attribute", [None, "mail"])
def test_idp_initiated_logout_ends_the_sessions_here(make_app, idp, username_attribute):
    """Sessions are found by the NameID the IdP names, also when the username comes from an attribute."""
    app = make_app(**saml_settings(idp, saml_username_attribute=username_attribute))
    browser, http, fields = at_the_idp(app)
    assert post_to_acs(browser, fields).status_code == 302 and has_session(browser)

    request_to_us = at_the_idp_until_back(http, f"{idp.slo_url}?ReturnTo=http://127.0.0.1:9/bye")
    assert urlsplit(request_to_us).path == "/_dash-auth/saml/sls" and "SAMLRequest" in request_to_us
    answer = app.server.test_client().get(local(request_to_us))  # the IdP's front channel: no cookie of ours
    assert answer.status_code == 302 and answer.headers["Location"].startswith(idp.url)
    assert "SAMLResponse" in answer.headers["Location"]
    assert not has_session(browser)


def test_idp_initiated_logout_finds_the_session_by_nameid_when_the_username_differs_from_it(make_app,
                                                                                              make_saml_idp):
    """The IdP's NameID is alice's mail, the app's username her uid: the LogoutRequest names only the
    NameID (and the SessionIndex), and her session still ends."""
    mail_idp = make_saml_idp(sp_entity_id=SP_ENTITY_ID, sp_acs_url=ACS, name_id_attribute="mail")
    app = make_app(**saml_settings(mail_idp, saml_username_attribute="uid"))
    browser, http, fields = at_the_idp(app)
    name_id = xml_of(fields).find(".//saml:Assertion/saml:Subject/saml:NameID", NS).text
    assert name_id == "alice@example.org"
    assert post_to_acs(browser, fields).status_code == 302
    greeting = browser.post("/_dash-update-component", json=UPDATE_GREETING).get_json()
    assert greeting["response"]["greeting"]["children"] == "Hello alice"  # the uid, not the NameID

    request_to_us = at_the_idp_until_back(http, f"{mail_idp.slo_url}?ReturnTo=http://127.0.0.1:9/bye")
    logout_request = OneLogin_Saml2_Utils.decode_base64_and_inflate(parse_qs(urlsplit(request_to_us).query)
                                                                    ["SAMLRequest"][0])
    assert b"alice@example.org</saml:NameID>" in logout_request and b">alice<" not in logout_request
    answer = app.server.test_client().get(local(request_to_us))  # the IdP's front channel: no cookie of ours
    assert answer.status_code == 302 and "SAMLResponse" in answer.headers["Location"]
    assert not has_session(browser)


def test_idp_initiated_logout_of_one_idp_session_leaves_the_persons_other_sessions(make_app, idp):
    app = make_app(**saml_settings(idp))
    first, first_http, fields = at_the_idp(app)
    assert post_to_acs(first, fields).status_code == 302
    second, _, fields = at_the_idp(app)  # another browser, another session at the IdP (SessionIndex)
    assert post_to_acs(second, fields).status_code == 302

    request_to_us = at_the_idp_until_back(first_http, f"{idp.slo_url}?ReturnTo=http://127.0.0.1:9/bye")
    assert app.server.test_client().get(local(request_to_us)).status_code == 302
    assert not has_session(first) and has_session(second)


def test_a_forged_logout_request_ends_nothing(make_app, idp):
    app = make_app(**saml_settings(idp))
    browser, fields = genuine_response(app)
    assert post_to_acs(browser, fields).status_code == 302
    answer = app.server.test_client().get("/_dash-auth/saml/sls?SAMLRequest=bm90IGEgcmVxdWVzdA%3D%3D")
    assert answer.status_code in (400, 401) and has_session(browser)


def test_check_reports_metadata_certificate_skew_and_the_sp_metadata_url(idp):
    from .test_cli import cli

    env = {"DASH_AUTH_CONNECTOR": "saml", "DASH_AUTH_SECRET_KEY": "k" * 40, "DASH_AUTH_PRIVACY": "authorized",
           "DASH_AUTH_SAML_IDP_METADATA_URL": idp.metadata_url}
    result = cli("check", env=env)
    assert "ok   saml IdP" in result.stdout and "metadata parsed" in result.stdout
    # the fixture's IdP certificate lives 30 days: near expiry, which check must flag
    assert re.search(r"FAIL saml IdP certificate .*: valid until \d{4}-\d\d-\d\d \((29|30) days\)", result.stdout)
    assert result.returncode == 1
    assert "ok   saml clock skew to the IdP" in result.stdout and "_dash-auth/saml/metadata" in result.stdout
    down = cli("check", env={**env, "DASH_AUTH_SAML_IDP_METADATA_URL": "http://127.0.0.1:9/metadata"})
    assert down.returncode == 1 and "FAIL saml IdP metadata" in down.stdout


@pytest.mark.parametrize("breaks", ["removed", "not XML"])
def test_a_metadata_file_that_disappears_later_gives_503_pages_not_500(make_app, idp, tmp_path, monkeypatch, breaks):
    # At start-up either stops the app with a ConfigurationError naming the variable; later, a 503.
    from dash_enterprise_auth.connectors import saml

    metadata = tmp_path / "idp.xml"
    metadata.write_text(idp.metadata_xml())
    app = make_app(connector="saml", saml_idp_metadata_file=str(metadata), allowed_groups=["analysts"])
    if breaks == "removed":
        metadata.unlink()
    else:
        metadata.write_text("not xml")
    monkeypatch.setattr(saml, "METADATA_TTL", 0.0)  # make the next request read the file again
    for path in ("/_dash-auth/login?next=/", "/_dash-auth/saml/metadata"):
        answer = app.server.test_client().get(path, headers=HTML)
        assert answer.status_code == 503 and "Traceback" not in answer.get_data(as_text=True)
