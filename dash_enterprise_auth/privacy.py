"""Who may see a path: one pure function of (policy, identity, path, pages).

The guard asks :func:`decide` on every request; it reads no request, store
or global, so it is tested as a table. A multi-page Dash app adds its
:class:`Pages`: rules per page, and the routes of Dash itself (the page shell:
layout, callbacks, scripts), which must open to whoever may open any page.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Iterable, Mapping

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

    def decide(self, identity: Identity | None) -> Decision:
        """The app-wide rule, for a path that no page rule covers."""
        if self.level is PrivacyLevel.UNAUTHORIZED:
            return Decision.ALLOW
        if identity is None:
            return Decision.SIGN_IN
        return Decision.ALLOW if self.allows(identity) else Decision.FORBIDDEN

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


@dataclass(frozen=True)
class PageRule:
    """Who may open one page: anyone, signed in or not (``public``), or the listed people only."""

    public: bool = False
    allowed_users: frozenset[str] = frozenset()
    allowed_groups: frozenset[str] = frozenset()

    @classmethod
    def build(cls, public: bool = False, allowed_users: Iterable[str] = (),
              allowed_groups: Iterable[str] = ()) -> "PageRule":
        return cls(public, frozenset(u.casefold() for u in allowed_users),
                   frozenset(g.casefold() for g in allowed_groups))

    def decide(self, identity: Identity | None) -> Decision:
        if self.public:
            return Decision.ALLOW
        if identity is None:
            return Decision.SIGN_IN
        if identity.username.casefold() in self.allowed_users:
            return Decision.ALLOW
        return Decision.FORBIDDEN if self.allowed_groups.isdisjoint(identity.folded_groups) else Decision.ALLOW


@dataclass(frozen=True)
class Pages:
    """The page rules of a multi-page Dash app.

    ``rules`` maps a page (its module name in ``dash.page_registry``) to its
    rule; pages without one follow the app-wide policy. ``page_at`` names the
    page a route path shows, as Dash's router would. ``shell`` are the route
    prefixes of Dash's own machinery (layout, dependencies, callbacks, scripts,
    assets): anyone who may open some page needs them, and each callback is
    then checked against its own page's rule when it runs. ``open_callbacks``:
    the app has callbacks marked public, so anonymous viewers need the shell too.
    """

    rules: Mapping[str, PageRule]
    page_at: Callable[[str], str | None]
    shell: tuple[str, ...]
    open_callbacks: bool = False

    def rule(self, policy: Policy, page: str | None) -> PageRule | Policy:
        return self.rules.get(page, policy) if page is not None else policy

    def opens_some_page(self, policy: Policy, identity: Identity | None) -> bool:
        if identity is None and self.open_callbacks:
            return True
        return any(rule.decide(identity) is Decision.ALLOW for rule in self.rules.values())

    def decide(self, policy: Policy, identity: Identity | None, path: str) -> Decision:
        if path.startswith(self.shell):
            decision = policy.decide(identity)
            if decision is Decision.ALLOW or not self.opens_some_page(policy, identity):
                return decision
            return Decision.ALLOW
        return self.rule(policy, self.page_at(path)).decide(identity)


def decide(policy: Policy, identity: Identity | None, path: str, pages: Pages | None = None) -> Decision:
    """The package's own routes and public paths are open; then the page's rule, else the app's."""
    if path.startswith(policy.package_routes) or path in policy.public_paths:
        return Decision.ALLOW
    if pages is not None:
        return pages.decide(policy, identity, path)
    return policy.decide(identity)
