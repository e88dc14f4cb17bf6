"""Re-validation: a signed-in person's access is asked of the provider again, every interval.

Without it, someone disabled or taken out of a group at the provider keeps their session
until it ends (``DASH_AUTH_SESSION_MAX_AGE``). With it, the first request of a session
whose record was last validated ``DASH_AUTH_REVALIDATE_INTERVAL`` seconds ago or more asks
the connector (:class:`~.connectors.base.Revalidates`), on the request path, with the
provider's own timeout:

* the provider says the person is gone (AccessRevoked): the session ends on every worker
  and host, and the request is answered as one without a session (sign-in, or 401);
* it gives a fresh identity: the record takes it (new groups, a rotated refresh token) with
  a compare-and-set on ``validated_at``, and the privacy decision of this very request uses
  it (taken out of the allowed groups: 403);
* it cannot tell now (ServiceUnavailable): the session goes on as it was (fail open; sign-in
  itself still fails closed), and it is asked again after a short back-off.

A session not due costs one float comparison. Only one worker asks at a time for a given
session and validation: the first takes a claim in the session store (``remember_once``),
which also holds the others off for the back-off after a failure.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import replace

from typing import Callable

from .audit import audit
from .blocking import refuse_io
from .connectors.base import Revalidates
from .errors import AccessRevoked, AuthenticationError
from .identity import Identity
from .methods import SignInMethods
from .session import SessionLayer
from .stores import SessionRecord

log = logging.getLogger("dash_enterprise_auth")

BACKOFF = 30.0  # seconds before a session whose provider did not answer is asked about again
HELD_MAX = 4096  # sessions this process remembers not to ask about yet


class Revalidation:
    """When and how one app re-validates its sessions; ``every`` is inf when it never does."""

    def __init__(self, methods: SignInMethods, sessions: SessionLayer, interval: int) -> None:
        self.methods = methods
        self.sessions = sessions
        asks = any(isinstance(c, Revalidates) for c in methods.all)
        self.every = float(interval) if interval > 0 and asks else math.inf
        # Never longer than the interval: a test (or a strict operator) with a 5 s interval expects
        # a provider back after an outage to be asked within about that.
        self.backoff = min(BACKOFF, self.every)
        self._held: dict[str, float] = {}  # record key -> time before which this process does not ask

    def due(self, record: SessionRecord, now: float) -> bool:
        return now - record.validated_at >= self.every

    def revalidated(self, record: SessionRecord, now: float) -> SessionRecord | None:
        """The record to serve a due session's request with (updated in place when the provider
        answered), or None when the provider ended the person's access."""
        if self._held.get(record.key, 0.0) > now:
            return record
        identity = record.as_identity()
        ask = self._asker(identity)
        if ask is None:  # signed in by a method with no back channel (saml beside ldap): its max age applies
            self._hold(record.key, now, self.every)
            return record
        refuse_io("re-validating a session at the identity provider")
        claim = f"revalidate:{record.key}:{record.validated_at!r}"
        if not self.sessions.store.remember_once(claim, self.backoff):
            self._hold(record.key, now)  # another worker asks now, or asked and got no answer
            return record
        try:
            fresh = ask(identity)
        except AccessRevoked as exc:
            return self._revoked(record, exc)
        except AuthenticationError as exc:  # ServiceUnavailable above all: cannot tell now
            log.warning("dash-enterprise-auth: re-validating %s's session failed, it goes on; asking again in "
                        "%.0f s: %s", record.username, self.backoff, exc.log_detail or type(exc).__name__)
            self._hold(record.key, now)
            return record
        if fresh.username != identity.username:
            return self._revoked(record, AccessRevoked(
                log_detail=f"the provider now names this person {fresh.username!r}"))
        fresh = replace(fresh, private={**identity.private, **fresh.private}, logout_ids=identity.logout_ids)
        self._held.pop(record.key, None)
        if self.sessions.mark_validated(record, fresh, time.time()):
            if fresh.folded_groups != identity.folded_groups:
                audit("groups_changed", user=record.username, client=None, outcome="updated",
                      groups=list(fresh.groups))
            return record
        return self.sessions.store.get(record.key)  # validated by another worker meanwhile, or ended

    def _asker(self, identity: Identity) -> Callable[[Identity], Identity] | None:
        """Who answers for this sign-in: the connector that signed the person in; for a Kerberos
        ticket sign-in, the directory listed beside it (which gave its groups); else nobody."""
        connector = self.methods.of(identity)
        if isinstance(connector, Revalidates):
            return connector.revalidate
        directory = self.methods.directory
        if connector is self.methods.negotiate and isinstance(directory, Revalidates):
            def through_directory(identity: Identity) -> Identity:
                found = directory.revalidate(identity)
                return replace(identity, email=found.email or identity.email,
                               display_name=found.display_name or identity.display_name, groups=found.groups,
                               group_ids=found.group_ids, attributes={**identity.attributes, **found.attributes})
            return through_directory
        return None

    def _revoked(self, record: SessionRecord, exc: AccessRevoked) -> SessionRecord | None:
        current = self.sessions.store.get(record.key)
        if current is not None and current.validated_at != record.validated_at:
            # Another worker validated it meanwhile (its claim had run out): its answer is newer,
            # and its refresh token is the one ours was refused for having been replaced by.
            return current
        self.sessions.end(record)
        audit("session_revoked", user=record.username, client=None, outcome="ended",
              reason=exc.log_detail or type(exc).__name__)
        return None

    def _hold(self, key: str, now: float, seconds: float | None = None) -> None:
        held = self._held
        if len(held) >= HELD_MAX:
            for stale in [k for k, until in held.items() if until <= now]:
                del held[stale]
            if len(held) >= HELD_MAX:
                held.clear()
        held[key] = now + (self.backoff if seconds is None else seconds)
