"""A real OpenID Connect provider (panva's certified ``oidc-provider``, npm) on a free loopback port.

Tests sign in through it the way a person does: the authorization endpoint sends the
browser (or a ``requests.Session``) to a password form, and a correct password comes
back to the client's ``redirect_uri`` with a code. Its signing key is made here, so a
test can rotate it (``rotate_keys()``) or forge tokens with it (``private_jwk()``).
State (sessions, codes, grants) lives in the node process: a restart forgets it.

The node side is ``oidc_provider/provider.mjs``; ``scripts/install-test-servers``
installs its pinned packages.
"""
from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from .app_server import free_port, stop_process

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"

ACCOUNTS: list[dict] = [
    {"sub": "alice", "username": "alice", "password": "alice-password", "email": "alice@example.org",
     "name": "Alice Liddell", "groups": ["analysts", "staff"], "locked": False},
    {"sub": "bob", "username": "bob", "password": "bob-password", "email": "bob@example.org",
     "name": "Bob Builder", "groups": ["staff"], "locked": False},
    {"sub": "locked", "username": "locked", "password": "locked-password", "email": "locked@example.org",
     "name": "Locked Out", "groups": ["analysts"], "locked": True},
]


def client(client_id: str, redirect_uri: str, post_logout_redirect_uri: str, secret: str | None = None,
           *, auth_method: str = "client_secret_basic", refresh_tokens: bool = False,
           backchannel_logout_uri: str | None = None, backchannel_sid: bool = True) -> dict:
    """Client metadata for a confidential web client using the code flow.

    ``backchannel_logout_uri``: where the provider POSTs a logout token when the person signs
    out at the provider (OpenID Connect Back-Channel Logout); ``backchannel_sid``: with the
    session's ``sid`` in ID tokens and logout tokens, else logout tokens name only ``sub``.
    """
    metadata = {
        "client_id": client_id,
        "client_secret": secret or secrets.token_urlsafe(24),
        "redirect_uris": [redirect_uri],
        "post_logout_redirect_uris": [post_logout_redirect_uri],
        "token_endpoint_auth_method": auth_method,
        "grant_types": ["authorization_code"] + (["refresh_token"] if refresh_tokens else []),
        "response_types": ["code"],
    }
    if backchannel_logout_uri:
        metadata["backchannel_logout_uri"] = backchannel_logout_uri
        metadata["backchannel_logout_session_required"] = backchannel_sid
    return metadata


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def new_signing_key() -> dict:
    """A private RSA 2048 JWK with a random kid, for RS256 signatures."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    public = numbers.public_numbers
    return {"kty": "RSA", "kid": secrets.token_urlsafe(12), "alg": "RS256", "use": "sig",
            "n": _b64(public.n), "e": _b64(public.e), "d": _b64(numbers.d), "p": _b64(numbers.p),
            "q": _b64(numbers.q), "dp": _b64(numbers.dmp1), "dq": _b64(numbers.dmq1), "qi": _b64(numbers.iqmp)}


@dataclass
class OidcProvider:
    folder: Path
    clients: list[dict]
    accounts: list[dict] = field(default_factory=lambda: [dict(a) for a in ACCOUNTS])
    port: int = field(default_factory=free_port)
    ttl: dict | None = None  # seconds by oidc-provider model name: IdToken, AccessToken, AuthorizationCode...
    require_pkce: bool = True
    claims_in_userinfo_only: bool = False  # like providers that keep profile claims out of the ID token
    rotate_refresh_tokens: bool = False  # a new refresh token at every use (the old one then revokes the grant)
    signing_keys: dict = field(default_factory=lambda: {"keys": [new_signing_key()]})
    process: subprocess.Popen | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def log_path(self) -> Path:
        return Path(self.folder) / "oidc-provider.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def private_jwk(self) -> dict:
        """The key the provider signs with now (private parts included)."""
        return dict(self.signing_keys["keys"][0])

    def public_jwks(self) -> dict:
        """The JWK set the provider publishes (public parts only)."""
        return {"keys": [{k: v for k, v in key.items() if k in ("kty", "kid", "alg", "use", "n", "e")}
                         for key in self.signing_keys["keys"]]}

    def start(self) -> OidcProvider:
        node = shutil.which("node")
        if node is None or not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("node or oidc-provider is missing: run scripts/install-test-servers")
        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        config_path = folder / "oidc-provider.json"
        config = {"port": self.port, "issuer": self.issuer, "clients": self.clients, "accounts": self.accounts,
                  "jwks": self.signing_keys, "require_pkce": self.require_pkce,
                  "claims_in_userinfo_only": self.claims_in_userinfo_only,
                  "rotate_refresh_tokens": self.rotate_refresh_tokens}
        if self.ttl:
            config["ttl"] = self.ttl
        config_path.write_text(json.dumps(config))
        config_path.chmod(0o600)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the file
            self.process = subprocess.Popen([node, str(PROVIDER_DIR / "provider.mjs"), str(config_path)],
                                            cwd=PROVIDER_DIR, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(self.discovery_url, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"oidc-provider did not start:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def set_clients(self, *clients: dict) -> None:
        """Register these clients instead (restarting on the same port if running).

        For an app whose redirect_uri is known only once it runs, after the provider.
        """
        self.clients = list(clients)
        if self.process is not None:
            self.stop()
            self.start()

    def rotate_keys(self, keep_old: bool = False) -> None:
        """Sign with a new key (new kid) from now on: restarts on the same port.

        ``keep_old`` keeps publishing the previous key after the new one, as a
        provider does during a rotation; otherwise it vanishes from the JWKS.
        The restart forgets the provider's sessions, codes and refresh tokens.
        """
        keys = [new_signing_key()] + (self.signing_keys["keys"] if keep_old else [])
        self.signing_keys = {"keys": keys}
        self.stop()
        self.start()


# -- driving the provider's pages with requests ---------------------------------------


class _Forms(HTMLParser):
    """Every <form> of a page: its action, method, named inputs and buttons (by form= too)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = {"id": a.get("id"), "action": a.get("action", ""), "method": a.get("method", "get").lower(),
                          "fields": {}, "buttons": {}}
            self.forms.append(self._open)
            return
        if tag not in ("input", "button") or "name" not in a:
            return
        owner = self._open
        if "form" in a:
            owner = next((f for f in self.forms if f["id"] == a["form"]), owner)
        if owner is None:
            return
        kind = a.get("type", "submit" if tag == "button" else "text").lower()
        if kind == "submit":
            owner["buttons"][a["name"]] = a.get("value", "")
        else:
            owner["fields"][a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def _form(page: requests.Response, must_have: str) -> dict:
    parser = _Forms()
    parser.feed(page.text)
    for form in parser.forms:
        if must_have in form["fields"] or must_have in form["buttons"]:
            return form
    raise AssertionError(f"no form with {must_have!r} at {page.url} (HTTP {page.status_code}):\n{page.text[:2000]}")


def _follow(http: requests.Session, response: requests.Response, origin: str) -> requests.Response:
    """Follow redirects while they stay at ``origin`` (host:port); return the first that leaves, unfollowed."""
    for _ in range(10):
        location = response.headers.get("Location")
        if not response.is_redirect or not location:
            return response
        target = urljoin(response.url, location)
        if urlsplit(target).netloc != origin:
            return response
        response = http.get(target, allow_redirects=False)
    raise AssertionError(f"too many redirects from {response.url}")


def get_at_provider(http: requests.Session, url: str) -> requests.Response:
    """GET a provider URL (say the authorization request), following only the provider's own redirects.

    Returns the sign-in form, or, when ``http`` is already signed in at the provider,
    the redirect back to the client (its ``Location`` has code and state).
    """
    return _follow(http, http.get(url, allow_redirects=False), urlsplit(url).netloc)


def _submit(http: requests.Session, page: requests.Response, form: dict, data: dict,
            stop_at_client: bool) -> requests.Response:
    """POST the form, then follow redirects only while they stay at the page's origin.

    The first redirect elsewhere (to the client's redirect_uri or post_logout_redirect_uri)
    is returned unfollowed, so a test can read its Location without anything listening
    there; ``stop_at_client=False`` follows everything, as a browser would.
    """
    url = urljoin(page.url, form["action"])
    if not stop_at_client:
        return http.post(url, data=data, allow_redirects=True)
    return _follow(http, http.post(url, data=data, allow_redirects=False), urlsplit(page.url).netloc)


def submit_login(http: requests.Session, login_page: requests.Response, username: str, password: str,
                 *, stop_at_client: bool = True) -> requests.Response:
    """Fill in and send the provider's sign-in form found in ``login_page``.

    Returns the redirect back to the client (``Location`` has code and state) when the
    password is right, or the form again (HTTP 200, "Invalid username or password" or
    "Account locked") when it is refused.
    """
    form = _form(login_page, "password")
    data = {**form["fields"], "username": username, "password": password, "login": form["buttons"].get("login", "1")}
    return _submit(http, login_page, form, data, stop_at_client)


def cancel_login(http: requests.Session, login_page: requests.Response, *,
                 stop_at_client: bool = True) -> requests.Response:
    """Press Cancel on the sign-in form: the client gets ``error=access_denied``."""
    form = _form(login_page, "cancel")
    return _submit(http, login_page, form, {**form["fields"], "cancel": "1"}, stop_at_client)


def confirm_logout(http: requests.Session, page: requests.Response, *,
                   stop_at_client: bool = True) -> requests.Response:
    """Answer "Sign out" on the page the end_session_endpoint showed.

    Works on the confirmation page (a signed-in provider session) and on the
    self-submitting page oidc-provider sends when it has no session. Returns the
    redirect to post_logout_redirect_uri (with state), or the provider's own
    "Sign-out Success" page when the request named no post_logout_redirect_uri.
    """
    form = _form(page, "xsrf")
    return _submit(http, page, form, {**form["fields"], "logout": "yes"}, stop_at_client)
