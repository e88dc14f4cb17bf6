"""The functions apps call, with the names and behaviour of the commercial package."""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .kerberos import PRIVATE_KEY, TIME_FORMAT, CcacheInEnvironment, KerberosTicketUnavailable, private_ccache
from .viewer import Viewer, current_protection, current_viewer, seen_viewer

# Fields of get_user_data() that come from the identity provider and that
# set_user_data() cannot overwrite.
IDENTITY_FIELDS = ("username", "preferred_username", "email", "name", "groups", "group_ids", "connector",
                   "kerberos_ticket_expiry")


def get_username() -> str | None:
    """The signed-in viewer's username; None for an anonymous viewer of a public app."""
    viewer = current_viewer("get_username")
    if viewer is None:
        return None
    override = viewer.record.user_data.get("_username") if viewer.record else None
    return override or viewer.identity.username


def accessible_pages() -> list[dict[str, Any]]:
    """The entries of ``dash.page_registry`` (the same dicts, in registry order) that the viewer may
    open, for a menu that shows each viewer their pages. Outside any request (Dash calls layout
    functions once at start-up) the viewer is anonymous: only pages open to anyone."""
    access = current_protection().page_access
    if access is None:
        raise RuntimeError("accessible_pages() needs a Dash app protected by dash_enterprise_auth")
    viewer = seen_viewer()
    return access.accessible(viewer.identity if viewer is not None else None)


def get_user_data() -> dict[str, Any]:
    """The viewer as a JSON-safe dict: identity fields, connector attributes and
    whatever :func:`set_user_data` stored. Empty for an anonymous viewer."""
    viewer = current_viewer("get_user_data")
    if viewer is None:
        return {}
    identity = viewer.identity
    custom = {k: v for k, v in _custom_data(viewer).items() if k not in IDENTITY_FIELDS}
    return {
        **dict(identity.attributes),
        **custom,
        "username": get_username(),
        "preferred_username": identity.username,
        "email": identity.email,
        "name": identity.display_name,
        "groups": list(identity.groups),
        "group_ids": list(identity.group_ids),
        "connector": identity.connector,
        **_ticket_expiry(identity.private),
    }


def _ticket_expiry(private: dict[str, Any]) -> dict[str, str]:
    sealed = private.get(PRIVATE_KEY) or {}
    if "expires_at" not in sealed:
        return {}
    return {"kerberos_ticket_expiry": time.strftime(TIME_FORMAT, time.gmtime(sealed["expires_at"]))}


def set_user_data(data: dict[str, Any]) -> None:
    """Replace the custom data kept with the viewer's server-side session.

    The whole dict is replaced (last write wins). It must be JSON-serialisable;
    keys of the identity (username, email, groups, ...) stay the provider's.
    """
    if not isinstance(data, dict):
        raise TypeError(f"set_user_data() takes a dict, not {type(data).__name__}")
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"set_user_data() needs JSON-serialisable data: {exc}") from None
    def with_username(viewer: Viewer) -> dict[str, Any]:
        username = viewer.record.user_data.get("_username")
        return {**data, **({"_username": username} if username else {})}

    _save("set_user_data", with_username)


def set_username(username: str) -> None:
    """Show another name for the viewer in get_username(); access decisions keep the real one."""
    _save("set_username", lambda viewer: {**_custom_data(viewer), "_username": str(username)})


def get_kerberos_ticket_cache() -> bytes:
    """The viewer's Kerberos credential cache: the bytes of an MIT ccache file.

    Raises KerberosTicketUnavailable saying why when there is none: the app
    gets no tickets (``DASH_AUTH_KRB5_REALM`` unset), this sign-in got none
    (and why), or the ticket has expired.
    """
    viewer = current_viewer("get_kerberos_ticket_cache")
    if viewer is None:
        raise KerberosTicketUnavailable("no Kerberos ticket exists for an anonymous viewer")
    kerberos = current_protection().kerberos
    if kerberos is None:
        raise KerberosTicketUnavailable(
            f"no Kerberos ticket exists for {viewer.identity.username}: this app obtains no Kerberos tickets "
            "at sign-in (DASH_AUTH_KRB5_REALM is not configured)")
    ticket = kerberos.unseal(viewer.identity.private)
    if ticket.expires_at <= time.time():
        raise KerberosTicketUnavailable(
            f"the Kerberos ticket of {ticket.principal} expired at "
            f"{time.strftime(TIME_FORMAT, time.gmtime(ticket.expires_at))}: sign in again for a new one")
    return ticket.ccache


@contextmanager
def kerberos_ccache_file() -> Iterator[Path]:
    """The viewer's ticket cache as a private file (mode 0600), removed after the block.

    Safe in threaded servers: pass the path to the client library instead of
    using the environment, e.g. ``gssapi.Credentials(usage="initiate",
    store={"ccache": f"FILE:{path}"})``.
    """
    with private_ccache(get_kerberos_ticket_cache()) as path:
        yield path


def kerberos_ccache() -> CcacheInEnvironment:
    """Point ``KRB5CCNAME`` at the viewer's ticket cache for the block, then restore it.

    For client libraries that only read ``KRB5CCNAME`` (most database drivers):
    ``with kerberos_ccache():`` in sync callbacks, ``async with kerberos_ccache():``
    in ``async def`` ones (then the block may ``await``). The environment is the
    whole process's, so these blocks run one at a time per process (a lock);
    where the library takes a cache name, prefer :func:`kerberos_ccache_file`.
    """
    return CcacheInEnvironment(get_kerberos_ticket_cache())


def _custom_data(viewer: Viewer) -> dict[str, Any]:
    if viewer.record is None:
        return {}
    return {k: v for k, v in viewer.record.user_data.items() if k != "_username"}


def _save(name: str, data: Callable[[Viewer], dict[str, Any]]) -> None:
    viewer = current_viewer(name)
    if viewer is None:
        raise RuntimeError(f"{name}() needs a signed-in viewer; this viewer is anonymous")
    if viewer.record is None:
        raise RuntimeError(
            f"{name}() needs a session: this request signed in with an Authorization header, "
            "which keeps no session data"
        )
    current_protection().sessions.save_user_data(viewer.record, data(viewer))
