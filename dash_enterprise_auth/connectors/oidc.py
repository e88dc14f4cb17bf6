"""Sign-in at any OpenID Connect provider (Okta, Entra ID, Google, Keycloak, Auth0, Dex).

The authorization code flow with PKCE (S256) and a nonce; the core keeps the
state single-use and bound to the browser. The ID token is checked with
joserfc (Authlib's JOSE library): signature against the provider's JWKS
(refetched once when a token names an unknown key, for key rotation: the
token comes straight from the token endpoint, so nobody else can force refetches), only
asymmetric algorithms (never ``none``, never HMAC), and ``iss``, ``aud``,
``azp``, ``exp``, ``iat`` and ``nonce`` with a clock skew allowance. ``aud``
must name this client itself: a token issued to another client is refused
even when its ``azp`` names this one.

Each session is indexed by the ID token's ``sub`` and ``sid`` (logout ids), so
that OpenID Connect Back-Channel Logout 1.0 can end it: the provider POSTs a
logout token, checked here the same way (keys, asymmetric algorithms, ``iss``,
``aud``) plus what makes it a logout token and not an ID token (the
back-channel logout event, ``sid`` and/or ``sub``, a ``jti``, no ``nonce``). Anyone
can POST there, so logout tokens naming unknown keys refetch the keys at most once
every ``KEY_REFETCH_INTERVAL`` seconds.
"""
from __future__ import annotations

import email.utils
import hashlib
import secrets
import threading
import time
from dataclasses import replace
from typing import Any, Mapping

import requests
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from ..errors import AccessRevoked, ConfigurationError, ProviderRefused, ProviderUnavailable
from ..settings import Option, Secret, Settings, seconds, text
from .base import (Finding, Identity, LogoutNotice, ProviderRequest, Redirect, RedirectConnector, answer_text,
                   logout_id, not_text, pending_text)
from .http import Probe, describe
from .oauth import OAuthClient

ISSUER = Option("DASH_AUTH_OIDC_ISSUER", text, help="issuer URL; its /.well-known/openid-configuration is read")
CLIENT_ID = Option("DASH_AUTH_OIDC_CLIENT_ID", text)
CLIENT_SECRET = Option("DASH_AUTH_OIDC_CLIENT_SECRET", text, secret=True)
SCOPES = Option("DASH_AUTH_OIDC_SCOPES", text, "openid email profile",
                help="space-separated; add groups (Okta, Keycloak, oidc-provider) where the provider has it")
USERNAME_CLAIM = Option("DASH_AUTH_OIDC_USERNAME_CLAIM", text, "preferred_username",
                        help="claim holding the username; Google, Auth0: email")
EMAIL_CLAIM = Option("DASH_AUTH_OIDC_EMAIL_CLAIM", text, "email")
NAME_CLAIM = Option("DASH_AUTH_OIDC_NAME_CLAIM", text, "name", help="claim holding the display name")
GROUPS_CLAIM = Option("DASH_AUTH_OIDC_GROUPS_CLAIM", text, "groups",
                      help="claim holding the groups, a dotted path for nested claims (realm_access.roles)")
TIMEOUT = Option("DASH_AUTH_OIDC_TIMEOUT", seconds, 5,
                 help="seconds to wait for the provider on each call (a sign-in makes up to three)")
CLOCK_SKEW = Option("DASH_AUTH_OIDC_CLOCK_SKEW", seconds, 60, help="seconds of clock difference tolerated")

# Asymmetric algorithms only: "none" is never a signature, and an HMAC key would be the
# client secret, which the token's issuer is not the only one to know.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
METADATA_TTL = 3600.0
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_MAX_AGE = 120  # seconds after its iat (plus the skew) that a logout token is accepted
MAX_LOGOUT_TOKEN = 16 * 1024  # characters; a real one is about 1 KB
KEY_REFETCH_INTERVAL = 30.0  # seconds: unknown kids in logout tokens refetch the JWKS no more often


