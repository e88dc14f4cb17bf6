"""The audit trail: one JSON line per security event, on the ``dash_enterprise_auth.audit`` logger.

Events: ``sign_in``, ``sign_in_failed``, ``throttled``, ``sign_out``,
``forbidden``, ``session_store_error``. Fields: event, user, client,
outcome, plus a few event details. Never a password, a cookie or a token.
"""
from __future__ import annotations

import json
import logging
from typing import Any

audit_log = logging.getLogger("dash_enterprise_auth.audit")


def audit(event: str, *, user: str | None, client: str | None, outcome: str, **details: Any) -> None:
    line = {"event": event, "user": user, "client": client, "outcome": outcome, **details}
    audit_log.info(json.dumps(line, default=str, separators=(",", ":")))
