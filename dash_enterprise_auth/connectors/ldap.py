"""Sign-in with a directory password over LDAP (OpenLDAP, Active Directory, 389-ds, FreeIPA).

A sign-in finds the person's entry with the service account, binds as that
entry with the password given (the directory checks it, locks included) and
reads the groups. ldap3 does the protocol; this module changes the defaults
of it that are unsafe for a sign-in form:

* an empty password is refused before the directory sees it: a simple bind
  with a DN and no password is an *unauthenticated* bind that servers answer
  with success (RFC 4513 5.1.2);
* referrals are never followed (ldap3 would bind to the referred host with
  the same credentials, handing the password to whoever crafted the referral);
* certificates are verified (ldap3's default is ``CERT_NONE``) and so is the
  host name; ``ldap://`` URLs use StartTLS unless it is turned off;
* failover walks the configured servers once, in order, each with a connect
  timeout, so a dead directory gives a 503 within seconds (``ServerPool``
  with ``active=True`` retries forever and probes with an extra connection);
* every value put into a filter or DN is escaped (RFC 4515, RFC 4514);
* a username that finds no entry (or two) still costs a bind with the
  password given, to a DN nobody has, so an unknown name is
  refused no faster than a wrong password; that bind never signs anyone in,
  whatever the directory answers.
"""
from __future__ import annotations

import logging
import re
import secrets
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from ldap3 import AUTO_BIND_NONE, BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCertificateError, LDAPException, LDAPInvalidFilterError, LDAPSASLPrepError, LDAPStartTLSError,
)
from ldap3.operation.search import parse_filter
from ldap3.protocol.sasl.sasl import validate_simple_password
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from ..errors import AccessRevoked, AccountLocked, ConfigurationError, InvalidCredentials, ServiceUnavailable
from ..settings import Option, Secret, Settings, boolean, name_list, seconds, text
from .base import Finding, Identity, PasswordConnector, not_text, text_credentials

log = logging.getLogger("dash_enterprise_auth")

URL = Option("DASH_AUTH_LDAP_URL", name_list,
             help="directory servers, comma-separated, tried in order: ldaps://host or ldap://host")
START_TLS = Option("DASH_AUTH_LDAP_START_TLS", boolean, True,
                   help="upgrade ldap:// connections with StartTLS (false sends passwords in clear text)")
CA_FILE = Option("DASH_AUTH_LDAP_CA_FILE", text, help="PEM file of the CA that signed the servers' certificates")
TLS_VERIFY = Option("DASH_AUTH_LDAP_TLS_VERIFY", boolean, True,
                    help="verify the servers' certificates and host names (false: anyone on the path reads passwords)")
BIND_DN = Option("DASH_AUTH_LDAP_BIND_DN", text, help="service account that looks people up")
BIND_PASSWORD = Option("DASH_AUTH_LDAP_BIND_PASSWORD", text, secret=True, help="the service account's password")
USER_BASE = Option("DASH_AUTH_LDAP_USER_BASE", text, help="where people are searched")
USER_FILTER = Option("DASH_AUTH_LDAP_USER_FILTER", text, "(uid={username})",
                     help="filter that finds one person; Active Directory: (sAMAccountName={username})")
USER_DN_TEMPLATE = Option("DASH_AUTH_LDAP_USER_DN_TEMPLATE", text,
                          help="bind straight to this DN instead of searching, e.g. uid={username},ou=people,dc=corp")
USERNAME_ATTRIBUTE = Option("DASH_AUTH_LDAP_USERNAME_ATTRIBUTE", text,
                            help="attribute holding the username (default: the one compared with {username})")
EMAIL_ATTRIBUTE = Option("DASH_AUTH_LDAP_EMAIL_ATTRIBUTE", text, "mail")
NAME_ATTRIBUTE = Option("DASH_AUTH_LDAP_NAME_ATTRIBUTE", text, "displayName")
GROUP_BASE = Option("DASH_AUTH_LDAP_GROUP_BASE", text,
                    help="where groups are searched; unset: groups come from the person's memberOf")
GROUP_FILTER = Option("DASH_AUTH_LDAP_GROUP_FILTER", text, "(member={dn})",
                      help="filter for the person's groups: {dn} and {username} are escaped for you")
