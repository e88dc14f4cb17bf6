"""Sign-in with a Plotly account (Chart Studio cloud or an on-premise server), as dash-auth's PlotlyAuth.

What ``dash_auth.PlotlyAuth`` did, kept: the app is a file on the Plotly
server (``DASH_AUTH_PLOTLY_APP_NAME``), created or updated there with the
app's sharing at first use; a viewer signs in at ``{domain}/o/authorize``;
``/v2/users/current`` says who they are; ``GET /v2/files/<fid>`` with their
token says whether they may view the app; logout revokes the token at
``/Auth/o/revoke_token/``. ``sharing`` replaces the privacy level, with
dash-auth 1.x's meaning: every level needs a Plotly sign-in. ``private`` =
those the Plotly server lets view the file, ``public`` = any signed-in user
of that server (the file is world-readable), ``secret`` = those of
``private`` plus anyone with the file's ``share_key`` link. Anonymous access
exists only as its own, explicitly named level, ``anonymous``: a drop-in
must never open an app that used to ask for a sign-in.

What changed: PlotlyAuth used the implicit grant (the token in the URL
fragment, no ``state``); this connector uses the authorization code flow with
PKCE through the shared OAuth code path, and registers its client as such.
"""
from __future__ import annotations

import hmac
import threading
import time
from dataclasses import replace
from typing import Any, Mapping

import requests

from ..errors import AccessRevoked, AccountLocked, ConfigurationError, ProviderRefused, ProviderUnavailable
from ..settings import Option, Secret, Settings, http_url, one_of, seconds, text
from .base import Finding, Identity, ProviderRequest, Redirect, RedirectConnector, pending_text
from .http import Probe, describe
from .oauth import OAuthClient

# dash-auth 1.x read PLOTLY_DOMAIN and PLOTLY_API_DOMAIN: still read, as fallbacks of one option each,
# so the keyword (plotly_domain=, plotly_api_domain=) wins over both variables.
DOMAIN = Option("DASH_AUTH_PLOTLY_DOMAIN", http_url, "https://plot.ly", fallbacks=("PLOTLY_DOMAIN",),
                help="the Plotly server; falls back to PLOTLY_DOMAIN")
API_DOMAIN = Option("DASH_AUTH_PLOTLY_API_DOMAIN", http_url, fallbacks=("PLOTLY_API_DOMAIN",),
                    help="the Plotly API server; falls back to PLOTLY_API_DOMAIN, then the domain")
CLIENT_ID = Option("DASH_AUTH_PLOTLY_CLIENT_ID", text,
                   help="OAuth client id; unset: the app registers itself with the API credentials")
APP_NAME = Option("DASH_AUTH_PLOTLY_APP_NAME", text, help="the app's file name on the Plotly server")
SHARING = Option("DASH_AUTH_PLOTLY_SHARING", one_of("private", "public", "secret", "anonymous"), "private",
                 help="private, public (any signed-in user), secret (share link) or anonymous (no sign-in)")
APP_URL = Option("DASH_AUTH_PLOTLY_APP_URL", text, help="the app's public URL, recorded with its file")
USERNAME = Option("PLOTLY_USERNAME", text, help="the app owner's Plotly username (API calls)")
API_KEY = Option("PLOTLY_API_KEY", text, secret=True, help="the app owner's Plotly API key")
TIMEOUT = Option("DASH_AUTH_PLOTLY_TIMEOUT", seconds, 5)

FILE_TTL = 300.0  # seconds before the app's file (sharing, share_key) is read again


