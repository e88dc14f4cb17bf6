"""XML Signature Wrapping and re-signed responses against the SAML connector, with a real IdP.

The eight wrapping attacks are XSW1..XSW8 of Somorovsky et al., "On Breaking SAML: Be
Whoever You Want to Be" (USENIX Security 2012), in the shapes the SAML Raider Burp
extension gives them. Each one is made from a genuine response of the SimpleSAMLphp IdP
(which signs the Response and the Assertion, RSA-SHA256): the signed originals stay in the
document, byte for byte as signed (each test checks the IdP's signature still holds over
them), next to an evil copy that names ``admin`` instead of ``alice``.

The re-signing tests sign a genuinely issued assertion again with the IdP's own key after
changing one condition the signature cannot vouch for (audience, recipient, destination,
validity window) or with SHA-1: each must be refused, while the same re-signing with
nothing changed is accepted (the control).
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from copy import deepcopy
from typing import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA1, SHA256
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Constants
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from .conftest import UPDATE_GREETING
from .test_saml import NS, genuine_response, post_to_acs, refused, saml_settings, with_xml, xml_of
from .test_saml import idp  # noqa: F401  (the fixture: a private SimpleSAMLphp IdP for the in-process app)

ATTACKER = "admin"
SAMLP, DS = f"{{{NS['samlp']}}}", f"{{{NS['ds']}}}"
ELSEWHERE = "https://other-sp.example/_dash-auth/callback/saml"


# -- building blocks ------------------------------------------------------------------------------

def detach(element: etree._Element) -> etree._Element:
    """Take ``element`` out of its parent but leave the text after it where it was: the
    enveloped-signature transform drops only the Signature element, so the whitespace that
    follows it is part of what the IdP signed and must stay for the original to verify."""
    parent, previous = element.getparent(), element.getprevious()
    if element.tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    element.tail = None
    parent.remove(element)
    return element


def own_signature(element: etree._Element) -> etree._Element:
    return element.find("ds:Signature", NS)


def unsigned_copy(element: etree._Element) -> etree._Element:
    """A copy of a signed element without its enveloped signature: what that signature covers."""
    copy = deepcopy(element)
    copy.tail = None
    if own_signature(copy) is not None:
        detach(own_signature(copy))
    return copy


def make_evil(element: etree._Element, new_id: str | None = None) -> etree._Element:
    """Turn ``element`` (an Assertion or a Response holding one) into the attacker's: ``admin``."""
    for name_id in element.iterfind(".//saml:Subject/saml:NameID", NS):
        name_id.text = ATTACKER
    for value in element.iterfind(".//saml:Attribute[@Name='uid']/saml:AttributeValue", NS):
        value.text = ATTACKER
    if new_id:
        element.set("ID", new_id)
    return element


def child(parent: etree._Element, tag: str, index: int | None = None) -> etree._Element:
    """A new element in ``parent`` (using the prefix already declared there), at ``index`` or last."""
    element = etree.SubElement(parent, tag)
    if index is not None:
        parent.insert(index, element)
    return element


def still_signed(signature: etree._Element, original: etree._Element, cert_pem: str) -> None:
    """The IdP's signature verifies over ``original`` where the attack left it: the Reference names
    its ID, the digest of its exclusive c14n (own enveloped signature removed) matches, and the
    SignatureValue over SignedInfo verifies with the IdP's certificate."""
    signed_info = signature.find("ds:SignedInfo", NS)
    reference = signed_info.find("ds:Reference", NS)
    assert reference.get("URI") == "#" + original.get("ID")
    algorithms = {Constants.SHA256: hashlib.sha256, Constants.SHA1: hashlib.sha1}
    digest = algorithms[reference.find("ds:DigestMethod", NS).get("Algorithm")]
    canonical = etree.tostring(unsigned_copy(original), method="c14n", exclusive=True, with_comments=False)
    assert base64.b64encode(digest(canonical).digest()).decode() == reference.findtext("ds:DigestValue",
                                                                                        namespaces=NS).strip()
    hashes = {Constants.RSA_SHA256: SHA256(), Constants.RSA_SHA1: SHA1()}
    method = hashes[signed_info.find("ds:SignatureMethod", NS).get("Algorithm")]
    value = base64.b64decode(signature.findtext("ds:SignatureValue", namespaces=NS))
    x509.load_pem_x509_certificate(cert_pem.encode()).public_key().verify(
        value, etree.tostring(signed_info, method="c14n", exclusive=True), PKCS1v15(), method)