NESTED_GROUPS = Option("DASH_AUTH_LDAP_NESTED_GROUPS", boolean, False,
                       help="also count groups that contain the person's groups")
TIMEOUT = Option("DASH_AUTH_LDAP_TIMEOUT", seconds, 5, help="seconds to connect to or hear from a server")

# A server that failed is tried last for this long, so failover costs one timeout, not one per sign-in.
COOLDOWN = 30.0
MAX_NESTED_GROUPS = 500
MAX_NESTING = 10
# Active Directory's "account disabled" bit of userAccountControl.
AD_ACCOUNT_DISABLED = 0x2
SUCCESS, SIZE_LIMIT_EXCEEDED, NO_SUCH_OBJECT, INVALID_CREDENTIALS = 0, 4, 32, 49


class DirectoryUnavailable(ServiceUnavailable):
    """No configured server answered, or the service account cannot search."""

    default_message = "The directory server does not answer, so nobody can sign in right now. Try again in a few minutes."


@dataclass(frozen=True)
class Endpoint:
    url: str
    host: str
    port: int
    use_ssl: bool


def parse_url(url: str) -> Endpoint:
    """``ldap://host[:port]`` or ``ldaps://host[:port]``; anything else is a start-up error."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
        scheme = ""
    if scheme not in ("ldap", "ldaps") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ConfigurationError(
            f"DASH_AUTH_LDAP_URL={url!r} is not valid: use ldaps://host[:port] or ldap://host[:port], "
            "comma-separated for failover"
        )
    return Endpoint(url, parts.hostname, port or (636 if scheme == "ldaps" else 389), scheme == "ldaps")


def fill(template: str, **values: str) -> str:
    """Put filter-escaped values into a filter template (str.format would choke on braces)."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", escape_filter_chars(value))
    return template


def check_filter(template: str, variable: str, **placeholders: str) -> None:
    """A ConfigurationError naming ``variable`` unless ``template``, filled in, is a filter that
    ldap3 itself can parse (as it does at every search, with the connection's defaults)."""
    try:
        parse_filter(fill(template, **placeholders), None, True, True, None, False)
    except LDAPInvalidFilterError as exc:
        raise ConfigurationError(f"{variable}={template!r} is not valid: ldap3 cannot parse it ({exc}); "
                                 "check that its parentheses are balanced") from None


def check_ca_file(path: str) -> None:
    """A ConfigurationError naming DASH_AUTH_LDAP_CA_FILE unless ``path`` holds CA certificates
    (loaded as every TLS connection will load them)."""
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        raise ConfigurationError(f"DASH_AUTH_LDAP_CA_FILE={path!r} holds no CA certificate ({exc.reason}): "
                                 "use the PEM file of the CA that signed the servers' certificates") from None
    except OSError as exc:
        raise ConfigurationError(f"DASH_AUTH_LDAP_CA_FILE={path!r} cannot be read ({exc.strerror}): "
                                 "use the path of a readable PEM file") from None


def rdn_value(dn: str) -> str:
    """The readable name of an entry: ``analysts`` for ``cn=analysts,ou=groups,dc=corp``."""
    try:
        return parse_dn(dn, escape=False)[0][1]
    except (LDAPException, IndexError, ValueError):
        return dn


def first(attributes: Any, name: str) -> str | None:
    values = all_values(attributes, name)
    return values[0] if values else None


def all_values(attributes: Any, name: str) -> list[str]:
    """An attribute's values as strings; the server's spelling of the name may differ in case."""
    for key, value in attributes.items():
        if key.lower() == name.lower():
            values = value if isinstance(value, list) else [value]
            return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    return []


def locked_because(attributes: Any) -> str | None:
    """Why the directory refuses this entry's sign-ins now (read by the service account, without
    the person's password), or None."""
    if int(first(attributes, "userAccountControl") or 0) & AD_ACCOUNT_DISABLED:
        return "userAccountControl has the ACCOUNTDISABLE bit"
    if first(attributes, "pwdAccountLockedTime"):
        return "locked by the password policy (pwdAccountLockedTime)"
    if (first(attributes, "nsAccountLock") or "").strip().lower() == "true":
        return "nsAccountLock is true"
    return None


