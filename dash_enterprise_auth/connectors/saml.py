"""SAML 2.0 sign-in (Okta, Entra ID, ADFS, Ping, Keycloak, Shibboleth): the app as a Service Provider.

python3-saml (OneLogin) does the protocol and the XML signature checks, always
in ``strict`` mode, with signed assertions required and deprecated algorithms
(SHA-1) refused. Around it, what python3-saml leaves to the caller:

* the AuthnRequest id is kept server-side with the core's single-use state
  (RelayState), and the Response's ``InResponseTo`` must name it, because
  the IdP's POST to the ACS is cross-site and carries no SameSite cookie;
* each assertion id is remembered until its ``NotOnOrAfter`` (the core's
  replay cache in the session store), so a captured response cannot be
  posted again, on this worker or another;
* unsolicited (IdP-initiated) responses are refused unless allowed;
* attribute names for username, email, display name and groups are
  configurable, with defaults that fit the common IdPs.
"""
from __future__ import annotations

import email.utils
import threading
import time
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests
import xmlsec
from lxml import etree
from onelogin.saml2 import xml_utils
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Constants
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from ..blocking import compute
from ..errors import ConfigurationError, ProviderRefused, ProviderUnavailable
from ..settings import Option, Settings, boolean, http_url, seconds, text
from .base import Finding, Identity, ProviderRequest, Redirect, RedirectConnector, logout_id
from .http import Probe, describe

# A response up to this many characters is validated on an ASGI server's event loop (see
# blocking.compute: ~8 ms at most); a larger one, rare from a real IdP, on the sign-in's thread.
MAX_RESPONSE_ON_LOOP = 256 * 1024

METADATA_URL = Option("DASH_AUTH_SAML_IDP_METADATA_URL", http_url, help="the IdP's metadata URL")
METADATA_FILE = Option("DASH_AUTH_SAML_IDP_METADATA_FILE", text, help="or the IdP's metadata XML file")
SP_ENTITY_ID = Option("DASH_AUTH_SAML_SP_ENTITY_ID", text,
                      help="default: the URL of /_dash-auth/saml/metadata")
SP_CERT_FILE = Option("DASH_AUTH_SAML_SP_CERT_FILE", text, help="PEM certificate of the app (signs AuthnRequests)")
SP_KEY_FILE = Option("DASH_AUTH_SAML_SP_KEY_FILE", text, help="its private key")
USERNAME_ATTRIBUTE = Option("DASH_AUTH_SAML_USERNAME_ATTRIBUTE", text, help="default: the NameID")
EMAIL_ATTRIBUTE = Option("DASH_AUTH_SAML_EMAIL_ATTRIBUTE", text, "mail")
NAME_ATTRIBUTE = Option("DASH_AUTH_SAML_NAME_ATTRIBUTE", text, "displayName")
GROUPS_ATTRIBUTE = Option("DASH_AUTH_SAML_GROUPS_ATTRIBUTE", text, "groups")
NAMEID_FORMAT = Option("DASH_AUTH_SAML_NAMEID_FORMAT", text, "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
                       help="NameID format the app asks for, e.g. ...:1.1:nameid-format:emailAddress")
CLOCK_SKEW = Option("DASH_AUTH_SAML_CLOCK_SKEW", seconds, 60)
TIMEOUT = Option("DASH_AUTH_SAML_TIMEOUT", seconds, 5)
ALLOW_UNSOLICITED = Option("DASH_AUTH_SAML_ALLOW_IDP_INITIATED", boolean, False,
                           help="accept IdP-initiated sign-ins (responses no AuthnRequest of the app asked for)")

METADATA_TTL = 3600.0
# Well-known URIs IdPs use for the same attributes, tried after the configured name.
ALIASES = {
    "mail": ("email", "urn:oid:0.9.2342.19200300.100.1.3",
             "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"),
    "displayName": ("name", "urn:oid:2.16.840.1.113730.3.1.241",
                    "http://schemas.microsoft.com/identity/claims/displayname"),
    "groups": ("memberOf", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
               "http://schemas.xmlsoap.org/claims/Group"),
}


