"""The connector interface: what every identity protocol gives the core.

A connector knows one protocol and nothing of Flask, Dash or sessions. It
gets plain values and returns an :class:`Identity`, or raises an
``AuthenticationError`` subclass whose ``user_message`` can be shown as is.

Two shapes, and optional capabilities the core looks for (:class:`ProviderSharing`,
:class:`ServiceMetadata`, :class:`SingleLogout`, :class:`BackChannelLogout`, :class:`Revalidates`) rather than
hooks every connector inherits:

* :class:`PasswordConnector` checks a username and password. The core offers
  it through the sign-in form and through HTTP Basic ``Authorization``
  headers, with throttling in front.
* :class:`RedirectConnector` sends the browser to an identity provider and
  turns what comes back into an identity (OAuth 2.0/OIDC, SAML). The core
  owns the round trip's state: a random single-use value the provider echoes
  back, the connector's pending data kept server-side under it, the binding
  to the browser that started it, and where the viewer goes afterwards.
* :class:`NegotiateConnector` accepts the token a browser sends by itself in an
  ``Authorization`` header when the sign-in route challenges it (HTTP
  Negotiate, RFC 4559: Kerberos single sign-on). The core sends the challenge,
  refuses a token used twice, and owns the page a browser without one sees.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

from ..errors import InvalidCredentials, ProviderRefused
from ..identity import Identity, logout_id
from ..settings import Option, Settings

__all__ = ["BackChannelLogout", "Connector", "Directory", "Finding", "Identity", "LogoutNotice", "Negotiated",
           "NegotiateConnector", "PasswordConnector", "ProviderRequest", "ProviderSharing", "Redirect",
           "RedirectConnector", "Revalidates", "ServiceMetadata", "SingleLogout", "answer_text", "logout_id", "pending_text",
           "text_credentials"]


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

    def sign_out(self, identity: Identity) -> None:
        """At logout, after the session ended: revoke what the provider handed out (best effort)."""

    def logout_url(self, identity: Identity, return_to: str) -> str | None:
        """Where to send the browser (``return_to`` is the absolute signed-out URL) to end
        the provider's session too, if anywhere."""
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

    def authenticate_from_memory(self, username: str, password: str) -> Identity | None:
        """What :meth:`authenticate` would return, when that is known without waiting on
        anything (no provider, no slow hash, no user code); else None, and then
        :meth:`authenticate` decides. Called on event loops: never wait here."""
        return None


def not_text(value: Any) -> str | None:
    """Why ``value`` is not text a person or a provider can send (``of type int``), or None when
    it is: a ``str`` that UTF-8 can carry (a lone surrogate cannot be hashed, escaped or sent)."""
    if not isinstance(value, str):
        return f"of type {type(value).__name__}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "with a lone surrogate"
    return None


def text_credentials(username: Any, password: Any) -> tuple[str, str]:
    """The username and password as a password connector may use them; anything that is not text
    (None, numbers, bytes or lists from code, lone surrogates) is InvalidCredentials, before any
    hashing or directory call could raise something else. Neither value is logged."""
    for what, value in (("username", username), ("password", password)):
        problem = not_text(value)
        if problem:
            raise InvalidCredentials(log_detail=f"the {what} is not text ({problem})")
    return username, password


def answer_text(request: ProviderRequest, name: str) -> str | None:
    """The text field ``name`` of a provider's answer (the query string of a GET, the form of a
    POST), None when absent. Anything else there (a list, a number, bytes, a lone surrogate) is
    not an answer a provider gives: ProviderRefused, saying what was found in the log."""
    fields = request.args if request.method == "GET" else request.form
    value = fields.get(name)
    problem = None if value is None else not_text(value)
    if problem:
        raise ProviderRefused(log_detail=f"the provider's answer has a {name} that is not text ({problem})")
    return value


def pending_text(pending: Mapping[str, Any], name: str) -> str:
    """A value the connector kept in its pending data at ``login``; ProviderRefused when it is
    missing or not text (pending data from another sign-in, another version, or none)."""
    value = pending.get(name)
    problem = "missing" if value is None or value == "" else not_text(value)
    if problem:
        raise ProviderRefused(log_detail=f"the sign-in's pending data has no usable {name} ({problem})")
    return value


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
    #: How the sign-in page names this method ("Sign in with ..."); DASH_AUTH_<NAME>_DISPLAY_NAME overrides it.
    display_name: ClassVar[str] = ""

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


