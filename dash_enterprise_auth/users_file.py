"""Writing the basic connector's users file safely: locked, atomic, owner-only."""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .connectors.basic import read_users_file
from .passwords import hash_password


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def add_user(path: Path, username: str, password: str, groups: list[str],
             email: str | None = None, name: str | None = None) -> bool:
    """Add or replace ``username``; True when it replaced an existing entry."""
    if not username or username != username.strip() or ":" in username:
        raise ValueError("the username must be non-empty, without surrounding spaces or ':'")
    if isinstance(groups, str) or not all(isinstance(g, str) for g in groups):
        raise ValueError("the groups must be a list of group names")  # what read_users_file accepts
    entry: dict[str, Any] = {"password_hash": hash_password(password), "groups": list(groups)}
    if email:
        entry["email"] = email
    if name:
        entry["name"] = name
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        users = read_users_file(path) if path.exists() else {}
        replaced = username in users
        users[username] = entry
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump({"users": users}, out, indent=2, sort_keys=True)
                out.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    return replaced