# -- the eight wrapping attacks -------------------------------------------------------------------
#
# Each takes the genuine Response (root) and returns the tampered one and the (signature,
# original) pairs the attack relies on still verifying. XSW1-2 wrap at the Response level and
# target the Response signature: the evil Response's own Assertion keeps its (now stale)
# signature, as SAML Raider leaves it. XSW3-8 wrap at the Assertion level, which the paper and
# SAML Raider aim at responses whose assertion only is signed: the connector accepts such
# responses (wantMessagesSigned is off), so the attacker first strips the Response signature,
# which any change to the Response would break anyway (a refusal that would test nothing).
# XSW7's samlp:Extensions goes where the protocol schema allows it (after Issuer, before
# Status; SAML Raider puts it just before the Assertion): the schema's only objection left is
# the duplicated ID, which is that variant's point.

Attack = Callable[[etree._Element], tuple[etree._Element, list[tuple[etree._Element, etree._Element]]]]


def xsw1(response):
    # XSW1: evil Response (new ID) keeps the Response Signature, the original Response enveloped inside it.
    original = unsigned_copy(response)
    signature = own_signature(response)
    make_evil(response, "_evil_response_ID")
    signature.append(original)
    return response, [(signature, original), (own_signature(original.find("saml:Assertion", NS)),
                                              original.find("saml:Assertion", NS))]


def xsw2(response):
    # XSW2: evil Response (new ID) keeps the Response Signature, the original Response just before it.
    original = unsigned_copy(response)
    signature = own_signature(response)
    make_evil(response, "_evil_response_ID")
    signature.addprevious(original)
    return response, [(signature, original), (own_signature(original.find("saml:Assertion", NS)),
                                              original.find("saml:Assertion", NS))]


def strip_response_signature(response):
    detach(own_signature(response))
    return response.find("saml:Assertion", NS)


def xsw3(response):
    # XSW3: evil Assertion (new ID, unsigned) inserted before the original signed Assertion.
    assertion = strip_response_signature(response)
    evil = make_evil(unsigned_copy(assertion), "_evil_assertion_ID")
    assertion.addprevious(evil)
    return response, [(own_signature(assertion), assertion)]


def xsw4(response):
    # XSW4: evil Assertion (new ID, unsigned) replaces the original, which becomes its last child.
    assertion = strip_response_signature(response)
    evil = make_evil(unsigned_copy(assertion), "_evil_assertion_ID")
    assertion.addnext(evil)
    evil.append(assertion)
    return response, [(own_signature(assertion), assertion)]


def xsw5(response):
    # XSW5: evil Assertion (new ID) keeps the Signature in place, the original (unsigned) appended to the Response.
    assertion = strip_response_signature(response)
    original = unsigned_copy(assertion)
    make_evil(assertion, "_evil_assertion_ID")
    response.append(original)
    return response, [(own_signature(assertion), original)]


def xsw6(response):
    # XSW6: evil Assertion (new ID) keeps the Signature in place, the original (unsigned) enveloped in it.
    assertion = strip_response_signature(response)
    original = unsigned_copy(assertion)
    make_evil(assertion, "_evil_assertion_ID")
    own_signature(assertion).append(original)
    return response, [(own_signature(assertion), original)]


def xsw7(response):
    # XSW7: evil Assertion (same ID, unsigned) in samlp:Extensions (lax schema) before the original, in place.
    assertion = strip_response_signature(response)
    extensions = child(response, SAMLP + "Extensions", index=response.index(response.find("samlp:Status", NS)))
    extensions.append(make_evil(unsigned_copy(assertion)))
    return response, [(own_signature(assertion), assertion)]


def xsw8(response):
    # XSW8: evil Assertion (same ID) keeps the Signature in place, the original (unsigned) in a ds:Object in it.
    assertion = strip_response_signature(response)
    original = unsigned_copy(assertion)
    make_evil(assertion)
    child(own_signature(assertion), DS + "Object").append(original)
    return response, [(own_signature(assertion), original)]


ATTACKS: dict[str, Attack] = {"XSW1": xsw1, "XSW2": xsw2, "XSW3": xsw3, "XSW4": xsw4, "XSW5": xsw5,
                              "XSW6": xsw6, "XSW7": xsw7, "XSW8": xsw8}


# -- checks ---------------------------------------------------------------------------------------

@pytest.fixture
def audit_lines(caplog) -> Callable[[], list[dict]]:
    caplog.set_level(logging.INFO, logger="dash_enterprise_auth.audit")

    def lines() -> list[dict]:
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == "dash_enterprise_auth.audit"]

    return lines


def refused_and_nobody_signed_in(browser, answer, audit_lines) -> None:
    refused(browser, answer)
    greeting = browser.post("/_dash-update-component", json=UPDATE_GREETING).get_data(as_text=True)
    assert f"Hello {ATTACKER}" not in greeting and "Hello alice" not in greeting
    events = audit_lines()
    assert not [e for e in events if e["event"] == "sign_in"], events
    failed = [e for e in events if e["event"] == "sign_in_failed"]
    assert failed and failed[-1].get("reason") != "connector error", events  # refused, not crashed