@dataclass(frozen=True)
class Negotiated:
    """An accepted Negotiate token: who sent it, the token that goes back to the browser (mutual
    authentication, ``WWW-Authenticate: Negotiate <reply>``), and what the browser delegated: a
    ``kerberos.Ticket``, or a ``KerberosTicketUnavailable`` saying why there is none. A token may
    be used once: the connector puts its one-time id in ``identity.private["once"]`` (``id`` and
    ``until``, a time), which the core remembers in the session store and drops."""

    identity: Identity
    reply: bytes | None = None
    delegated: Any = None


class NegotiateConnector(Connector):
    """A connector that signs a browser in with the credentials it holds already.

    The core answers the sign-in route with ``401`` and ``WWW-Authenticate: <scheme>``; a browser
    that can answers with ``Authorization: <scheme> <base64 token>``, which the core decodes and
    hands to :meth:`accept` with the host name the browser used (the service it asked a ticket for).
    """

    scheme: ClassVar[str] = "Negotiate"

    @abstractmethod
    def accept(self, token: bytes, host: str) -> Negotiated:
        """The identity in ``token``; an AuthenticationError (never anything else) for a token that
        does not sign anyone in: garbage, truncated, forged, replayed, for another service."""


# -- optional capabilities ---------------------------------------------------------------------

@runtime_checkable
class ProviderSharing(Protocol):
    """The provider decides who may view the app (Plotly's sharing): the connector imposes the
    privacy level (``DASH_AUTH_PRIVACY`` is then refused) and may admit secret links."""

    def privacy_level(self) -> str:
        """``unauthorized`` or ``authorized``: the level the connector's own settings impose."""

    def admits_share_key(self, share_key: str) -> bool:
        """Whether a secret link's ``share_key`` lets a visitor in without signing in."""


@runtime_checkable
class ServiceMetadata(Protocol):
    """The provider's admin needs a document describing the app (SAML SP metadata), served at
    ``/_dash-auth/saml/metadata``."""

    def metadata_document(self, callback_url: str) -> str: ...


@runtime_checkable
class SingleLogout(Protocol):
    """The provider takes part in logout through ``/_dash-auth/saml/sls``: its answers to our
    logout, and its own requests to end sessions here (``end_sessions(name, logout_ids)``)."""

    def single_logout(self, request: ProviderRequest, end_sessions: Callable[[str, list[str]], None]) -> str: ...


@dataclass(frozen=True)
class LogoutNotice:
    """A provider's checked word that sign-ins ended there (a back-channel logout token).

    The core ends every session indexed under one of ``logout_ids`` (see
    ``Identity.logout_ids``), once: ``once_id`` is the notice's one-time id, remembered
    across workers and hosts until ``until`` (a time.time() value), after which the
    connector refuses the notice anyway. ``subject`` names the person for the audit line.
    """

    subject: str | None
    logout_ids: tuple[str, ...]
    once_id: str
    until: float


@runtime_checkable
class BackChannelLogout(Protocol):
    """The provider tells the app, server to server, that sign-ins ended (OpenID Connect
    Back-Channel Logout): ``/_dash-auth/backchannel-logout/<name>`` passes the POSTed form here."""

    def logout_notice(self, form: Mapping[str, str]) -> LogoutNotice:
        """The checked notice; ProviderRefused (saying why in ``log_detail``) for anything that is
        not one, ProviderUnavailable when the provider's keys cannot be fetched to check it."""


@runtime_checkable
class Directory(Protocol):
    """The connector can look a person up without their password (a directory's service
    account), so a sign-in by another method (a Kerberos ticket) gets the directory's groups."""

    def can_look_up(self) -> bool:
        """Whether lookups are configured (a service account); checked at start-up."""

    def look_up(self, username: str) -> Identity:
        """The person's identity and groups; InvalidCredentials when there is no such person,
        AccountLocked when the directory disables them, ServiceUnavailable when it does not answer."""


@runtime_checkable
class Revalidates(Protocol):
    """The provider can say, without the person, whether someone who signed in earlier is still
    allowed (a directory lookup, a refresh-token grant, an API call with their token). The core
    asks every ``DASH_AUTH_REVALIDATE_INTERVAL`` seconds per session."""

    def revalidate(self, identity: Identity) -> Identity:
        """The person's identity as the provider has it now (new groups, a rotated token in
        ``private``). AccessRevoked when the provider no longer lets them in (deleted, disabled,
        locked, grant revoked); ServiceUnavailable when it cannot tell now (the session goes on).
        The connector's own ``private`` entries and ``logout_ids`` may be returned as they were;
        the core keeps entries of others (a Kerberos ticket) and the logout ids."""
