"""Password-guessing brake: failures counted per account and per client address.

Counts live in the session store, so every worker and host shares them.
While a limit is reached, even the right password is refused. The address
limit is much higher than the account limit, so an office behind one NAT
address is not locked out by a few colleagues' typos.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .blocking import refuse_io
from .errors import TooManyAttempts
from .stores import SessionStore

WINDOW = 15 * 60  # seconds a failure counts for
PER_ACCOUNT = 10  # failures on one username within WINDOW
PER_ADDRESS = 100  # failures from one client address within WINDOW


@dataclass
class Throttle:
    store: SessionStore
    window: int = WINDOW
    per_account: int = PER_ACCOUNT
    per_address: int = PER_ADDRESS

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return f"account:{username.strip().casefold()}", f"address:{address}"

    def check(self, username: str, address: str) -> int:
        """Raise TooManyAttempts when either limit is reached; else the account's failures
        counted now, for :meth:`succeeded`."""
        account, client = self._keys(username, address)
        failures = self._below_limit(account, self.per_account)
        self._below_limit(client, self.per_address)
        return failures

    def _below_limit(self, key: str, limit: int) -> int:
        """The failures counted for ``key``; TooManyAttempts when they reach ``limit``."""
        failures, window_end = self.store.failures(key)
        if failures >= limit:
            raise TooManyAttempts(
                retry_after=max(1, int(window_end - time.time())),
                log_detail=f"{key} reached {failures} failures",
            )
        return failures

    def failed(self, username: str, address: str) -> None:
        refuse_io("counting a sign-in failure")
        for key in self._keys(username, address):
            self.store.add_failure(key, self.window)

    def succeeded(self, username: str, failures: int) -> None:
        """A right password clears the account's failures; ``failures`` is what :meth:`check` counted.
        With none counted there is nothing to clear, and most sign-ins save a store write (a SQLite
        write lock shared by every worker). A failure counted meanwhile then stays, the safe side."""
        if failures:
            refuse_io("clearing sign-in failures")
            self.store.clear_failures(self._keys(username, "")[0])
