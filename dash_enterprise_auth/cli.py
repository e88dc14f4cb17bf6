"""``python -m dash_enterprise_auth COMMAND`` (also the ``dash-enterprise-auth`` script).

add-user     write a user to a basic-connector users file (password from stdin or a prompt)
hash-password print an Argon2id hash of a password
check        are the settings valid and the connector and session store reachable?
sessions     list or revoke the live sessions in DASH_AUTH_SESSION_STORE
"""
from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .errors import ConfigurationError, ServiceUnavailable

if TYPE_CHECKING:
    from .config import CoreConfig
    from .connectors import Connector


def _read_password(confirm: bool) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Repeat password: ") != password:
        raise SystemExit("error: the passwords differ")
    return password


def cmd_add_user(args: argparse.Namespace) -> int:
    from .users_file import add_user

    password = _read_password(confirm=True)
    if not password:
        raise SystemExit("error: the password is empty")
    groups = [g.strip() for g in (args.groups or "").split(",") if g.strip()]
    replaced = add_user(Path(args.users_file), args.username, password, groups, args.email, args.name)
    print(f"{'updated' if replaced else 'added'} {args.username} in {args.users_file}"
          f"{' (groups: ' + ', '.join(groups) + ')' if groups else ''}")
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    from .passwords import hash_password

    password = _read_password(confirm=True)
    if not password:
        raise SystemExit("error: the password is empty")
    print(hash_password(password))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .install import load_configuration
    from .stores import open_store, redact

    failures = 0

    def line(ok: bool, message: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {message}")

    try:
        config, methods = load_configuration()
    except ConfigurationError as exc:
        line(False, f"settings: {exc}")
        return 1
    what = f"connector{'s' if len(methods.all) > 1 else ''} {methods.names}"
    line(True, f"settings: {what}, privacy {config.privacy.value}")
    if config.session_store is None:
        line(True, "session store: SQLite in the app's instance folder (DASH_AUTH_SESSION_STORE not set)")
    else:
        try:
            store = open_store(config.session_store)
            store.ping()
            line(True, f"session store: {redact(config.session_store)} answers")
        except (ConfigurationError, ServiceUnavailable) as exc:
            line(False, f"session store: {getattr(exc, 'log_detail', '') or exc}")
    for connector in methods.all:
        try:
            connector.ping()
            line(True, f"connector {connector.name}: answers")
        except ServiceUnavailable as exc:
            line(False, f"connector {connector.name}: {exc.log_detail or exc.user_message}")
        line(True, revalidation_line(config, connector))
        for finding in connector.check(args.user):
            line(finding.ok, finding.message)
    if args.app:
        for ok, message in _page_rules(args.app, config):
            line(ok, message)
    else:
        print("     pages: give --app MODULE:VARIABLE (as for gunicorn) to list who may open each page")
    return 1 if failures else 0


REVALIDATES = {
    "basic": "the users file",
    "ldap": "the person's entry, lock and groups, read by the service account",
    "oidc": "a refresh-token grant plus userinfo",
    "plotly": "/v2/users/current and the app file's view check",
}


def revalidation_line(config: "CoreConfig", connector: "Connector") -> str:
    from .connectors.base import Revalidates

    if config.revalidate_interval == 0:
        return "re-validation: off (DASH_AUTH_REVALIDATE_INTERVAL=0): sessions last until their maximum age"
    if connector.name == "spnego":
        return "re-validation: Kerberos sign-ins are asked again of the directory listed beside spnego, if any"
    if not isinstance(connector, Revalidates):
        return (f"re-validation: connector {connector.name} has no back channel to ask: sessions last until "
                f"DASH_AUTH_SESSION_MAX_AGE ({config.max_age} s)")
    if connector.name == "ldap" and not getattr(connector, "bind_dn", None):
        return "re-validation: needs DASH_AUTH_LDAP_BIND_DN: sessions last until their maximum age"
    what = REVALIDATES.get(connector.name, "the connector's revalidate()")
    return f"re-validation: every {config.revalidate_interval} s per session: {what}"


def _page_rules(target: str, config: "CoreConfig") -> list[tuple[bool, str]]:
    """Import the app as a server would, and say who may open each of its pages."""
    import importlib
    import os

    from .dash_pages import describe, read_rules
    from .privacy import Policy

    module_name, _, variable = target.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
        getattr(module, variable or "app")
    except ConfigurationError as exc:
        return [(False, f"app {target}: {exc}")]
    except Exception as exc:  # the app's own import failed: say how, not where
        return [(False, f"app {target} does not import: {type(exc).__name__}: {exc}")]
    import dash

    registry = dash.page_registry
    if not registry:
        return [(True, f"app {target}: no pages (dash.register_page); the app-wide rule covers everything")]
    try:
        rules = read_rules(registry)
    except ConfigurationError as exc:
        return [(False, str(exc))]
    policy = Policy.build(config.privacy, config.allowed_users, config.allowed_groups)
    return [(True, f"page {page.get('name') or module} ({page.get('path_template') or page.get('path')}): "
                   f"{describe(rules.get(module), policy)}") for module, page in registry.items()]


def cmd_sessions(args: argparse.Namespace) -> int:
    from .config import SESSION_STORE
    from .settings import Settings
    from .stores import open_store

    url = Settings.load([SESSION_STORE]).get(SESSION_STORE)
    if not url:
        raise SystemExit("error: DASH_AUTH_SESSION_STORE is not set: set it to the app's session store URL")
    store = open_store(url)
    if args.action == "revoke":
        if not args.username:
            raise SystemExit("error: sessions revoke needs a USERNAME")
        print(f"revoked {store.delete_user(args.username)} session(s) of {args.username}")
        return 0
    for record in store.list_sessions(args.username):
        print(f"{record.username}\tsigned in {_when(record.created_at)}\tlast seen {_when(record.last_seen)}"
              f"\tends {_when(record.expires_at)}\tid {record.key[:12]}")
    return 0


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dash-enterprise-auth", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add-user", help="add or update a user in a users file")
    add.add_argument("users_file")
    add.add_argument("username")
    add.add_argument("--groups", help="comma-separated group names")
    add.add_argument("--email")
    add.add_argument("--name", help="display name")
    add.set_defaults(run=cmd_add_user)
    commands.add_parser("hash-password", help="print an Argon2id hash").set_defaults(run=cmd_hash_password)
    check = commands.add_parser("check", help="check settings, connector and store")
    check.add_argument("--user", help="also look this person up (groups included) without their password")
    check.add_argument("--app", help="MODULE:VARIABLE of a multi-page Dash app: list who may open each page")
    check.set_defaults(run=cmd_check)
    sessions = commands.add_parser("sessions", help="list or revoke live sessions")
    sessions.add_argument("action", choices=["list", "revoke"])
    sessions.add_argument("username", nargs="?")
    sessions.set_defaults(run=cmd_sessions)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ConfigurationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ServiceUnavailable as exc:
        print(f"error: {exc.log_detail or exc.user_message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
