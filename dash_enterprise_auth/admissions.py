"""Admissions this process has made, so that the same request of a signed-in person is admitted
again with a few lookups instead of the guard's whole check.

The guard's check (see ``guard.check``) reads a request's cookie, its signature, the session
record, and decides on the path; most requests of a session repeat one that was admitted a
moment ago. An admission is remembered under what the check read from the request (the
``Cookie`` header as sent, the scheme and mount point that name the cookie, with no
``Authorization`` header, which would take precedence) and the paths it was admitted for.
It holds while both of these are true, and otherwise the request goes through the whole check:

* the record's change mark is still the one it had when it was read: any write to the session,
  by any worker of any host (logout, revocation, ``set_user_data``, re-validation, another
  worker's idle-timer write), moves it (see ``stores.marks``), exactly as for the store's own
  memory of records;
* the clock is before the first moment the check would act on its own: expiry, the next write
  of the idle timer, re-validation at the provider, Kerberos ticket renewal.

Nothing else the check reads can change while the process runs (the privacy policy, the page
rules once built). Admissions are only ever made by the whole check, and hand back what it
found (the viewer, see ``viewer.Seen``); this module decides nothing.
"""
from __future__ import annotations

import time
from typing import Callable, Hashable

from .stores import SessionRecord, SessionStore
from .viewer import Seen

# What a process holds stays bounded (about 13 MB at most, a few MB in practice) whatever
# requests it gets: longer Cookie headers and paths are simply checked every time.
ADMISSIONS_MAX = 1024  # sessions remembered per process (a record copy each)
PATHS_MAX = 32  # paths remembered per session: Dash's routes, component suites, assets
PATH_MAX_LENGTH = 256
COOKIE_HEADER_MAX_LENGTH = 4096


class _Admission:
    __slots__ = ("record", "until", "paths", "seen")

    def __init__(self, seen: Seen, record: SessionRecord, until: float) -> None:
        self.seen = seen
        self.record = record
        self.until = until
        self.paths: set[str] = set()


class Admissions:
    def __init__(self, store: SessionStore, until: Callable[[SessionRecord], float]) -> None:
        self._marks = store.marks
        self._until = until  # when the check would next act on a record by itself
        self._admitted: dict[Hashable, _Admission] = {}

    def seen(self, key: Hashable | None, path: str) -> Seen | None:
        """What the check found for this request before, when it would find the same now; None
        when only the check can tell. Never waits (it is asked on event loops)."""
        admission = self._admitted.get(key) if key is not None else None
        if admission is None or path not in admission.paths:
            return None
        if time.time() >= admission.until or self._marks.known(admission.record.key) != admission.record.read_mark:
            return None
        return admission.seen

    def remember(self, key: Hashable | None, path: str, seen: Seen) -> None:
        """After the check admitted this request (and set no cookie), finding ``seen``.

        The requests admitted again share that very ``Seen``: the one thing they may change in
        it is the viewer's user data (``set_user_data``), and only after storing it, which
        moves the record's mark and so ends the admission."""
        record = seen.viewer.record if seen.viewer is not None else None
        if key is None or record is None or record.read_mark is None or self._marks is None \
                or len(path) > PATH_MAX_LENGTH:
            return
        admission = self._admitted.get(key)
        if admission is None or admission.record.key != record.key or admission.record.read_mark != record.read_mark:
            if len(self._admitted) >= ADMISSIONS_MAX:
                self._admitted.clear()
            # The record as read now: the marks and the clock are compared with it, whatever the app does.
            admission = self._admitted[key] = _Admission(seen, record.copy(), self._until(record))
        if len(admission.paths) < PATHS_MAX:
            admission.paths.add(path)