def _infer_username_attribute(template: str, variable: str) -> str | None:
    found = re.findall(r"\(?\s*([A-Za-z][\w-]*)\s*=\s*\{username\}", template)
    if len(set(a.lower() for a in found)) == 1:
        return found[0]
    raise ConfigurationError(
        f"{variable}={template!r} does not say which attribute holds the username: "
        "set DASH_AUTH_LDAP_USERNAME_ATTRIBUTE"
    )


class Servers:
    """The configured servers, tried in order; one that failed recently goes last."""

    def __init__(self, endpoints: Sequence[Endpoint], *, verify: bool, ca_file: str | None, start_tls: bool,
                 timeout: int) -> None:
        self.endpoints = list(endpoints)
        self.verify = verify
        self.ca_file = ca_file
        self.start_tls = start_tls
        self.timeout = timeout
        self._failed_at: dict[str, float] = {}
        self._local = threading.local()  # the connection each thread keeps for binds

    def _server(self, endpoint: Endpoint) -> Server:
        # version=None gives ssl.create_default_context(); ldap3 then checks the host name itself.
        tls = Tls(validate=ssl.CERT_REQUIRED if self.verify else ssl.CERT_NONE, ca_certs_file=self.ca_file,
                  sni=endpoint.host)
        return Server(endpoint.host, port=endpoint.port, use_ssl=endpoint.use_ssl, tls=tls,
                      get_info=NONE, connect_timeout=self.timeout)

    def connection(self, endpoint: Endpoint) -> Connection:
        """An open (and TLS-upgraded) connection to one server, not yet bound."""
        connection = Connection(
            self._server(endpoint), auto_bind=AUTO_BIND_NONE, auto_referrals=False,
            raise_exceptions=False, receive_timeout=self.timeout, read_only=True, check_names=False,
        )
        try:
            connection.open()
            # ldap3 leaves Nagle's algorithm on: the bind, the first request on a fresh TLS
            # connection, then waits ~40 ms for a delayed ACK. Small requests go out at once.
            connection.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.start_tls and not endpoint.use_ssl and not connection.start_tls():
                raise LDAPStartTLSError(f"StartTLS refused: {connection.result.get('description')}")
        except BaseException:
            close_quietly(connection)
            raise
        return connection

    def ordered(self) -> list[Endpoint]:
        now = time.monotonic()
        fresh = [e for e in self.endpoints if now - self._failed_at.get(e.url, -COOLDOWN) >= COOLDOWN]
        return fresh + [e for e in self.endpoints if e not in fresh]

    def connect(self, user: str | None = None, password: str | None = None) -> tuple[Connection, bool]:
        """An open connection to the first server that answers, and whether the bind
        (when ``user`` is given) succeeded. DirectoryUnavailable when none answers."""
        reasons = []
        for endpoint in self.ordered():
            try:
                connection = self.connection(endpoint)
            except (LDAPException, OSError, ssl.SSLError) as exc:
                reasons.append(self._failed(endpoint, exc))
                continue
            try:
                bound = bind_once(connection, user, password or "") if user is not None else True
            except InvalidCredentials:  # the password's fault, not the server's, which answered and stays first
                close_quietly(connection)
                raise
            except (LDAPException, OSError, ssl.SSLError) as exc:
                close_quietly(connection)
                reasons.append(self._failed(endpoint, exc))
                continue
            self._failed_at.pop(endpoint.url, None)
            return connection, bound
        raise DirectoryUnavailable(log_detail="no directory server answers: " + "; ".join(reasons))

    @contextmanager
    def bound_as(self, user: str, password: str) -> Iterator[tuple[Connection, bool]]:
        """A connection on which ``user`` tried to bind with ``password``, and whether the directory
        accepted it, for the ``with`` block; then kept for this thread's next bind.

        The bind goes over the connection this thread kept from its last one, when it has one: a
        new connection costs a TCP and a TLS handshake (about 1.2 ms of CPU here, and more at the
        directory), a bind one round trip. LDAP allows any number of binds on a connection, each
        answered for its own name and password, and a refused one leaves the connection anonymous
        (RFC 4511 4.2.1). Nothing but binds (and, without a service account, that person's own
        reads) is sent on it. It is kept after a refusal too, but closed after any other error."""
        connection, bound = self._bind(user, password)
        try:
            yield connection, bound
        except (InvalidCredentials, AccountLocked):
            self._keep(connection)
            raise
        except BaseException:
            close_quietly(connection)
            raise
        self._keep(connection)

    def _bind(self, user: str, password: str) -> tuple[Connection, bool]:
        """Bind on the kept connection; if it broke (directories close idle ones), on a new one to
        the first server that answers, certificate and host name checked as for any connection."""
        kept = self._take_kept()
        if kept is not None:
            try:
                return kept, bind_once(kept, user, password)
            except InvalidCredentials:
                self._keep(kept)
                raise
            except (LDAPException, OSError, ssl.SSLError):
                close_quietly(kept)
        return self.connect(user, password)

    def _keep(self, connection: Connection) -> None:
        """Keep ``connection`` for this thread's next bind, unless it closed (it stays bound as the
        last person until then)."""
        if not connection.closed:
            previous, self._local.kept = getattr(self._local, "kept", None), connection
            if previous is not None and previous is not connection:
                close_quietly(previous)

    def _take_kept(self) -> Connection | None:
        """This thread's kept connection, now the caller's; None when it has none open. Never bind
        on a closed one: ldap3 would silently reopen it, without StartTLS."""
        kept, self._local.kept = getattr(self._local, "kept", None), None
        return kept if kept is not None and not kept.closed else None

    def _failed(self, endpoint: Endpoint, exc: BaseException) -> str:
        """Put ``endpoint`` last for a while; the reason, for the log."""
        self._failed_at[endpoint.url] = time.monotonic()
        return f"{endpoint.url}: {describe(exc)}"