class SamlConnector(RedirectConnector):
    name = "saml"
    display_name = "SAML single sign-on"
    state_field = "RelayState"
    binds_browser = False  # the IdP's cross-site POST carries no SameSite cookie; InResponseTo binds it
    options = (METADATA_URL, METADATA_FILE, SP_ENTITY_ID, SP_CERT_FILE, SP_KEY_FILE, USERNAME_ATTRIBUTE,
               EMAIL_ATTRIBUTE, NAME_ATTRIBUTE, GROUPS_ATTRIBUTE, NAMEID_FORMAT, CLOCK_SKEW, TIMEOUT, ALLOW_UNSOLICITED)

    def __init__(self, *, metadata_url: str | None = None, metadata_file: str | None = None,
                 sp_entity_id: str | None = None, sp_cert: str | None = None, sp_key: str | None = None,
                 username_attribute: str | None = None, email_attribute: str = "mail",
                 name_attribute: str = "displayName", groups_attribute: str = "groups", clock_skew: int = 60,
                 timeout: int = 5, allow_idp_initiated: bool = False,
                 nameid_format: str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified") -> None:
        if bool(metadata_url) == bool(metadata_file):
            raise ConfigurationError("set one of DASH_AUTH_SAML_IDP_METADATA_URL and DASH_AUTH_SAML_IDP_METADATA_FILE")
        if bool(sp_cert) != bool(sp_key):
            raise ConfigurationError("DASH_AUTH_SAML_SP_CERT_FILE and DASH_AUTH_SAML_SP_KEY_FILE go together")
        if sp_cert and sp_key:
            _check_sp_credentials(sp_cert, sp_key)
        self.metadata_url = metadata_url
        self.metadata_file = metadata_file
        self.sp_entity_id = sp_entity_id
        self.sp_cert, self.sp_key = sp_cert or "", sp_key or ""
        self.username_attribute = username_attribute
        self.email_attribute, self.name_attribute = email_attribute, name_attribute
        self.groups_attribute = groups_attribute
        self.clock_skew = clock_skew
        # python3-saml reads its allowed drift from this class attribute (300 s by default) when it
        # checks NotBefore/NotOnOrAfter; there is no per-settings value, so the process gets ours.
        Constants.ALLOWED_CLOCK_DRIFT = clock_skew
        self.timeout = timeout
        self.allow_idp_initiated = allow_idp_initiated
        self.nameid_format = nameid_format
        self._lock = threading.Lock()
        self._idp: tuple[float, dict[str, Any]] | None = None
        self._probe = Probe(lambda: self.idp_settings(fresh=True))
        if metadata_file:
            try:
                self.idp_settings()
            except ProviderUnavailable as exc:  # at start-up a missing or broken file is a setting to fix
                raise ConfigurationError(exc.log_detail) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> "SamlConnector":
        cert_file, key_file = settings.get(SP_CERT_FILE), settings.get(SP_KEY_FILE)
        return cls(metadata_url=settings.get(METADATA_URL), metadata_file=settings.get(METADATA_FILE),
                   sp_entity_id=settings.get(SP_ENTITY_ID), sp_cert=_read(cert_file, SP_CERT_FILE),
                   sp_key=_read(key_file, SP_KEY_FILE), username_attribute=settings.get(USERNAME_ATTRIBUTE),
                   email_attribute=settings.get(EMAIL_ATTRIBUTE), name_attribute=settings.get(NAME_ATTRIBUTE),
                   groups_attribute=settings.get(GROUPS_ATTRIBUTE), clock_skew=settings.get(CLOCK_SKEW),
                   timeout=settings.get(TIMEOUT), allow_idp_initiated=settings.get(ALLOW_UNSOLICITED),
                   nameid_format=settings.get(NAMEID_FORMAT))

    def accepts_unsolicited(self) -> bool:
        return self.allow_idp_initiated

    # -- settings for python3-saml ----------------------------------------------------------

    def idp_settings(self, fresh: bool = False) -> dict[str, Any]:
        """The IdP part of python3-saml's settings, from its metadata (cached for an hour;
        ``fresh``: read now)."""
        with self._lock:
            if not fresh and self._idp and time.monotonic() - self._idp[0] < METADATA_TTL:
                return self._idp[1]
        # Later failures (a file broken or removed meanwhile, the URL down) are 503s: the
        # constructor turns those of a file at start-up into a ConfigurationError naming it.
        if self.metadata_file:
            source = f"DASH_AUTH_SAML_IDP_METADATA_FILE={self.metadata_file!r}"
            try:
                xml = Path(self.metadata_file).read_text()
            except OSError as exc:
                raise ProviderUnavailable(log_detail=f"{source} cannot be read: {exc.strerror}") from None
        else:
            source = f"IdP metadata {self.metadata_url}"
            try:
                response = requests.get(self.metadata_url, timeout=self.timeout)
                response.raise_for_status()
                xml = response.text
            except requests.RequestException as exc:
                raise ProviderUnavailable(log_detail=f"{source}: {describe(exc)}") from None
        try:
            idp = OneLogin_Saml2_IdPMetadataParser.parse(xml)["idp"]
        except Exception as exc:  # lxml, python3-saml: any parse failure means unusable metadata
            raise ProviderUnavailable(log_detail=f"{source} cannot be parsed as SAML metadata: {exc}") from None
        if not idp.get("singleSignOnService", {}).get("url") or not (idp.get("x509cert") or idp.get("x509certMulti")):
            raise ProviderUnavailable(log_detail=f"{source} has no SSO endpoint or no signing certificate")
        with self._lock:
            self._idp = (time.monotonic(), idp)
        return idp

    def saml_settings(self, callback_url: str, idp: dict[str, Any] | None = None) -> OneLogin_Saml2_Settings:
        """python3-saml's settings; ``idp``: the IdP part when already read (see ``idp_settings``)."""
        base = callback_url.rsplit("/callback/", 1)[0]
        signed = bool(self.sp_key)
        return OneLogin_Saml2_Settings({
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": self.sp_entity_id or f"{base}/saml/metadata",
                "assertionConsumerService": {"url": callback_url, "binding": Constants.BINDING_HTTP_POST},
                "singleLogoutService": {"url": f"{base}/saml/sls", "binding": Constants.BINDING_HTTP_REDIRECT},
                "NameIDFormat": self.nameid_format,
                "x509cert": self.sp_cert,
                "privateKey": self.sp_key,
            },
            "idp": idp or self.idp_settings(),
            "security": {
                "authnRequestsSigned": signed,
                "logoutRequestSigned": signed,
                "logoutResponseSigned": signed,
                "wantAssertionsSigned": True,
                "wantMessagesSigned": False,  # many IdPs sign only the assertion; that is what is required
                "wantNameId": True,
                "requestedAuthnContext": False,
                "rejectDeprecatedAlgorithm": True,
                "signatureAlgorithm": Constants.RSA_SHA256,
                "digestAlgorithm": Constants.SHA256,
                "wantXMLValidation": True,
            },
        }, sp_validation_only=False)

    def metadata_document(self, callback_url: str) -> str:
        settings = self.saml_settings(callback_url)
        xml = settings.get_sp_metadata()
        errors = settings.validate_metadata(xml)
        if errors:
            raise ProviderUnavailable(log_detail=f"SP metadata is not valid: {errors}")
        return xml.decode() if isinstance(xml, bytes) else xml

    @staticmethod
    def _request_data(request: ProviderRequest, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        return {"https": "on" if parts.scheme == "https" else "off", "http_host": parts.hostname,
                "server_port": str(parts.port or (443 if parts.scheme == "https" else 80)),
                "script_name": parts.path, "get_data": dict(request.args), "post_data": dict(request.form)}

    # -- signing in --------------------------------------------------------------------------

    def login(self, request: ProviderRequest, state: str) -> Redirect:
        auth = OneLogin_Saml2_Auth(self._request_data(request, request.callback_url),
                                   self.saml_settings(request.callback_url))
        url = auth.login(return_to=state)
        return Redirect(url, {"request_id": auth.get_last_request_id()})

    def complete(self, request: ProviderRequest, pending: Mapping[str, Any]) -> Identity:
        if request.method != "POST" or not request.form.get("SAMLResponse"):
            raise ProviderRefused(log_detail="ACS request without a SAMLResponse")
        idp = self.idp_settings()  # may read the IdP's metadata: I/O, done here
        request_id = pending.get("request_id")
        if len(str(request.form["SAMLResponse"])) > MAX_RESPONSE_ON_LOOP:
            return self._validated(request, idp, request_id)  # here: the loop's pauses stay short
        return compute(self._validated, request, idp, request_id)

    def _validated(self, request: ProviderRequest, idp: dict[str, Any], request_id: str | None) -> Identity:
        """CPU work only (settings, XML, schema, signatures): see ``blocking.compute``."""
        auth = OneLogin_Saml2_Auth(self._request_data(request, request.callback_url),
                                   self.saml_settings(request.callback_url, idp))
        try:
            auth.process_response(request_id=request_id)  # None only when unsolicited
        except Exception as exc:  # validation errors, malformed XML and the like: a refusal, never a 500
            raise ProviderRefused(log_detail=f"SAML response refused: {type(exc).__name__}: {exc}"[:300]) from None
        if auth.get_errors() or not auth.is_authenticated():
            raise ProviderRefused(log_detail=f"SAML response refused: {auth.get_last_error_reason()}"[:300])
        if request_id is None and auth.get_last_response_in_response_to() is not None:
            # python3-saml skips InResponseTo without a request id: a solicited response (some
            # other browser's sign-in) must not pass as an unsolicited one.
            raise ProviderRefused(log_detail="an answer to an AuthnRequest posted without its RelayState")
        return self._identity(auth)

    def _identity(self, auth: OneLogin_Saml2_Auth) -> Identity:
        attributes = auth.get_attributes()
        username = auth.get_nameid() if not self.username_attribute else _first(attributes, self.username_attribute)
        if not username:
            raise ProviderRefused(log_detail=f"the response has no {self.username_attribute or 'NameID'}")
        until = auth.get_last_assertion_not_on_or_after() or (time.time() + 300)
        name_id, session_index = auth.get_nameid(), auth.get_session_index()
        return Identity(
            username=str(username).strip(),
            email=_first(attributes, self.email_attribute),
            display_name=_first(attributes, self.name_attribute),
            groups=tuple(_all(attributes, self.groups_attribute)),
            attributes={"name_id": name_id, "session_index": session_index},
            connector=self.name,
            # The core remembers the assertion id until it expires: a second use is a replay.
            private={"once": {"id": auth.get_last_assertion_id(), "until": float(until) + self.clock_skew}},
            # The IdP's LogoutRequest names the NameID, and the SessionIndex when it ends one of its sessions.
            logout_ids=(logout_id(self.name, name_id),
                        *([logout_id(self.name, name_id, session_index)] if session_index else [])),
        )

    # -- single logout ---------------------------------------------------------------------------

    def logout_url(self, identity: Identity, return_to: str) -> str | None:
        """SP-initiated single logout: the IdP ends its session and sends the browser to the SLS."""
        slo = self.idp_settings().get("singleLogoutService", {}).get("url")
        if not slo:
            return None
        callback = return_to.rsplit("/signed-out", 1)[0] + f"/callback/{self.name}"
        request = ProviderRequest("GET", {}, {}, callback, "")
        auth = OneLogin_Saml2_Auth(self._request_data(request, callback), self.saml_settings(callback))
        return auth.logout(return_to=return_to, name_id=identity.attributes.get("name_id"),
                           session_index=identity.attributes.get("session_index"))

    def single_logout(self, request: ProviderRequest, end_sessions: Any) -> str:
        """The SLS: a LogoutResponse (after SP-initiated logout) is checked and the browser goes on
        to the signed-out page; a LogoutRequest from the IdP ends the sessions here that it names
        (``end_sessions(name_id, logout_ids)``: the NameID's, or those of the SessionIndexes it
        lists) and the browser goes back to the IdP with a LogoutResponse."""
        sls = request.callback_url.rsplit("/callback/", 1)[0] + "/saml/sls"
        auth = OneLogin_Saml2_Auth(self._request_data(request, sls), self.saml_settings(request.callback_url))

        def end_local() -> None:  # python3-saml calls it for responses too: ours ended at logout
            logout_request = auth.get_last_request_xml()
            if logout_request is not None:
                name_id = OneLogin_Saml2_Logout_Request.get_nameid(logout_request)
                indexes = OneLogin_Saml2_Logout_Request.get_session_indexes(logout_request)
                named = [[name_id, index] for index in indexes] or [[name_id]]
                end_sessions(name_id, [logout_id(self.name, *names) for names in named])

        try:
            target = auth.process_slo(delete_session_cb=end_local)
        except Exception as exc:  # malformed input: a refusal, never a 500
            raise ProviderRefused("The identity provider's logout message could not be processed.",
                                  log_detail=f"SLS: {type(exc).__name__}: {exc}"[:300]) from None
        if auth.get_errors():
            raise ProviderRefused("The identity provider's logout message could not be processed.",
                                  log_detail=f"SLS refused: {auth.get_last_error_reason()}"[:300])
        return target or ""

    # -- health and check ----------------------------------------------------------------------

    def ping(self) -> None:
        """Health: the IdP's metadata can be read and parsed now (fetched, when it is a URL)."""
        self._probe()

    def check(self, test_user: str | None = None) -> list[Finding]:
        try:
            idp = self.idp_settings()
        except (ProviderUnavailable, ConfigurationError) as exc:
            return [Finding(False, f"saml IdP metadata: {getattr(exc, 'log_detail', '') or exc}")]
        findings = [Finding(True, f"saml IdP {idp.get('entityId')}: metadata parsed, SSO "
                                  f"{idp['singleSignOnService']['url']}, single logout "
                                  f"{'offered' if idp.get('singleLogoutService', {}).get('url') else 'not offered'}")]
        certificates = (idp.get("x509certMulti") or {}).get("signing") or [idp.get("x509cert")]
        for pem in filter(None, certificates):
            findings.append(_certificate_finding(pem))
        if self.metadata_url:
            try:
                date = requests.head(self.metadata_url, timeout=self.timeout).headers.get("Date")
            except requests.RequestException:
                date = None
            if date:
                skew = abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time())
                findings.append(Finding(skew <= self.clock_skew, f"saml clock skew to the IdP: {skew:.0f} s "
                                                                 f"(allowed {self.clock_skew} s)"))
        findings.append(Finding(True, "saml: give the IdP admin the SP metadata at "
                                      "https://<app host><routes prefix>_dash-auth/saml/metadata"))
        return findings