class PlotlyConnector(RedirectConnector):
    name = "plotly"
    display_name = "Plotly"
    options = (DOMAIN, API_DOMAIN, CLIENT_ID, APP_NAME, SHARING, APP_URL, USERNAME, API_KEY, TIMEOUT)

    def __init__(self, app_name: str, *, sharing: str = "private", domain: str = "https://plot.ly",
                 api_domain: str | None = None, client_id: str | None = None, app_url: str | None = None,
                 username: str | None = None, api_key: Secret | str | None = None, timeout: int = 5) -> None:
        if not app_name:
            raise ConfigurationError("DASH_AUTH_PLOTLY_APP_NAME is not set: use the app's name on the Plotly server")
        if not username or not api_key:
            raise ConfigurationError("PLOTLY_USERNAME and PLOTLY_API_KEY (or _FILE) are not set: the plotly "
                                     "connector needs the app owner's API credentials, as PlotlyAuth did")
        for option, url in ((DOMAIN, domain), (API_DOMAIN, api_domain)):  # from_settings parsed them; code may not
            if url is not None:
                try:
                    http_url(url)
                except ValueError as exc:
                    raise ConfigurationError(f"{option.name}={url!r} is not valid: use {exc}") from None
        self.app_name = app_name.strip("/")
        self.sharing = sharing
        self.domain = domain.rstrip("/")
        self.api_domain = (api_domain or domain).rstrip("/")
        self.app_url = app_url
        self.api_auth = (username, api_key.reveal() if isinstance(api_key, Secret) else api_key)
        self.timeout = timeout
        self.configured_client_id = client_id
        self._clients: dict[str, OAuthClient] = {}  # by redirect URI, when registered here
        self._file: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._probe = Probe(self._reach)

    @classmethod
    def from_settings(cls, settings: Settings) -> "PlotlyConnector":
        return cls(settings.get(APP_NAME), sharing=settings.get(SHARING), domain=settings.get(DOMAIN),
                   api_domain=settings.get(API_DOMAIN),
                   client_id=settings.get(CLIENT_ID), app_url=settings.get(APP_URL),
                   username=settings.get(USERNAME), api_key=settings.get(API_KEY), timeout=settings.get(TIMEOUT))

    def privacy_level(self) -> str:
        return "unauthorized" if self.sharing == "anonymous" else "authorized"

    # -- the Plotly API, as the app's owner --------------------------------------------------

    def _api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.api_domain + path
        try:
            response = requests.request(method, url, auth=self.api_auth, timeout=self.timeout,
                                        headers={"Plotly-Client-Platform": "dash-enterprise-auth"}, **kwargs)
        except requests.RequestException as exc:
            raise ProviderUnavailable(log_detail=f"{url}: {describe(exc)}") from None
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise ProviderUnavailable(log_detail=f"{method} {url} answered {response.status_code}: "
                                                 f"{response.text[:200]} (check PLOTLY_USERNAME/PLOTLY_API_KEY)")
        return response

    def app_file(self) -> dict[str, Any]:
        """The app's file on the Plotly server, created or brought in line with ``sharing``."""
        with self._lock:
            if self._file and time.monotonic() - self._file[0] < FILE_TTL:
                return self._file[1]
        wanted = {"world_readable": self.sharing in ("public", "anonymous"),
                  "share_key_enabled": self.sharing == "secret"}
        found = self._api("GET", "/v2/files/lookup", params={"path": self.app_name})
        if found.status_code == 404:
            body = {"filename": self.app_name, **wanted, **({"app_url": self.app_url} if self.app_url else {})}
            answer = self._api("POST", "/v2/dash-apps", json=body)
        elif any(_json(found).get(k) != v for k, v in wanted.items()):
            answer = self._api("PATCH", f"/v2/dash-apps/{_json(found).get('fid')}", json=wanted)
        else:
            answer = found
        file = _json(answer).get("file", _json(answer))
        if answer.status_code not in (200, 201) or not file.get("fid"):
            raise ProviderUnavailable(log_detail=f"the app's file {self.app_name!r} could not be read or created "
                                                 f"({answer.status_code}: {answer.text[:200]})")
        with self._lock:
            self._file = (time.monotonic(), file)
        return file

    def _client(self, redirect_uri: str) -> OAuthClient:
        """The OAuth client: configured, or registered for this redirect URI as PlotlyAuth did."""
        if self.configured_client_id:
            return OAuthClient(self.configured_client_id, None, timeout=self.timeout)
        with self._lock:
            client = self._clients.get(redirect_uri)
        if client is None:
            answer = self._api("POST", "/v2/oauth-apps/update_or_create", json={
                "name": self.app_name, "client_type": "public", "authorization_grant_type": "authorization-code",
                "redirect_uris": redirect_uri})
            client_id = _json(answer).get("client_id")
            if answer.status_code not in (200, 201) or not client_id:
                raise ProviderUnavailable(log_detail=f"registering the OAuth client failed ({answer.status_code}: "
                                                     f"{answer.text[:200]}); set DASH_AUTH_PLOTLY_CLIENT_ID")
            client = OAuthClient(client_id, None, timeout=self.timeout)
            with self._lock:
                self._clients[redirect_uri] = client
        return client

    # -- signing in ----------------------------------------------------------------------------

    def login(self, request: ProviderRequest, state: str) -> Redirect:
        client = self._client(request.callback_url)
        redirect = client.authorize(self.domain + "/o/authorize/", request, state, "read")
        return Redirect(redirect.url, {**redirect.pending, "client_id": client.client_id})

    def complete(self, request: ProviderRequest, pending: Mapping[str, Any]) -> Identity:
        client = OAuthClient(pending_text(pending, "client_id"), None, timeout=self.timeout)
        token = client.exchange(self.domain + "/o/token/", request, pending)
        status, user = client.get_json(self.api_domain + "/v2/users/current", token)
        if status != 200 or not isinstance(user, dict) or not isinstance(user.get("username"), str):
            raise ProviderRefused(log_detail=f"/v2/users/current answered {status}")
        fid = self.app_file()["fid"]  # a world-readable file (public sharing) passes for every account
        status, _ = client.get_json(f"{self.api_domain}/v2/files/{fid}", token, ok=(200,))
        if status != 200:
            raise AccountLocked(
                f"Your Plotly account {user['username']} may not view this app. Ask its owner to share it "
                "with you.", log_detail=f"GET /v2/files/{fid} with the viewer's token answered {status}")
        return Identity(
            username=user["username"],
            email=user.get("email") if isinstance(user.get("email"), str) else None,
            attributes={"plotly_domain": self.domain},
            connector=self.name,
            private={"access_token": token["access_token"], "client_id": client.client_id},
        )

    def revalidate(self, identity: Identity) -> Identity:
        """``/v2/users/current`` with the viewer's token (refused: the token was revoked or the
        account disabled) and the app file's view check (refused: no longer shared with them)."""
        token, client_id = identity.private.get("access_token"), identity.private.get("client_id")
        if not isinstance(token, str) or not isinstance(client_id, str):
            return identity
        client = OAuthClient(client_id, None, timeout=self.timeout)
        bearer = {"access_token": token, "token_type": "Bearer"}
        status, user = client.get_json(self.api_domain + "/v2/users/current", bearer)
        if status in (401, 403):
            raise AccessRevoked(log_detail=f"/v2/users/current refused the viewer's token ({status})")
        if status != 200 or not isinstance(user, dict) or user.get("username") != identity.username:
            raise ProviderUnavailable(log_detail=f"/v2/users/current answered {status} without this person")
        fid = self.app_file()["fid"]
        status, _ = client.get_json(f"{self.api_domain}/v2/files/{fid}", bearer)
        if status != 200:
            raise AccessRevoked(log_detail=f"GET /v2/files/{fid} with the viewer's token answered {status}")
        return replace(identity, email=user.get("email") if isinstance(user.get("email"), str) else identity.email)

    def admits_share_key(self, share_key: str) -> bool:
        if self.sharing != "secret" or not share_key:
            return False
        try:
            expected = self.app_file().get("share_key") or ""
        except ProviderUnavailable:
            return False
        return bool(expected) and hmac.compare_digest(share_key.encode(), str(expected).encode())

    def sign_out(self, identity: Identity) -> None:
        token, client_id = identity.private.get("access_token"), identity.private.get("client_id")
        if token and client_id:
            OAuthClient(client_id, None, timeout=self.timeout).revoke(self.domain + "/Auth/o/revoke_token/", token)

    # -- health and check ------------------------------------------------------------------------

    def ping(self) -> None:
        """Health: the Plotly API answers the owner's credentials now; the app's file is kept in
        line with the sharing on the way."""
        self._probe()

    def _reach(self) -> None:
        self._api("GET", "/v2/users/current")
        self.app_file()

    def check(self, test_user: str | None = None) -> list[Finding]:
        try:
            file = self.app_file()
        except ProviderUnavailable as exc:
            return [Finding(False, f"plotly app file {self.app_name!r}: {exc.log_detail}")]
        return [
            Finding(True, f"plotly app file {self.app_name!r} on {self.api_domain}: fid {file['fid']}, "
                          f"sharing {self.sharing}"),
            Finding(True, "plotly redirect URI: https://<app host><routes prefix>_dash-auth/callback/plotly "
                          + ("(registered by the app at first sign-in)" if not self.configured_client_id
                             else f"(register it for client {self.configured_client_id})")),
        ]


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
