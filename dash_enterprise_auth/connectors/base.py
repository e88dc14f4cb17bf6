"""The connector interface: what every identity protocol gives the core.

A connector knows one protocol and nothing of Flask, Dash or sessions. It
gets plain values and returns an :class:`Identity`, or raises an
``AuthenticationError`` subclass whose ``user_message`` can be shown as is.

Two shapes:

* :class:`PasswordConnector` checks a username and password. The core offers
  it through the sign-in form and through HTTP Basic ``Authorization``
  headers, with throttling in front.
* :class:`RedirectConnector` sends the browser to an identity provider and
  turns what comes back into an identity (OAuth 2.0/OIDC, SAML). The core
  owns the round trip's state: a random single-use value the provider echoes
  back, the connector's pending data kept server-side under it, the binding
  to the browser that started it, and where the viewer goes afterwards.
"""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

from ..settings import Option, Settings


@dataclass(frozen=True)
class Identity:
    """Who signed in, as the identity provider says. JSON-safe.

    ``groups`` are names for people (``analysts``); ``group_ids`` are the same
    groups' unambiguous identifiers where the provider has them (LDAP DNs), so
    an operator can allow a group by either. ``private`` is the connector's own
    data kept with the session (an ID token for the provider's logout, a token
    to revoke); it never reaches the app, ``get_user_data()`` or hooks.
    ``logout_ids`` are the names under which the provider may later ask to end
    this sign-in (SAML NameID and SessionIndex, made with :func:`logout_id`);
    the session store indexes sessions by them.
    """

    username: str
    email: str | None = None
    display_name: str | None = None
    groups: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    connector: str = ""
    private: Mapping[str, Any] = field(default_factory=dict, repr=False)
    logout_ids: tuple[str, ...] = ()

    def public_dict(self) -> dict[str, Any]:
        """What app code may see (``is_authorized_hook``): everything but ``private``."""
        data = self.to_dict()
        del data["private"], data["logout_ids"]
        return data

    def to_dict(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "email": self.email,
            "display_name": self.display_name,
            "groups": list(self.groups),
            "group_ids": list(self.group_ids),
            "attributes": dict(self.attributes),
            "connector": self.connector,
            "private": dict(self.private),
            "logout_ids": list(self.logout_ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Identity":
        return cls(
            username=str(data["username"]),
            email=data.get("email"),
            display_name=data.get("display_name"),
            groups=tuple(str(g) for g in data.get("groups") or ()),
            group_ids=tuple(str(g) for g in data.get("group_ids") or ()),
            attributes=dict(data.get("attributes") or {}),
            connector=str(data.get("connector") or ""),
            private=dict(data.get("private") or {}),
            logout_ids=tuple(str(i) for i in data.get("logout_ids") or ()),
        )


def logout_id(connector: str, *names: str) -> str:
    """A session index entry for ``names`` (a NameID, a SessionIndex), hashed so the store holds
    no provider identifiers and any value is a safe key."""
    digest = hashlib.sha256(json.dumps([connector, *names]).encode()).hexdigest()
    return f"{connector}:{digest}"


@dataclass(frozen=True)
class Finding:
    """One line of ``python -m dash_enterprise_auth check``."""

    ok: bool
    message: str


class Connector(ABC):
    """Base of every connector; ``name`` is its ``DASH_AUTH_CONNECTOR`` value."""

    name: ClassVar[str]
    options: ClassVar[Sequence[Option]] = ()

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> "Connector":
        """Build from settings; raise ConfigurationError at start-up on a bad value."""

    def privacy_level(self) -> str | None:
        """A privacy level this connector's own settings impose (Plotly's sharing), or None
        for DASH_AUTH_PRIVACY."""
        return None

    def admits_share_key(self, share_key: str) -> bool:
        """Whether a secret link's ``share_key`` lets a visitor in without signing in."""
        return False

    def sign_out(self, identity: Identity) -> None:
        """At logout, after the session ended: revoke what the provider handed out (best effort)."""

    def logout_url(self, identity: Identity, return_to: str) -> str | None:
        """Where to send the browser (``return_to`` is the absolute signed-out URL) to end
        the provider's session too, if anywhere."""
        return None

    def metadata_document(self, callback_url: str) -> str | None:
        """An XML document that describes the app to the provider (SAML SP metadata), or None."""
        return None

    def ping(self) -> None:
        """Raise ServiceUnavailable when the provider does not answer (health route)."""

    def check(self, test_user: str | None = None) -> list[Finding]:
        """Findings for the ``check`` command: can this connector work as configured?
        ``test_user`` (``check --user NAME``) asks to look that person up, where the
        protocol allows it without their password."""
        return []


@dataclass(frozen=True)
class ProviderRequest:
    """What a redirect connector sees of a browser request: plain values, no framework."""

    method: str
    args: Mapping[str, str]  # query string
    form: Mapping[str, str]  # POST body fields
    callback_url: str  # absolute URL of /_dash-auth/callback/<name>, as registered at the provider
    client: str  # client address


@dataclass(frozen=True)
class Redirect:
    """Send the browser to ``url``; keep ``pending`` (JSON-safe) until it comes back."""

    url: str
    pending: Mapping[str, Any] = field(default_factory=dict)


class PasswordConnector(Connector):
    """A connector that verifies a username and password."""

    @abstractmethod
    def authenticate(self, username: str, password: str) -> Identity:
        """The identity for these credentials, or raise InvalidCredentials (or another
        AuthenticationError). An empty password must never succeed."""


class RedirectConnector(Connector):
    """A connector that signs people in at an identity provider and back.

    ``state_field`` names the query or form field in which the provider
    echoes the core's state value (OAuth's ``state``, SAML's ``RelayState``).
    ``binds_browser`` makes the core refuse a callback from a browser other
    than the one that started the sign-in; a provider that answers with a
    cross-site POST (SAML) cannot carry the SameSite cookie that proves it and
    sets it to False, relying on its signed, single-use response instead.
    """

    state_field: ClassVar[str] = "state"
    binds_browser: ClassVar[bool] = True

    def accepts_unsolicited(self) -> bool:
        """Whether a provider's answer that no sign-in here started may sign someone in (SAML
        IdP-initiated SSO, when the operator turns it on); then ``complete`` gets no pending data."""
        return False

    @abstractmethod
    def login(self, request: ProviderRequest, state: str) -> Redirect:
        """Where to send the browser to sign in; ``state`` must come back in ``state_field``."""

    @abstractmethod
    def complete(self, request: ProviderRequest, pending: Mapping[str, Any]) -> Identity:
        """The identity from the provider's answer, checked against ``pending``; raise an
        AuthenticationError (never anything else) for any answer that is not a valid sign-in."""
