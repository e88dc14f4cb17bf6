"""Username and password from a users file (Argon2id hashes and groups).

The file is JSON written by ``python -m dash_enterprise_auth add-user``::

    {"users": {"alice": {"password_hash": "$argon2id$...", "groups": ["analysts"],
                         "email": "alice@example.com", "name": "Alice Liddell"}}}

It is re-read when it changes, so adding a user needs no restart. Plain
username/password pairs and ``auth_func`` exist only for dash-auth's
``BasicAuth`` constructor.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import AccessRevoked, ConfigurationError, InvalidCredentials, ServiceUnavailable
from ..passwords import plain_equal, verify_password
from ..settings import Option, Settings, text
from .base import Finding, Identity, PasswordConnector, not_text, text_credentials
from .verified import VerifiedCredentials

USERS_FILE = Option("DASH_AUTH_USERS_FILE", text, help="path of the users file written by add-user")

GroupsSource = Callable[[str], Any] | Mapping[str, Any] | None
# Which copy of the users file: device, inode, size, mtime and ctime in ns. An edit through
# add-user (a new file renamed over the old one) changes the inode; an edit in place changes
# the ctime even when the size stays and the mtime is set back.
FileVersion = tuple[int, int, int, int, int]


def file_version(stat: os.stat_result) -> FileVersion:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class UsersFileError(ConfigurationError):
    pass


def read_users_file(path: Path) -> dict[str, dict[str, Any]]:
    """The users in ``path``; UsersFileError says what is wrong with it."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsersFileError(
            f"DASH_AUTH_USERS_FILE={str(path)!r} does not exist: create it with "
            f"python -m dash_enterprise_auth add-user {path} USERNAME"
        ) from None
    except OSError as exc:
        raise UsersFileError(f"DASH_AUTH_USERS_FILE={str(path)!r} cannot be read: {exc.strerror}") from None
    except ValueError as exc:
        raise UsersFileError(f"DASH_AUTH_USERS_FILE={str(path)!r} is not valid JSON: {exc}") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict) or not all(
        isinstance(u, dict) and isinstance(u.get("password_hash"), str) for u in users.values()
    ):
        raise UsersFileError(
            f"DASH_AUTH_USERS_FILE={str(path)!r} is not a users file: expected "
            '{"users": {"NAME": {"password_hash": "...", "groups": [...]}}}'
        )
    for username, entry in users.items():
        problem = entry_problem(entry)
        if problem:
            raise UsersFileError(f"DASH_AUTH_USERS_FILE={str(path)!r} is not valid: user {username!r}: {problem}")
    return users


def entry_problem(entry: Mapping[str, Any]) -> str | None:
    """What is wrong with one user's entry, beyond its password hash, or None."""
    groups = entry.get("groups")
    if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)):
        # a string would otherwise be iterated letter by letter: "analysts" -> a, n, a, l, ...
        return f'"groups" must be a list of group names, e.g. ["analysts"], not {json.dumps(groups)[:80]}'
    for field in ("email", "name"):
        if entry.get(field) is not None and not isinstance(entry[field], str):
            return f'"{field}" must be a string, not {json.dumps(entry[field])[:80]}'
    return None