class OidcConnector(RedirectConnector):
    name = "oidc"
    display_name = "OpenID Connect"
    options = (ISSUER, CLIENT_ID, CLIENT_SECRET, SCOPES, USERNAME_CLAIM, EMAIL_CLAIM, NAME_CLAIM, GROUPS_CLAIM,
               TIMEOUT, CLOCK_SKEW)

    def __init__(self, issuer: str, client_id: str, client_secret: Secret | str | None = None, *,
                 scopes: str = "openid email profile", username_claim: str = "preferred_username",
                 email_claim: str = "email", name_claim: str = "name", groups_claim: str = "groups", timeout: int = 5, clock_skew: int = 60) -> None:
        if not issuer or not issuer.startswith(("https://", "http://")):
            raise ConfigurationError("DASH_AUTH_OIDC_ISSUER is not set: use the provider's issuer URL, "
                                     "e.g. https://login.example.com/realms/corp")
        if not client_id:
            raise ConfigurationError("DASH_AUTH_OIDC_CLIENT_ID is not set: use the client id registered at the provider")
        if "openid" not in scopes.split():
            raise ConfigurationError(f"DASH_AUTH_OIDC_SCOPES={scopes!r} is not valid: it must include openid")
        self.issuer = issuer  # compared exactly with the discovery document and every token
        secret = client_secret.reveal() if isinstance(client_secret, Secret) else client_secret
        self.client = OAuthClient(client_id, secret or None, timeout=timeout)
        self.scopes = scopes
        self.username_claim = username_claim
        self.email_claim = email_claim
        self.name_claim = name_claim
        self.groups_claim = groups_claim
        self.timeout = timeout
        self.clock_skew = clock_skew
        self._lock = threading.Lock()
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, KeySet] | None = None
        self._refetched_for_logout = float("-inf")  # when a logout token's unknown kid last refetched the keys
        self._probe = Probe(lambda: self.metadata(fresh=True))

    @classmethod
    def from_settings(cls, settings: Settings) -> "OidcConnector":
        return cls(settings.get(ISSUER), settings.get(CLIENT_ID), settings.get(CLIENT_SECRET),
                   scopes=settings.get(SCOPES), username_claim=settings.get(USERNAME_CLAIM),
                   email_claim=settings.get(EMAIL_CLAIM), name_claim=settings.get(NAME_CLAIM),
                   groups_claim=settings.get(GROUPS_CLAIM), timeout=settings.get(TIMEOUT),
                   clock_skew=settings.get(CLOCK_SKEW))

    # -- the provider's documents --------------------------------------------------------

    def _fetch(self, url: str) -> tuple[dict[str, Any], requests.Response]:
        try:
            response = requests.get(url, timeout=self.timeout, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except requests.RequestException as exc:
            raise ProviderUnavailable(log_detail=f"{url}: {describe(exc)}") from None
        except ValueError:
            raise ProviderUnavailable(log_detail=f"{url} did not answer JSON") from None
        if not isinstance(body, dict):
            raise ProviderUnavailable(log_detail=f"{url} did not answer a JSON object")
        return body, response

    def metadata(self, fresh: bool = False) -> dict[str, Any]:
        """The discovery document, cached for an hour (``fresh``: asked for now); its issuer
        must be ours exactly."""
        with self._lock:
            if not fresh and self._metadata and time.monotonic() - self._metadata[0] < METADATA_TTL:
                return self._metadata[1]
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document, _ = self._fetch(url)
        if document.get("issuer") != self.issuer:
            raise ProviderUnavailable(log_detail=(
                f"{url} names issuer {document.get('issuer')!r}, not DASH_AUTH_OIDC_ISSUER={self.issuer!r}: "
                "set DASH_AUTH_OIDC_ISSUER to the exact issuer"))
        missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(k)]
        if missing:
            raise ProviderUnavailable(log_detail=f"{url} has no {', '.join(missing)}")
        with self._lock:
            self._metadata = (time.monotonic(), document)
        return document

    def _key_set(self, refresh: bool = False) -> KeySet:
        with self._lock:
            cached = self._keys
        if cached and not refresh:
            return cached[1]
        document, _ = self._fetch(self.metadata()["jwks_uri"])
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailable(log_detail=f"the provider's JWKS cannot be read: {exc}") from None
        with self._lock:
            self._keys = (time.monotonic(), keys)
        return keys

    # -- signing in ----------------------------------------------------------------------

    def login(self, request: ProviderRequest, state: str) -> Redirect:
        metadata = self.metadata()
        return self.client.authorize(metadata["authorization_endpoint"], request, state, self._scopes(metadata),
                                     nonce=secrets.token_urlsafe(24))

    def _scopes(self, metadata: Mapping[str, Any]) -> str:
        """The configured scopes, plus ``offline_access`` when the provider offers it: a refresh token,
        kept server-side, lets re-validation ask the provider about the person without them."""
        scopes = self.scopes.split()
        if "offline_access" in (metadata.get("scopes_supported") or ()) and "offline_access" not in scopes:
            scopes.append("offline_access")
        return " ".join(scopes)

    def complete(self, request: ProviderRequest, pending: Mapping[str, Any]) -> Identity:
        issuer = answer_text(request, "iss")
        if issuer is not None and issuer != self.issuer:  # RFC 9207: mix-up defence
            raise ProviderRefused(log_detail=f"callback from issuer {issuer[:200]!r}, not ours")
        nonce = pending_text(pending, "nonce")
        metadata = self.metadata()
        token = self.client.exchange(metadata["token_endpoint"], request, pending)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderRefused(log_detail="token response without an id_token (is 'openid' in the scopes?)")
        claims = self.validate_id_token(id_token, nonce)
        logout_ids = self._logout_ids(claims)
        if not self._claim(claims, self.groups_claim) or not self._claim(claims, self.username_claim):
            claims = {**self._userinfo(metadata, token, claims["sub"]), **claims}
        identity = self._identity(claims, id_token, logout_ids)
        refresh_token = token.get("refresh_token")
        if isinstance(refresh_token, str) and refresh_token:
            identity = replace(identity, private={**identity.private, "refresh_token": refresh_token})
        return identity

    # -- re-validation -------------------------------------------------------------------

    def revalidate(self, identity: Identity) -> Identity:
        """A refresh-token grant, then userinfo (and the refreshed ID token, when one comes back):
        ``invalid_grant`` (grant revoked, person disabled or deleted) ends the session; new claims
        (groups) take effect; a rotated refresh token replaces the old one. A sign-in without a
        refresh token (the provider gave none) cannot be re-validated and comes back as it was."""
        refresh_token = identity.private.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            return identity
        metadata = self.metadata()
        token = self.client.refresh(metadata["token_endpoint"], refresh_token)
        sub = identity.attributes.get("sub")
        claims: dict[str, Any] = {}
        id_token = token.get("id_token")
        if isinstance(id_token, str):
            claims = self._refreshed_id_token_claims(id_token, sub)
        if metadata.get("userinfo_endpoint"):
            claims.update(self._userinfo(metadata, token, str(sub)))
        private = {"id_token": id_token if isinstance(id_token, str) else identity.private.get("id_token"),
                   "refresh_token": token["refresh_token"]}
        if not claims:
            return replace(identity, private=private)
        claims.update(sub=sub, iss=self.issuer)
        return replace(self._identity(claims, private["id_token"] or "", identity.logout_ids), private=private)

    def _refreshed_id_token_claims(self, id_token: str, sub: Any) -> dict[str, Any]:
        """A refreshed ID token's claims (OIDC Core 12.2: checked as at sign-in, for the same
        subject; there is no nonce to check)."""
        try:
            claims = self.validate_id_token(id_token, nonce=None)
        except ProviderRefused as exc:
            raise ProviderRefused(log_detail="refreshed " + exc.log_detail) from None
        if claims["sub"] != sub:
            raise AccessRevoked(log_detail="the refreshed ID token names another subject")
        return claims

    def _algorithms(self) -> list[str]:
        """The provider's ID token algorithms that are asymmetric (logout tokens use the same)."""
        return [a for a in self.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
                if a in SIGNING_ALGORITHMS] or ["RS256"]

    def _decode(self, token: str, logout: bool = False) -> jwt.Token:
        """The token checked against the provider's keys; an unknown kid fetches them again once
        (the provider rotated its keys). For a logout token, which anyone can send, not if another
        one did less than ``KEY_REFETCH_INTERVAL`` seconds ago."""
        algorithms = self._algorithms()
        try:
            return jwt.decode(token, self._key_set(), algorithms=algorithms)
        except InvalidKeyIdError:
            if logout:
                now = time.monotonic()
                with self._lock:
                    if now - self._refetched_for_logout < KEY_REFETCH_INTERVAL:
                        raise
                    self._refetched_for_logout = now
            return jwt.decode(token, self._key_set(refresh=True), algorithms=algorithms)

    def validate_id_token(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        """The ID token's claims, or ProviderRefused saying what is wrong with it. ``nonce`` is the
        sign-in's; None for a token from a refresh, which has none to match."""
        try:
            decoded = self._decode(id_token)
            jwt.JWTClaimsRegistry(
                leeway=self.clock_skew,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                **({"nonce": {"essential": True, "value": nonce}} if nonce is not None else {}),
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise ProviderRefused(log_detail=f"ID token refused: {getattr(exc, 'error', '')} {exc}"[:300]) from None
        claims = dict(decoded.claims)
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 and azp is None) or (azp is not None and azp != self.client.client_id):
            raise ProviderRefused(log_detail=f"ID token refused: azp {azp!r} with aud {audiences!r}")
        if claims["iat"] > time.time() + self.clock_skew:
            raise ProviderRefused(log_detail="ID token refused: issued in the future")
        return claims

    def _userinfo(self, metadata: Mapping[str, Any], token: Mapping[str, Any], sub: str) -> dict[str, Any]:
        endpoint = metadata.get("userinfo_endpoint")
        if not endpoint:
            return {}
        status, body = self.client.get_json(endpoint, token)
        if status != 200 or not isinstance(body, dict):
            raise ProviderRefused(log_detail=f"userinfo answered {status}")
        if body.get("sub") != sub:  # OIDC Core 5.3.2: otherwise the answer may be someone else's
            raise ProviderRefused(log_detail="userinfo sub differs from the ID token's")
        return body

    @staticmethod
    def _claim(claims: Mapping[str, Any], path: str) -> Any:
        value: Any = claims
        for part in path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return value

    def _logout_ids(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """Where a logout token finds this sign-in: the person (``sub``) and, when the provider
        names it, the provider's session (``sid``); both of this issuer only."""
        sid = claims.get("sid")
        return (logout_id(self.name, self.issuer, "sub", str(claims["sub"])),
                *([logout_id(self.name, self.issuer, "sid", sid)] if isinstance(sid, str) and sid else []))

    def _identity(self, claims: Mapping[str, Any], id_token: str, logout_ids: tuple[str, ...] = ()) -> Identity:
        username = self._claim(claims, self.username_claim)
        if not isinstance(username, str) or not username.strip():
            raise ProviderRefused(log_detail=(
                f"neither the ID token nor userinfo has a {self.username_claim!r} claim: set "
                "DASH_AUTH_OIDC_USERNAME_CLAIM (email for Google and Auth0) or add the scope that releases it"))
        groups = self._claim(claims, self.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        email, name = self._claim(claims, self.email_claim), self._claim(claims, self.name_claim)
        return Identity(
            username=username.strip(),
            email=email if isinstance(email, str) else None,
            display_name=name if isinstance(name, str) else None,
            groups=tuple(str(g) for g in groups if isinstance(g, (str, int))),
            attributes={"sub": claims["sub"], "iss": claims["iss"]},
            connector=self.name,
            private={"id_token": id_token},
            logout_ids=logout_ids,
        )

    # -- back-channel logout -----------------------------------------------------------------

    def logout_notice(self, form: Mapping[str, str]) -> LogoutNotice:
        """The sessions a logout token POSTed by the provider ends (OpenID Connect Back-Channel
        Logout 1.0, 2.6): those of its ``sid`` when it names one, else every one of its ``sub``."""
        token = form.get("logout_token")
        if token is None or not_text(token) or not token:
            raise ProviderRefused(log_detail="no logout_token in the POSTed form")
        if len(token) > MAX_LOGOUT_TOKEN:
            raise ProviderRefused(log_detail=f"a logout_token of {len(token)} characters")
        try:
            claims = dict(self._decode(token, logout=True).claims)
            jwt.JWTClaimsRegistry(
                leeway=self.clock_skew,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client.client_id},
                iat={"essential": True},
                jti={"essential": True},
                events={"essential": True},
            ).validate(claims)
        except ProviderUnavailable:
            raise
        except JoseError as exc:
            raise ProviderRefused(log_detail=f"logout token refused: {exc}"[:300]) from None
        except Exception as exc:  # whatever else a crafted token can make a JOSE library raise
            raise ProviderRefused(log_detail=f"logout token refused: {type(exc).__name__}: {exc}"[:300]) from None
        problem = _not_a_logout_token(claims)
        if problem:
            raise ProviderRefused(log_detail=f"logout token refused: {problem}")
        now = time.time()
        until = min(claims["iat"] + LOGOUT_TOKEN_MAX_AGE, claims.get("exp", float("inf"))) + self.clock_skew
        if until <= now:
            raise ProviderRefused(log_detail=f"logout token refused: issued {now - claims['iat']:.0f} s ago")
        sid, sub = claims.get("sid"), claims.get("sub")
        ids = (logout_id(self.name, self.issuer, "sid", sid) if sid else
               logout_id(self.name, self.issuer, "sub", sub),)
        once = hashlib.sha256(f"{self.issuer}\0{claims['jti']}".encode()).hexdigest()
        # Remembered past ``until`` by one more skew: other hosts' clocks may run behind ours.
        return LogoutNotice(subject=sub, logout_ids=ids, once_id=f"{self.name}-logout:{once}",
                            until=until + self.clock_skew)

    # -- logging out, health, check ----------------------------------------------------------

    def logout_url(self, identity: Identity, return_to: str) -> str | None:
        """RP-initiated logout where the provider offers it; the local session is already gone."""
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except ProviderUnavailable:
            return None
        if not endpoint:
            return None
        params = {"client_id": self.client.client_id, "post_logout_redirect_uri": return_to}
        if identity.private.get("id_token"):
            params["id_token_hint"] = identity.private["id_token"]
        return requests.Request("GET", endpoint, params=params).prepare().url

    def ping(self) -> None:
        """Health: the provider answers its discovery document now, not an hour ago."""
        self._probe()

    def check(self, test_user: str | None = None) -> list[Finding]:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        findings = []
        try:
            _, response = self._fetch(url)
            metadata = self.metadata()
            findings.append(Finding(True, f"oidc discovery {url}: issuer matches, "
                                          f"end_session_endpoint {'offered' if metadata.get('end_session_endpoint') else 'not offered (logout is local only)'}"))
        except ProviderUnavailable as exc:
            return [Finding(False, f"oidc discovery: {exc.log_detail}")]
        try:
            keys = self._key_set(refresh=True)
            findings.append(Finding(True, f"oidc JWKS {metadata['jwks_uri']}: {len(keys.keys)} key(s)"))
        except ProviderUnavailable as exc:
            findings.append(Finding(False, f"oidc JWKS: {exc.log_detail}"))
        findings.append(Finding(True, "oidc redirect URI to register at the provider: "
                                      "https://<app host><routes prefix>_dash-auth/callback/oidc "
                                      "(and <...>_dash-auth/signed-out as post-logout redirect URI)"))
        offline = "offline_access" in (metadata.get("scopes_supported") or ())
        findings.append(Finding(True, "oidc re-validation: " + (
            "offline_access offered: sign-ins get a refresh token, kept server-side" if offline else
            "offline_access not offered: sessions are re-validated only if the provider issues refresh tokens")))
        supported = "supported" if metadata.get("backchannel_logout_supported") else \
            "not advertised by the provider"
        findings.append(Finding(True, "oidc back-channel logout URI to register at the provider: "
                                      "https://<app host><routes prefix>_dash-auth/backchannel-logout/oidc "
                                      f"({supported})"))
        date = response.headers.get("Date")
        if date:
            skew = abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time())
            findings.append(Finding(skew <= self.clock_skew, f"oidc clock skew to the provider: {skew:.0f} s "
                                                             f"(allowed {self.clock_skew} s)"))
        return findings


def _not_a_logout_token(claims: Mapping[str, Any]) -> str | None:
    """What makes these signed, current claims for this client something other than a logout
    token (Back-Channel Logout 1.0, 2.4 and 2.6), or None."""
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        return "no back-channel logout event"
    if "nonce" in claims:
        return "it has a nonce (an ID token?)"
    sid, sub = claims.get("sid"), claims.get("sub")
    if sid is None and sub is None:
        return "neither sid nor sub"
    if any(value is not None and (not isinstance(value, str) or not value or not_text(value))
           for value in (sid, sub, claims.get("jti"))):
        return "sid, sub or jti is not a non-empty string"
    return None