@pytest.mark.parametrize("variant", list(ATTACKS))
def test_signature_wrapping_is_refused(make_app, idp, audit_lines, variant):
    app = make_app(**saml_settings(idp))
    browser, fields = genuine_response(app)
    tampered, originals = ATTACKS[variant](xml_of(fields))
    # A faithful attack: the IdP's signatures still hold over the originals kept in the document,
    # and the evil copy names the attacker.
    for signature, original in originals:
        still_signed(signature, original, idp.signing_cert_pem)
    names = tampered.xpath("//saml:Subject/saml:NameID/text()", namespaces=NS)
    assert ATTACKER in names and "alice" in names
    refused_and_nobody_signed_in(browser, post_to_acs(browser, with_xml(fields, tampered)), audit_lines)


# -- re-signed with the IdP's own key -------------------------------------------------------------

def re_signed(response: etree._Element, idp, sign_algorithm: str = Constants.RSA_SHA256,
              digest_algorithm: str = Constants.SHA256) -> etree._Element:
    """The Response without its signature, its Assertion signed again (only) with the IdP's key."""
    for signature in response.findall(".//ds:Signature", NS):
        detach(signature)
    assertion = response.find("saml:Assertion", NS)
    signed = etree.fromstring(OneLogin_Saml2_Utils.add_sign(
        etree.tostring(assertion), idp.signing_key_pem, idp.signing_cert_pem,
        sign_algorithm=sign_algorithm, digest_algorithm=digest_algorithm))
    signed.tail = assertion.tail
    response.replace(assertion, signed)
    still_signed(own_signature(signed), signed, idp.signing_cert_pem)
    return response


def instant(offset: float) -> str:
    """A SAML timestamp ``offset`` seconds from now."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


BEYOND_SKEW = 120  # seconds: twice the connector's 60 s clock skew, within python3-saml's own 300 s default


def wrong_audience(response):
    response.find(".//saml:Audience", NS).text = "https://other-sp.example/_dash-auth/saml/metadata"


def wrong_recipient(response):
    response.find(".//saml:SubjectConfirmationData", NS).set("Recipient", ELSEWHERE)


def wrong_destination(response):
    response.set("Destination", ELSEWHERE)


def conditions_expired(response):
    conditions = response.find(".//saml:Conditions", NS)
    conditions.set("NotBefore", instant(-600))
    conditions.set("NotOnOrAfter", instant(-BEYOND_SKEW))


def subject_confirmation_expired(response):
    response.find(".//saml:SubjectConfirmationData", NS).set("NotOnOrAfter", instant(-BEYOND_SKEW))


def not_yet_valid(response):
    response.find(".//saml:Conditions", NS).set("NotBefore", instant(BEYOND_SKEW))


CHANGES = {"wrong Audience": wrong_audience, "wrong Recipient": wrong_recipient,
           "wrong Destination": wrong_destination, "Conditions NotOnOrAfter past": conditions_expired,
           "SubjectConfirmationData NotOnOrAfter past": subject_confirmation_expired,
           "Conditions NotBefore future": not_yet_valid}


def test_re_signing_with_the_idps_key_and_nothing_changed_is_accepted(make_app, idp):
    """The control: the refusals below come from the changed condition, not from re-signing."""
    app = make_app(**saml_settings(idp))
    browser, fields = genuine_response(app)
    answer = post_to_acs(browser, with_xml(fields, re_signed(xml_of(fields), idp)))
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    greeting = browser.post("/_dash-update-component", json=UPDATE_GREETING)
    assert greeting.status_code == 200 and "Hello alice" in greeting.get_data(as_text=True)


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_condition_changed_and_re_signed_with_the_idps_key_is_refused(make_app, idp, audit_lines, change):
    app = make_app(**saml_settings(idp))
    browser, fields = genuine_response(app)
    response = xml_of(fields)
    CHANGES[change](response)
    answer = post_to_acs(browser, with_xml(fields, re_signed(response, idp)))
    refused_and_nobody_signed_in(browser, answer, audit_lines)


@pytest.mark.parametrize("sign_algorithm, digest_algorithm", [
    (Constants.RSA_SHA1, Constants.SHA1), (Constants.RSA_SHA1, Constants.SHA256),
    (Constants.RSA_SHA256, Constants.SHA1),
], ids=["rsa-sha1+sha1", "rsa-sha1+sha256", "rsa-sha256+sha1"])
def test_a_sha1_signature_by_the_idps_key_is_refused(make_app, idp, audit_lines, sign_algorithm, digest_algorithm):
    app = make_app(**saml_settings(idp))
    browser, fields = genuine_response(app)
    response = re_signed(xml_of(fields), idp, sign_algorithm, digest_algorithm)
    assert response.find(".//ds:SignatureMethod", NS).get("Algorithm") == sign_algorithm
    assert response.find(".//ds:DigestMethod", NS).get("Algorithm") == digest_algorithm
    refused_and_nobody_signed_in(browser, post_to_acs(browser, with_xml(fields, response)), audit_lines)