class BasicConnector(PasswordConnector):
    name = "basic"
    options = (USERS_FILE,)

    def __init__(
        self,
        users_file: str | Path | None = None,
        *,
        plain_users: Mapping[str, str] | None = None,
        auth_func: Callable[[str, str], bool] | None = None,
        user_groups: GroupsSource = None,
    ) -> None:
        sources = [users_file is not None, plain_users is not None, auth_func is not None]
        if sum(sources) != 1:
            raise ConfigurationError(
                "DASH_AUTH_USERS_FILE is not set: the basic connector needs a users file "
                "(python -m dash_enterprise_auth add-user FILE USERNAME writes one)"
            )
        self.users_file = Path(users_file) if users_file is not None else None
        self.plain_users = dict(plain_users) if plain_users is not None else None
        self.auth_func = auth_func
        self.user_groups = user_groups
        self._lock = threading.Lock()
        # The file as last read: its version, its users, and the identities built from it so far.
        self._cache: tuple[FileVersion, dict[str, dict[str, Any]], dict[str, Identity]] | None = None
        self._verified = VerifiedCredentials()
        if self.users_file is not None:
            self._users()  # a missing or broken file stops start-up

    @classmethod
    def from_settings(cls, settings: Settings) -> "BasicConnector":
        return cls(settings.get(USERS_FILE))

    def _users(self) -> dict[str, dict[str, Any]]:
        return self._versioned_users()[1]

    def _versioned_users(self) -> tuple[FileVersion, dict[str, dict[str, Any]], dict[str, Identity]]:
        """The users file's version, content and identities, re-read only when the file's version
        (see FileVersion) changes."""
        assert self.users_file is not None
        try:
            version = file_version(os.stat(self.users_file))
        except OSError:
            read_users_file(self.users_file)  # raises the error that explains the problem
            raise
        with self._lock:
            if self._cache is None or self._cache[0] != version:
                self._cache = (version, read_users_file(self.users_file), {})
            return self._cache

    def authenticate(self, username: str, password: str) -> Identity:
        if not username or not password:
            raise InvalidCredentials(log_detail="empty username or password")
        username, password = text_credentials(username, password)
        if self.users_file is not None:
            return self._from_file(username, password)
        if self.plain_users is not None:
            expected = self.plain_users.get(username)
            ok = plain_equal(expected if expected is not None else "\0" * len(password), password)
            ok = ok and expected is not None
        else:
            ok = bool(self.auth_func(username, password))
        if not ok:
            raise InvalidCredentials(log_detail="wrong username or password")
        return Identity(username=username, groups=self._groups_for(username), connector=self.name)

    def _from_file(self, username: str, password: str) -> Identity:
        try:
            version, users, identities = self._versioned_users()
        except (OSError, ConfigurationError) as exc:
            # Changed into something unusable since start-up: nobody signs in from it until it is
            # fixed (not its last good copy: a removed user or group must not live on).
            raise ServiceUnavailable(log_detail=f"users file unusable, every sign-in refused: {exc}") from None
        entry = users.get(username)
        stored = entry["password_hash"] if entry else None
        # A script sending HTTP Basic on every request verifies once per file version (see verified.py).
        if stored is None or (version, stored, username, password) not in self._verified:
            if not verify_password(stored, password) or entry is None or stored is None:
                raise InvalidCredentials(log_detail="wrong username or password")
            self._verified.add((version, stored, username, password))
        return self._identity_of(username, entry, identities)

    def authenticate_from_memory(self, username: str, password: str) -> Identity | None:
        """Credentials verified recently (see verified.py) against the users file as this process
        read it, while the file is unchanged. All it does besides lookups is a ``stat`` of the
        file (a read of its metadata), which is how an edit takes effect at once."""
        if self.users_file is None or not_text(username) or not_text(password):
            return None  # (not text: authenticate() says why)
        try:
            version = file_version(os.stat(self.users_file))
        except OSError:
            return None
        cache = self._cache
        if cache is None or cache[0] != version:
            return None  # reading the file again is authenticate()'s job
        entry = cache[1].get(username)
        stored = entry["password_hash"] if entry else None
        if stored is None or not password or (version, stored, username, password) not in self._verified:
            return None
        return self._identity_of(username, entry, cache[2])

    def _identity_of(self, username: str, entry: Mapping[str, Any], identities: dict[str, Identity]) -> Identity:
        """Built once per user and version of the file (an Identity is immutable)."""
        identity = identities.get(username)
        if identity is None:
            identity = identities[username] = Identity(
                username=username,
                email=entry.get("email"),
                display_name=entry.get("name"),
                groups=tuple(entry.get("groups") or ()),
                connector=self.name,
            )
        return identity

    def revalidate(self, identity: Identity) -> Identity:
        """The person as the users file (or the code's lists) has them now: a removed user's
        session ends, changed groups, email or name take effect."""
        if self.users_file is not None:
            try:
                entry = self._users().get(identity.username)
            except (OSError, ConfigurationError) as exc:
                raise ServiceUnavailable(log_detail=f"users file unusable: {exc}") from None
            if entry is None:
                raise AccessRevoked(log_detail="no longer in the users file")
            return Identity(username=identity.username, email=entry.get("email"), display_name=entry.get("name"),
                            groups=tuple(entry.get("groups") or ()), connector=self.name)
        if self.plain_users is not None and identity.username not in self.plain_users:
            raise AccessRevoked(log_detail="no longer in the username/password list")
        return Identity(username=identity.username, groups=self._groups_for(identity.username), connector=self.name)

    def _groups_for(self, username: str) -> tuple[str, ...]:
        source = self.user_groups
        if source is None:
            return ()
        groups = source(username) if callable(source) else source.get(username, ())
        return tuple(str(g) for g in groups or ())

    def ping(self) -> None:
        if self.users_file is not None:
            try:
                self._users()
            except (OSError, ConfigurationError) as exc:
                raise ServiceUnavailable(log_detail=f"users file unusable, every sign-in refused: {exc}") from None

    def check(self, test_user: str | None = None) -> list[Finding]:
        if self.users_file is None:
            return [Finding(True, "users: given in code")]
        try:
            users = self._users()
        except (OSError, ConfigurationError) as exc:
            return [Finding(False, f"users file: {exc}")]
        findings = [Finding(bool(users), f"users file {self.users_file}: {len(users)} user(s)")]
        if test_user:
            entry = users.get(test_user)
            findings.append(Finding(entry is not None, f"user {test_user}: " + (
                f"groups: {', '.join(entry.get('groups') or ()) or '(none)'}" if entry else "not in the users file")))
        return findings