def bind_once(connection: Connection, user: str, password: str) -> bool:
    """A simple bind as ``user`` on an open connection: whether the directory accepted it.

    The password does not stay on the connection (ldap3 keeps it in ``password``, and as sent in
    ``request``): connections outlive a sign-in. ldap3 prepares the password before sending it
    (RFC 4013) and refuses NUL and control characters: that is a wrong password, never sent."""
    try:
        return bool(connection.rebind(user=user, password=password, read_server_info=False))
    except LDAPSASLPrepError as exc:
        raise InvalidCredentials(log_detail=f"the password cannot be sent in an LDAP bind: {exc}") from None
    finally:
        connection.password = None
        connection.request = None


def close_quietly(connection: Connection) -> None:
    """Close a connection that may already be broken; the error that broke it is what matters."""
    try:
        connection.unbind()
    except (LDAPException, OSError):
        pass


def describe(exc: BaseException) -> str:
    """A log line for a connection failure that says what to fix."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, LDAPCertificateError) or "doesn't match" in text:
        return "TLS certificate does not name this host (refused): " + text[:200]
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate not trusted (refused; set DASH_AUTH_LDAP_CA_FILE to the CA that signed it): " + text[:200]
    if isinstance(exc, LDAPStartTLSError):
        return "StartTLS failed (refused; the server must offer TLS, or use ldaps://): " + text[:200]
    return text[:300]


class LdapConnector(PasswordConnector):
    name = "ldap"
    options = (URL, START_TLS, CA_FILE, TLS_VERIFY, BIND_DN, BIND_PASSWORD, USER_BASE, USER_FILTER,
               USER_DN_TEMPLATE, USERNAME_ATTRIBUTE, EMAIL_ATTRIBUTE, NAME_ATTRIBUTE, GROUP_BASE,
               GROUP_FILTER, NESTED_GROUPS, TIMEOUT)

    def __init__(
        self,
        urls: Sequence[str],
        *,
        user_base: str | None = None,
        user_filter: str = "(uid={username})",
        user_dn_template: str | None = None,
        bind_dn: str | None = None,
        bind_password: Secret | str | None = None,
        start_tls: bool = True,
        ca_file: str | None = None,
        tls_verify: bool = True,
        username_attribute: str | None = None,
        email_attribute: str = "mail",
        name_attribute: str = "displayName",
        group_base: str | None = None,
        group_filter: str = "(member={dn})",
        nested_groups: bool = False,
        timeout: int = 5,
    ) -> None:
        if not urls:
            raise ConfigurationError("DASH_AUTH_LDAP_URL is not set: use ldaps://host (comma-separated for failover)")
        endpoints = [parse_url(url) for url in urls]
        if user_dn_template:
            if "{username}" not in user_dn_template:
                raise ConfigurationError(f"DASH_AUTH_LDAP_USER_DN_TEMPLATE={user_dn_template!r} has no {{username}}")
        else:
            if not user_base or not bind_dn or not bind_password:
                raise ConfigurationError(
                    "the ldap connector needs DASH_AUTH_LDAP_USER_BASE, DASH_AUTH_LDAP_BIND_DN and "
                    "DASH_AUTH_LDAP_BIND_PASSWORD (or _FILE) to look people up, or "
                    "DASH_AUTH_LDAP_USER_DN_TEMPLATE to bind without a search"
                )
            if "{username}" not in user_filter or not user_filter.startswith("("):
                raise ConfigurationError(
                    f"DASH_AUTH_LDAP_USER_FILTER={user_filter!r} is not valid: use a filter in "
                    "parentheses with {username}, e.g. (uid={username})")
            check_filter(user_filter, "DASH_AUTH_LDAP_USER_FILTER", username="alice")
        if bool(bind_dn) != bool(bind_password):
            raise ConfigurationError("DASH_AUTH_LDAP_BIND_DN and DASH_AUTH_LDAP_BIND_PASSWORD go together: set both")
        service_password = bind_password.reveal() if isinstance(bind_password, Secret) else bind_password
        if service_password:
            try:  # what ldap3 does to it at every bind of the service account
                validate_simple_password(service_password)
            except LDAPSASLPrepError as exc:
                raise ConfigurationError(f"DASH_AUTH_LDAP_BIND_PASSWORD cannot be sent in a simple bind: {exc}") \
                    from None
        if group_base:
            if "{dn}" not in group_filter and "{username}" not in group_filter:
                raise ConfigurationError(
                    f"DASH_AUTH_LDAP_GROUP_FILTER={group_filter!r} has neither {{dn}} nor {{username}}")
            check_filter(group_filter, "DASH_AUTH_LDAP_GROUP_FILTER", dn="uid=alice,dc=example", username="alice")
        if ca_file:
            check_ca_file(ca_file)
        self.user_base = user_base
        self.user_filter = user_filter
        self.user_dn_template = user_dn_template
        self.bind_dn = bind_dn
        self.bind_password = bind_password if isinstance(bind_password, Secret) or bind_password is None \
            else Secret(bind_password)
        self.username_attribute = username_attribute or (
            _infer_username_attribute(user_dn_template, "DASH_AUTH_LDAP_USER_DN_TEMPLATE") if user_dn_template
            else _infer_username_attribute(user_filter, "DASH_AUTH_LDAP_USER_FILTER"))
        self.email_attribute = email_attribute
        self.name_attribute = name_attribute
        self.group_base = group_base
        self.group_filter = group_filter
        self.nested_groups = nested_groups
        self.tls_verify = tls_verify
        self.plaintext = [e.url for e in endpoints if not e.use_ssl and not start_tls]
        self.servers = Servers(endpoints, verify=tls_verify, ca_file=ca_file or None, start_tls=start_tls,
                               timeout=timeout)
        self._service: Connection | None = None
        self._service_lock = threading.Lock()
        for warning in self.insecure_settings():
            log.warning("dash-enterprise-auth: INSECURE LDAP SETTING: %s", warning)

    @classmethod
    def from_settings(cls, settings: Settings) -> "LdapConnector":
        return cls(
            settings.get(URL), user_base=settings.get(USER_BASE), user_filter=settings.get(USER_FILTER),
            user_dn_template=settings.get(USER_DN_TEMPLATE), bind_dn=settings.get(BIND_DN),
            bind_password=settings.get(BIND_PASSWORD), start_tls=settings.get(START_TLS),
            ca_file=settings.get(CA_FILE), tls_verify=settings.get(TLS_VERIFY),
            username_attribute=settings.get(USERNAME_ATTRIBUTE), email_attribute=settings.get(EMAIL_ATTRIBUTE),
            name_attribute=settings.get(NAME_ATTRIBUTE), group_base=settings.get(GROUP_BASE),
            group_filter=settings.get(GROUP_FILTER), nested_groups=settings.get(NESTED_GROUPS),
            timeout=settings.get(TIMEOUT),
        )

    def insecure_settings(self) -> list[str]:
        warnings = []
        if not self.tls_verify:
            warnings.append("DASH_AUTH_LDAP_TLS_VERIFY=false: server certificates are not checked, so anyone "
                            "on the network path can impersonate the directory and read every password")
        for url in self.plaintext:
            warnings.append(f"{url} without StartTLS (DASH_AUTH_LDAP_START_TLS=false): passwords cross the "
                            "network in clear text")
        return warnings

    # -- signing in --------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> Identity:
        if not username or not password:
            raise InvalidCredentials(log_detail="empty username or password (would be an unauthenticated bind)")
        username, password = text_credentials(username, password)
        if self.user_dn_template:
            dn = self.user_dn_template.replace("{username}", escape_rdn(username))
            entry = None
        else:
            try:
                entry = self._find_user(username)
            except InvalidCredentials as refused:
                # Answering at once would tell which usernames exist: pay for the bind anyway.
                if self._bind_as_nobody(password):
                    log.warning("dash-enterprise-auth: the LDAP directory accepted a password bind as a DN that "
                                "does not exist under %s; the sign-in was refused, but check the directory: "
                                "it may not be checking passwords", self.user_base)
                    refused.log_detail += "; the directory accepted a bind as a DN that does not exist (refused)"
                raise
            dn = entry["dn"]
        with self.servers.bound_as(dn, password) as (connection, bound):
            if not bound:
                code = connection.result.get("result")
                raise InvalidCredentials(
                    log_detail=f"directory refused the bind ({code} {connection.result.get('description')})")
            if entry is None:
                entry = self._read(connection, dn)
            reader = self._service_search if self.bind_dn else self._searcher(connection)
            if int(first(entry["attributes"], "userAccountControl") or 0) & AD_ACCOUNT_DISABLED:
                raise AccountLocked("This account is disabled in the directory. Contact your administrator.",
                                    log_detail="userAccountControl has the ACCOUNTDISABLE bit")
            group_dns = self._groups(entry, reader)
        return self._identity(entry, username, group_dns)

    def can_look_up(self) -> bool:
        return bool(self.bind_dn)

    def look_up(self, username: str) -> Identity:
        """The person's entry and groups, read by the service account with no password of theirs:
        the groups of a Kerberos sign-in when ldap is listed beside spnego."""
        if not self.bind_dn:
            raise DirectoryUnavailable(log_detail="a lookup without a password needs DASH_AUTH_LDAP_BIND_DN")
        if not_text(username) or not username.strip():
            raise InvalidCredentials(log_detail="an empty or unreadable username to look up")
        entry = self._find_user(username)
        attributes = entry["attributes"]
        if int(first(attributes, "userAccountControl") or 0) & AD_ACCOUNT_DISABLED:
            raise AccountLocked("This account is disabled in the directory. Contact your administrator.",
                                log_detail="userAccountControl has the ACCOUNTDISABLE bit")
        return self._identity(entry, username, self._groups(entry, self._service_search))

    def _identity(self, entry: dict[str, Any], typed: str, group_dns: list[str]) -> Identity:
        attributes = entry["attributes"]
        return Identity(
            username=self._username(attributes, typed),
            email=first(attributes, self.email_attribute),
            display_name=first(attributes, self.name_attribute) or first(attributes, "cn"),
            groups=tuple(rdn_value(g) for g in group_dns),
            group_ids=tuple(group_dns),
            attributes={"dn": entry["dn"]},
            connector=self.name,
        )

    # -- re-validation -----------------------------------------------------------------

    def revalidate(self, identity: Identity) -> Identity:
        """The service account reads the person's entry and groups again: a deleted entry (or
        one the user filter no longer finds), a password-policy lock (``pwdAccountLockedTime``),
        389-ds/FreeIPA's ``nsAccountLock`` or Active Directory's ACCOUNTDISABLE bit ends the session.
        Without a service account there is nothing to look with: the identity comes back as it was."""
        if not self.bind_dn:
            return identity
        if self.user_dn_template:
            dn = self.user_dn_template.replace("{username}", escape_rdn(identity.username))
            entries = self._service_search(dn, "(objectClass=*)", self._revalidation_attributes(), scope=BASE)
        else:
            entries = self._service_search(self.user_base, fill(self.user_filter, username=identity.username),
                                           self._revalidation_attributes(), size_limit=2)
        if len(entries) != 1:
            raise AccessRevoked(log_detail=f"{len(entries)} directory entries match this username now")
        entry = entries[0]
        problem = locked_because(entry["attributes"])
        if problem:
            raise AccessRevoked(log_detail=problem)
        try:
            return self._identity(entry, identity.username, self._groups(entry, self._service_search))
        except InvalidCredentials as exc:  # the entry lost its username attribute
            raise AccessRevoked(log_detail=exc.log_detail) from None

    def _revalidation_attributes(self) -> list[str]:
        # Operational attributes come back only when asked for by name.
        return [*self._user_attributes(), "pwdAccountLockedTime", "nsAccountLock"]

    def _username(self, attributes: Any, typed: str) -> str:
        """The directory's spelling of the username (``ALICE`` signs in as ``alice``)."""
        values = all_values(attributes, self.username_attribute)
        for value in values:
            if value.casefold() == typed.strip().casefold():
                return value
        if values:
            return values[0]
        raise InvalidCredentials(log_detail=f"entry has no {self.username_attribute} attribute")

    def _user_attributes(self) -> list[str]:
        wanted = [self.username_attribute, self.email_attribute, self.name_attribute, "cn", "userAccountControl"]
        if not self.group_base:
            wanted.append("memberOf")
        return wanted

    def _find_user(self, username: str) -> dict[str, Any]:
        entries = self._service_search(self.user_base, fill(self.user_filter, username=username),
                                       self._user_attributes(), size_limit=2)
        if not entries:
            raise InvalidCredentials(log_detail="no directory entry matches this username")
        if len(entries) > 1:
            raise InvalidCredentials(log_detail="the username matches more than one directory entry; "
                                                "make DASH_AUTH_LDAP_USER_FILTER or _USER_BASE narrower")
        return entries[0]

    def _bind_as_nobody(self, password: str) -> bool:
        """Bind with ``password`` as a DN that no entry has, the way a sign-in binds (:meth:`Servers.bound_as`),
        so refusing an unknown username costs what a wrong password costs.

        Returns whether the directory accepted the bind, for the log only: the caller refuses the
        sign-in whatever the answer (some directories and proxies accept any bind as a name they
        do not have)."""
        nobody = f"{self.username_attribute}={escape_rdn(secrets.token_urlsafe(24))},{self.user_base}"
        try:
            with self.servers.bound_as(nobody, password) as (_, bound):
                return bound
        except InvalidCredentials:  # a password no bind can carry: refused like the unknown name itself
            return False

    def _read(self, connection: Connection, dn: str) -> dict[str, Any]:
        entries = self._searcher(connection)(dn, "(objectClass=*)", self._user_attributes(), scope=BASE)
        if not entries:
            raise InvalidCredentials(log_detail="the bound user cannot read its own entry")
        return entries[0]

    # -- groups -------------------------------------------------------------------------

    def _groups(self, entry: dict[str, Any], search: Any) -> list[str]:
        """DNs of the person's groups (and of the groups containing them, when nested)."""
        if self.group_base:
            found = [g["dn"] for g in search(self.group_base, fill(self.group_filter, dn=entry["dn"],
                     username=first(entry["attributes"], self.username_attribute) or ""), [])]
        else:
            found = all_values(entry["attributes"], "memberOf")
        if not self.nested_groups:
            return found
        seen = {dn.lower(): dn for dn in found}
        frontier = list(found)
        for _ in range(MAX_NESTING):
            if not frontier or len(seen) >= MAX_NESTED_GROUPS:
                break
            parents = self._parents(frontier, search)
            frontier = [dn for dn in parents if dn.lower() not in seen]
            seen.update((dn.lower(), dn) for dn in frontier)
        return list(seen.values())

    def _parents(self, group_dns: list[str], search: Any) -> list[str]:
        if self.group_base:
            clauses = "".join(fill(self.group_filter, dn=dn, username="") for dn in group_dns)
            return [g["dn"] for g in search(self.group_base, f"(|{clauses})", [])]
        parents = []
        for dn in group_dns:
            for group in search(dn, "(objectClass=*)", ["memberOf"], scope=BASE):
                parents += all_values(group["attributes"], "memberOf")
        return parents

    # -- the service connection ------------------------------------------------------------

    def _searcher(self, connection: Connection) -> Any:
        def search(base: str, query: str, attributes: list[str], scope: str = SUBTREE,
                   size_limit: int = 0) -> list[dict[str, Any]]:
            return run_search(connection, base, query, attributes, scope, size_limit)
        return search

    def _service_search(self, base: str, query: str, attributes: list[str], scope: str = SUBTREE,
                        size_limit: int = 0) -> list[dict[str, Any]]:
        """Search with the shared service connection, reconnecting once if it broke."""
        with self._service_lock:
            for attempt in (1, 2):
                connection = self._service_connection()
                try:
                    return run_search(connection, base, query, attributes, scope, size_limit)
                except (LDAPException, OSError) as exc:
                    self._drop_service()
                    if attempt == 2:
                        raise DirectoryUnavailable(log_detail=f"directory search failed: {describe(exc)}") from None
        raise AssertionError("unreachable")

    def _service_connection(self) -> Connection:
        if self._service is not None and not self._service.closed and self._service.bound:
            return self._service
        self._drop_service()
        assert self.bind_dn and self.bind_password
        connection, bound = self.servers.connect(self.bind_dn, self.bind_password.reveal())
        if not bound:
            result = connection.result
            close_quietly(connection)
            raise DirectoryUnavailable(log_detail=(
                f"the service account's bind was refused ({result.get('result')} {result.get('description')}): "
                "check DASH_AUTH_LDAP_BIND_DN and DASH_AUTH_LDAP_BIND_PASSWORD"))
        self._service = connection
        return connection

    def _drop_service(self) -> None:
        if self._service is not None:
            close_quietly(self._service)
            self._service = None

    # -- operations ------------------------------------------------------------------------

    def ping(self) -> None:
        if self.bind_dn:
            self._service_search("", "(objectClass=*)", ["1.1"], scope=BASE)
        else:
            connection, _ = self.servers.connect()
            close_quietly(connection)

    def check(self, test_user: str | None = None) -> list[Finding]:
        findings = [Finding(False, "INSECURE: " + warning) for warning in self.insecure_settings()]
        for endpoint in self.servers.endpoints:
            tls = "LDAPS" if endpoint.use_ssl else ("StartTLS" if endpoint.url not in self.plaintext else "no TLS")
            verified = "certificate verified" if self.tls_verify else "certificate NOT verified"
            try:
                close_quietly(self.servers.connection(endpoint))
                findings.append(Finding(True, f"ldap server {endpoint.url}: answers, {tls}"
                                              + (f", {verified}" if tls != "no TLS" else "")))
            except (LDAPException, OSError, ssl.SSLError) as exc:
                findings.append(Finding(False, f"ldap server {endpoint.url}: {describe(exc)}"))
        if self.bind_dn:
            try:
                with self._service_lock:
                    self._service_connection()
                findings.append(Finding(True, f"ldap service account {self.bind_dn}: bind works"))
            except DirectoryUnavailable as exc:
                findings.append(Finding(False, f"ldap service account {self.bind_dn}: {exc.log_detail}"))
        if test_user:
            findings.append(self._check_user(test_user))
        return findings

    def _check_user(self, username: str) -> Finding:
        if not self.bind_dn:
            return Finding(False, f"ldap user {username}: a lookup needs DASH_AUTH_LDAP_BIND_DN")
        try:
            entry = self._find_user(username)
            groups = [rdn_value(g) for g in self._groups(entry, self._service_search)]
        except (InvalidCredentials, DirectoryUnavailable) as exc:
            return Finding(False, f"ldap user {username}: {exc.log_detail}")
        return Finding(True, f"ldap user {username}: {entry['dn']}, groups: {', '.join(groups) or '(none)'}")


def run_search(connection: Connection, base: str, query: str, attributes: list[str], scope: str,
               size_limit: int) -> list[dict[str, Any]]:
    """Entries found (references and referrals ignored); raise on a failed search."""
    connection.search(base, query, search_scope=scope, attributes=attributes, size_limit=size_limit)
    code = connection.result.get("result")
    if code not in (SUCCESS, SIZE_LIMIT_EXCEEDED, NO_SUCH_OBJECT):
        raise DirectoryUnavailable(log_detail=(
            f"directory search under {base!r} failed: {code} {connection.result.get('description')} "
            f"{connection.result.get('message') or ''}".strip()))
    return [{"dn": r["dn"], "attributes": r.get("attributes", {})}
            for r in connection.response or () if r.get("type") == "searchResEntry"]
