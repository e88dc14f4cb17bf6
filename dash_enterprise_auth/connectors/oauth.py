"""The OAuth 2.0 authorization code flow with PKCE, shared by the oidc and plotly connectors.

Authlib builds the requests and authenticates the client; this module adds
what a sign-in page needs around it: a timeout on every call (well under a
gunicorn worker's 30 s), and every answer that is not a sign-in turned into
an ``AuthenticationError`` (a refusal page) or ``ProviderUnavailable`` (503),
never an exception that becomes a 500.
"""
from __future__ import annotations

import secrets
from typing import Any, Mapping

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from ..errors import AccessRevoked, ProviderRefused, ProviderUnavailable
from .base import ProviderRequest, Redirect, answer_text, pending_text
from .http import describe

# RFC 6749 4.1.2.1 error codes a person can cause, with what to tell them.
PROVIDER_ERRORS = {
    "access_denied": "The sign-in was cancelled or refused at the identity provider.",
    "login_required": "You need to sign in at the identity provider first.",
    "consent_required": "The identity provider needs your consent for this app.",
    "interaction_required": "The identity provider needs you to finish signing in there.",
}


class OAuthClient:
    """One registered client at one authorization server."""

    def __init__(self, client_id: str, client_secret: str | None, *, timeout: float,
                 auth_method: str = "client_secret_basic") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.timeout = timeout
        self.auth_method = auth_method if client_secret else "none"

    def _session(self, redirect_uri: str | None = None, token: Mapping[str, Any] | None = None) -> OAuth2Session:
        return OAuth2Session(self.client_id, self.client_secret, token_endpoint_auth_method=self.auth_method,
                             revocation_endpoint_auth_method=self.auth_method, redirect_uri=redirect_uri,
                             token=dict(token) if token else None, default_timeout=self.timeout)

    def authorize(self, endpoint: str, request: ProviderRequest, state: str, scope: str,
                  **extra: str) -> Redirect:
        """Where to send the browser; the PKCE verifier and redirect URI stay server-side."""
        verifier = secrets.token_urlsafe(48)
        url, _ = self._session(request.callback_url).create_authorization_url(
            endpoint, state=state, scope=scope, code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256", **extra)
        return Redirect(url, {"code_verifier": verifier, "redirect_uri": request.callback_url, **extra})

    def exchange(self, endpoint: str, request: ProviderRequest, pending: Mapping[str, Any]) -> dict[str, Any]:
        """The token response for the callback's code; refusals for everything else."""
        error = answer_text(request, "error")
        if error:
            raise ProviderRefused(PROVIDER_ERRORS.get(error, ProviderRefused.default_message),
                                  log_detail=f"provider answered error={error[:64]!r} "
                                             f"{(answer_text(request, 'error_description') or '')[:200]!r}")
        code = answer_text(request, "code")
        if not code or len(code) > 2048:
            raise ProviderRefused(log_detail="callback without an authorization code")
        redirect_uri, verifier = pending_text(pending, "redirect_uri"), pending_text(pending, "code_verifier")
        try:
            token = self._session(redirect_uri).fetch_token(
                endpoint, code=code, code_verifier=verifier, grant_type="authorization_code", timeout=self.timeout)
        except AuthlibBaseError as exc:  # the provider's error answer, e.g. invalid_grant for a reused code
            raise ProviderRefused(log_detail=f"token endpoint refused the code: {exc.error} "
                                             f"{(exc.description or '')[:200]}") from None
        except requests.RequestException as exc:
            raise ProviderUnavailable(log_detail=f"token endpoint {endpoint}: {describe(exc)}") from None
        except ValueError as exc:
            raise ProviderRefused(log_detail=f"token endpoint answered something that is not a token: {exc}") from None
        if not token.get("access_token"):
            raise ProviderRefused(log_detail="token response without an access_token")
        return dict(token)

    def refresh(self, endpoint: str, refresh_token: str) -> dict[str, Any]:
        """The token response to a refresh-token grant (RFC 6749 6), with ``refresh_token``: the
        rotated one, or the one given when the provider did not rotate it. AccessRevoked when the
        provider refuses the grant (``invalid_grant``: revoked, expired, or the person is disabled);
        ProviderUnavailable for everything that is not an answer about the person."""
        try:
            token = self._session().refresh_token(endpoint, refresh_token=refresh_token, timeout=self.timeout)
        except AuthlibBaseError as exc:
            if exc.error == "invalid_grant":
                raise AccessRevoked(log_detail=f"token endpoint refused the refresh token: invalid_grant "
                                               f"{(exc.description or '')[:200]}") from None
            raise ProviderUnavailable(log_detail=f"token endpoint refused the refresh: {exc.error} "
                                                 f"{(exc.description or '')[:200]}") from None
        except requests.RequestException as exc:
            raise ProviderUnavailable(log_detail=f"token endpoint {endpoint}: {describe(exc)}") from None
        except ValueError as exc:
            raise ProviderUnavailable(log_detail=f"token endpoint answered something that is not a token: {exc}") \
                from None
        if not token.get("access_token") or not isinstance(token.get("refresh_token"), str):
            raise ProviderUnavailable(log_detail="refresh answer without an access_token")
        return dict(token)

    def get_json(self, url: str, token: Mapping[str, Any], params: Mapping[str, str] | None = None,
                 ok: tuple[int, ...] = (200,)) -> tuple[int, Any]:
        """GET an API resource with the access token: (status, JSON body or None)."""
        try:
            response = self._session(token=token).get(url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ProviderUnavailable(log_detail=f"{url}: {describe(exc)}") from None
        if response.status_code >= 500:
            raise ProviderUnavailable(log_detail=f"{url} answered {response.status_code}")
        try:
            body = response.json() if response.status_code in ok else None
        except ValueError:
            raise ProviderRefused(log_detail=f"{url} answered {response.status_code} with a body that is not JSON") \
                from None
        return response.status_code, body

    def revoke(self, url: str, token: str) -> bool:
        """Revoke an access token (RFC 7009); False when the provider did not confirm it."""
        try:
            response = self._session().revoke_token(url, token=token, token_type_hint="access_token",
                                                    timeout=self.timeout)
        except (requests.RequestException, AuthlibBaseError):
            return False
        return response.status_code == 200