def _certificate_finding(cert_data: str) -> Finding:
    """Whether an IdP signing certificate is valid now and for 30 more days."""
    from cryptography import x509

    pem = cert_data if "BEGIN CERTIFICATE" in cert_data else \
        f"-----BEGIN CERTIFICATE-----\n{cert_data.strip()}\n-----END CERTIFICATE-----\n"
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        return Finding(False, f"saml IdP certificate cannot be read: {exc}")
    left = cert.not_valid_after_utc.timestamp() - time.time()
    subject = cert.subject.rfc4514_string()
    if left <= 0:
        return Finding(False, f"saml IdP certificate {subject}: EXPIRED on {cert.not_valid_after_utc:%Y-%m-%d}")
    return Finding(left > 30 * 86400, f"saml IdP certificate {subject}: valid until "
                                      f"{cert.not_valid_after_utc:%Y-%m-%d} ({left / 86400:.0f} days)")


def _validate_with_cached_schema(xml: Any, schema: str, debug: bool = False) -> Any:
    """python3-saml's ``validate_xml`` with the compiled XSD kept per thread.

    python3-saml reads and compiles the SAML protocol schema on every message
    (about 3 ms, nearly half of validating a response); the schema files never
    change, so the compiled schema is kept, one per thread as lxml validators
    are not shared between threads. Same schema, same verdicts, same results.
    """
    try:
        document = OneLogin_Saml2_XML.to_etree(xml)
    except Exception:
        return "unloaded_xml"
    schemas = _compiled.__dict__.setdefault("schemas", {})
    validator = schemas.get(schema)
    if validator is None:
        with open(Path(xml_utils.__file__).parent / "schemas" / schema, "rb") as file:
            validator = schemas[schema] = OneLogin_Saml2_XML._schema_class(etree.parse(file))
    return document if validator.validate(document) else "invalid_xml"


