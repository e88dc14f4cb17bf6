"""The sign-in methods of one app: one connector, or several (``DASH_AUTH_CONNECTOR=spnego,ldap``).

Two populations on one app (staff in the directory, partners at an OIDC
provider) need no second deployment: the sign-in page offers the password
form of the one password connector, a "Sign in with <name>" button per
redirect connector, and, with a Negotiate connector listed, signs a browser
holding a Kerberos ticket in before showing anything. The privacy rules are
the same whatever the method; logout ends a session with the method that
started it.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

from .connectors.base import (Connector, Directory, Identity, NegotiateConnector, PasswordConnector,
                              ProviderSharing, RedirectConnector)
from .errors import ConfigurationError
from .settings import Option, text

T = TypeVar("T")


def display_name_option(name: str) -> Option:
    return Option(f"DASH_AUTH_{name.upper()}_DISPLAY_NAME", text,
                  help=f'the {name} button on the sign-in page: "Sign in with <this>"')


def check_list(kinds: Sequence[type[Connector]]) -> None:
    """Refuse a list of connector classes that cannot work together, before any is built."""
    if not kinds:
        raise ConfigurationError("DASH_AUTH_CONNECTOR lists no connector")
    names = [k.name for k in kinds]
    listed = ",".join(names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigurationError(f"DASH_AUTH_CONNECTOR={listed!r} lists {', '.join(repeated)} twice")
    passwords = [k.name for k in kinds if issubclass(k, PasswordConnector)]
    if len(passwords) > 1:
        raise ConfigurationError(
            f"DASH_AUTH_CONNECTOR={listed!r} lists two password connectors ({', '.join(passwords)}); "
            "the sign-in form has one username and password: keep one")
    negotiates = [k.name for k in kinds if issubclass(k, NegotiateConnector)]
    if len(negotiates) > 1:
        raise ConfigurationError(f"DASH_AUTH_CONNECTOR={listed!r} lists {', '.join(negotiates)}: keep one")
    sharing = [k.name for k in kinds if issubclass(k, ProviderSharing)]
    if sharing and len(kinds) > 1:
        raise ConfigurationError(
            f"DASH_AUTH_CONNECTOR={listed!r}: the {sharing[0]} connector decides who may view the app from "
            "its provider's sharing settings, which other methods cannot follow: use it alone")


class SignInMethods:
    """The app's connectors, in the order ``DASH_AUTH_CONNECTOR`` lists them."""

    def __init__(self, connectors: Sequence[Connector], labels: dict[str, str] | None = None) -> None:
        check_list([type(c) for c in connectors])
        self.all: tuple[Connector, ...] = tuple(connectors)
        self.primary = self.all[0]
        self.password = next((c for c in self.all if isinstance(c, PasswordConnector)), None)
        self.negotiate = next((c for c in self.all if isinstance(c, NegotiateConnector)), None)
        self.redirects = tuple(c for c in self.all if isinstance(c, RedirectConnector))
        self.directory = self._directory()
        self.labels = {c.name: (labels or {}).get(c.name) or c.display_name or c.name for c in self.redirects}

    def _directory(self) -> Directory | None:
        """With a Negotiate connector, the listed directory that gives ticket sign-ins their groups."""
        if self.negotiate is None:
            return None
        directory = next((c for c in self.all if isinstance(c, Directory)), None)
        if directory is not None and not directory.can_look_up():
            raise ConfigurationError(
                f"DASH_AUTH_CONNECTOR lists {self.negotiate.name} and {getattr(directory, 'name', 'a directory')}: "
                "Kerberos sign-ins read their groups from the directory with its service account, so set "
                "DASH_AUTH_LDAP_BIND_DN and DASH_AUTH_LDAP_BIND_PASSWORD")
        return directory

    @property
    def names(self) -> str:
        return ",".join(c.name for c in self.all)

    def named(self, name: str) -> Connector | None:
        return next((c for c in self.all if c.name == name), None)

    def first(self, kind: type[T]) -> T | None:
        """The first connector with a capability (SAML metadata, single logout)."""
        return next((c for c in self.all if isinstance(c, kind)), None)

    def of(self, identity: Identity) -> Connector:
        """The connector that signed ``identity`` in (logout goes back to it)."""
        return self.named(identity.connector) or self.primary

    def offers_choice(self) -> bool:
        """Whether the sign-in page has something to choose (else a single redirect connector
        sends the browser straight to its provider)."""
        return self.password is not None or self.negotiate is not None or len(self.redirects) > 1
