"""Who signed in: the one value every connector produces and the core keeps with the session."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping


@dataclass(frozen=True)
class Identity:
    """Who signed in, as the identity provider says. JSON-safe.

    ``groups`` are names for people (``analysts``); ``group_ids`` are the same
    groups' unambiguous identifiers where the provider has them (LDAP DNs), so
    an operator can allow a group by either. ``private`` is the connector's own
    data kept with the session (an ID token for the provider's logout, a token
    to revoke); it never reaches the app, ``get_user_data()`` or hooks.
    ``logout_ids`` are the names under which the provider may later ask to end
    this sign-in (SAML NameID and SessionIndex, OpenID Connect ``sub`` and ``sid``,
    made with :func:`logout_id`); the session store indexes sessions by them.
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

    @cached_property
    def folded_groups(self) -> frozenset[str]:
        """Group names and ids, case-folded once (an identity lives as long as its session's
        record in memory, and every request asks whether it is in an allowed group)."""
        return frozenset(g.casefold() for g in (*self.groups, *self.group_ids))

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