_compiled = threading.local()
SHIPPED_VALIDATE_XML = OneLogin_Saml2_XML.validate_xml  # for bench/saml_acs.py's floor
OneLogin_Saml2_XML.validate_xml = staticmethod(_validate_with_cached_schema)


def _check_sp_credentials(cert: str, key: str) -> None:
    """Load the SP certificate and key as python3-saml will when it signs (xmlsec, after its own
    formatting), so a file holding no certificate, or no key, stops start-up instead of every sign-in."""
    for option, pem, form in ((SP_CERT_FILE, OneLogin_Saml2_Utils.format_cert(cert), xmlsec.KeyFormat.CERT_PEM),
                              (SP_KEY_FILE, OneLogin_Saml2_Utils.format_private_key(key), xmlsec.KeyFormat.PEM)):
        try:
            xmlsec.Key.from_memory(pem, form, None)
        except xmlsec.Error:  # its message is "cannot load key" for both
            what = "a PEM certificate" if option is SP_CERT_FILE else "an unencrypted PEM private key"
            raise ConfigurationError(f"{option.name} does not hold {what} (python3-saml's xmlsec cannot "
                                     "load it)") from None


def _read(path: str | None, option: Option) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigurationError(f"{option.name}={path!r} cannot be read: {exc.strerror}") from None


def _all(attributes: Mapping[str, list[str]], name: str) -> list[str]:
    for candidate in (name, *ALIASES.get(name, ())):
        if attributes.get(candidate):
            return [str(v) for v in attributes[candidate]]
    return []


def _first(attributes: Mapping[str, list[str]], name: str) -> str | None:
    values = _all(attributes, name)
    return values[0] if values else None
