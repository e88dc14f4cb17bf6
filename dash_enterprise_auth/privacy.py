"""Who may see a path: one pure function of (policy, identity, path).

The guard asks :func:`decide` on every request; it reads no request, store
or global, so it is tested as a table.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

from werkzeug.routing import Map, Rule
from werkzeug.exceptions import HTTPException

from .identity import Identity

PACKAGE_ROUTES = "/_dash-auth/"


class PrivacyLevel(str, enum.Enum):
    UNAUTHORIZED = "unauthorized"  # public; sign-in optional
    AUTHORIZED = "authorized"  # any signed-in user
    RESTRICTED = "restricted"  # listed users or groups only


class Decision(enum.Enum):
    ALLOW = "allow"
    SIGN_IN = "sign_in"  # no identity: send the viewer to sign in
    FORBIDDEN = "forbidden"  # signed in, but not allowed here


class PublicPaths:
    """Paths anyone may reach, written in Flask's route syntax (``/docs/<path:p>``)."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(patterns)
        self._map = Map([Rule(p, endpoint=p) for p in self.patterns]).bind("") if self.patterns else None

    def __contains__(self, path: str) -> bool:
        if self._map is None:
            return False
        try:
            self._map.match(path, method="GET")
        except HTTPException:
            return False
        return True


@dataclass(frozen=True)
class Policy:
    level: PrivacyLevel = PrivacyLevel.RESTRICTED
    allowed_users: frozenset[str] = frozenset()
    allowed_groups: frozenset[str] = frozenset()
    public_paths: PublicPaths = field(default_factory=PublicPaths)
    routes_prefix: str = "/"

    @classmethod
    def build(
        cls,
        level: str | PrivacyLevel,
        allowed_users: Iterable[str] = (),
        allowed_groups: Iterable[str] = (),
        public_paths: Iterable[str] = (),
        routes_prefix: str = "/",
    ) -> "Policy":
        """Names are compared case-insensitively, as directories and IdPs do."""
        return cls(
            PrivacyLevel(level),
            frozenset(u.casefold() for u in allowed_users),
            frozenset(g.casefold() for g in allowed_groups),
            PublicPaths(public_paths),
            routes_prefix,
        )

    def allows(self, identity: Identity) -> bool:
        """Whether this signed-in identity may see the app (ignores the path)."""
        if self.level is not PrivacyLevel.RESTRICTED:
            return True
        if identity.username.casefold() in self.allowed_users:
            return True
        return not self.allowed_groups.isdisjoint(identity.folded_groups)

    @cached_property
    def package_routes(self) -> str:
        return self.routes_prefix.rstrip("/") + PACKAGE_ROUTES


def decide(policy: Policy, identity: Identity | None, path: str) -> Decision:
    """The package's own routes and public paths are open; the rest follows the level."""
    if path.startswith(policy.package_routes) or path in policy.public_paths:
        return Decision.ALLOW
    if policy.level is PrivacyLevel.UNAUTHORIZED:
        return Decision.ALLOW
    if identity is None:
        return Decision.SIGN_IN
    return Decision.ALLOW if policy.allows(identity) else Decision.FORBIDDEN
