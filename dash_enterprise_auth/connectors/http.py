"""What the connectors that talk HTTP to their provider (oidc, plotly, saml) share; needs only requests."""
from __future__ import annotations

import threading
import time
from typing import Callable

import requests

from ..errors import ServiceUnavailable

# Seconds a health probe's outcome is reused: load balancers poll health every few seconds
# from every instance, and each poll must not become a request to the identity provider.
PROBE_REUSE = 5.0


def describe(exc: requests.RequestException) -> str:
    """The failure in words for the log, without the URL's query or any credential."""
    if isinstance(exc, requests.Timeout):
        return "no answer within the timeout"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


class Probe:
    """A provider reachability check whose outcome, good or bad, is reused for ``PROBE_REUSE``
    seconds. Callers arriving while a probe runs wait for it instead of starting their own."""

    def __init__(self, reach: Callable[[], None]) -> None:
        self._reach = reach
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._failure: ServiceUnavailable | None = None

    def __call__(self) -> None:
        with self._lock:
            if time.monotonic() - self._checked_at >= PROBE_REUSE:
                try:
                    self._reach()
                    self._failure = None
                except ServiceUnavailable as exc:
                    self._failure = exc
                self._checked_at = time.monotonic()
            failure = self._failure
        if failure is not None:
            raise failure
