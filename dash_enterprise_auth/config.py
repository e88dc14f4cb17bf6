"""Core settings: every ``DASH_AUTH_*`` name the core knows, with its default.

Connector settings are declared by each connector (``Connector.options``) and
read through the same :class:`~dash_enterprise_auth.settings.Settings`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigurationError
from .privacy import PrivacyLevel
from .settings import Option, Secret, Settings, count, name_list, one_of, seconds, text

CONNECTOR = Option("DASH_AUTH_CONNECTOR", text,
                   help="basic | ldap | saml | oidc | plotly | spnego, or several: spnego,ldap")
PRIVACY = Option("DASH_AUTH_PRIVACY", one_of(*(p.value for p in PrivacyLevel)), "restricted")
ALLOWED_USERS = Option("DASH_AUTH_ALLOWED_USERS", name_list, ())
ALLOWED_GROUPS = Option("DASH_AUTH_ALLOWED_GROUPS", name_list, ())
PUBLIC_PATHS = Option("DASH_AUTH_PUBLIC_PATHS", name_list, ())
SECRET_KEY = Option("DASH_AUTH_SECRET_KEY", text, secret=True)
SESSION_STORE = Option("DASH_AUTH_SESSION_STORE", text)
IDLE_TIMEOUT = Option("DASH_AUTH_SESSION_IDLE_TIMEOUT", seconds, 8 * 3600)
MAX_AGE = Option("DASH_AUTH_SESSION_MAX_AGE", seconds, 24 * 3600)
PROXY_HOPS = Option("DASH_AUTH_PROXY_HOPS", count, 0)
REVALIDATE_INTERVAL = Option("DASH_AUTH_REVALIDATE_INTERVAL", count, 300,
                             help="seconds between checks that a signed-in person is still allowed at the "
                                  "provider; 0 turns them off")
LOGOUT_URL = Option("DASH_LOGOUT_URL", text)
KRB5_REALM = Option("DASH_AUTH_KRB5_REALM", text,
                    help="realm in which password sign-ins also get a Kerberos ticket (e.g. CORP.EXAMPLE.COM); "
                         "the realm of Kerberos sign-ins (spnego)")
KRB5_KEYTAB = Option("DASH_AUTH_KRB5_KEYTAB", text,
                     help="the app's keytab: accepts Kerberos sign-ins (spnego), and gets tickets for SAML/OIDC "
                          "sign-ins by constrained delegation (S4U)")
KRB5_SERVICE_PRINCIPAL = Option("DASH_AUTH_KRB5_SERVICE_PRINCIPAL", text,
                                help="the app's principal in that keytab (spnego: HTTP/<host of the request>)")
KRB5_DELEGATE_TO = Option("DASH_AUTH_KRB5_DELEGATE_TO", name_list, (),
                          help="services to get tickets for on the viewer's behalf, e.g. HTTP/reports.corp")

CORE_OPTIONS = (
    CONNECTOR, PRIVACY, ALLOWED_USERS, ALLOWED_GROUPS, PUBLIC_PATHS, SECRET_KEY,
    SESSION_STORE, IDLE_TIMEOUT, MAX_AGE, PROXY_HOPS, REVALIDATE_INTERVAL, LOGOUT_URL, KRB5_REALM, KRB5_KEYTAB,
    KRB5_SERVICE_PRINCIPAL, KRB5_DELEGATE_TO,
)

MIN_SECRET_LENGTH = 32
DEFAULT_STORE_FILE = "dash-auth-sessions.sqlite3"


@dataclass(frozen=True)
class CoreConfig:
    privacy: PrivacyLevel
    allowed_users: tuple[str, ...]
    allowed_groups: tuple[str, ...]
    public_paths: tuple[str, ...]
    secret_key: Secret
    session_store: str | None  # None: SQLite in the Flask app's instance folder
    idle_timeout: int
    max_age: int
    proxy_hops: int
    logout_url: str | None
    revalidate_interval: int = 300  # 0: never
    krb5_realm: str | None = None
    krb5_keytab: str | None = None
    krb5_service_principal: str | None = None
    krb5_delegate_to: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, privacy: str | None = None,
                      accepts_tickets: bool = False) -> "CoreConfig":
        """Read and cross-check the core settings; fail with one clear line. ``privacy``
        is the level a connector imposes (Plotly's sharing), instead of DASH_AUTH_PRIVACY;
        ``accepts_tickets`` says the connector accepts Kerberos tickets with the keytab (spnego),
        for which the service principal may follow the host of each request."""
        secret = settings.get(SECRET_KEY)
        if secret is None:
            raise ConfigurationError(
                "DASH_AUTH_SECRET_KEY is not set: set it (or DASH_AUTH_SECRET_KEY_FILE) to a random "
                f"value of at least {MIN_SECRET_LENGTH} characters, the same for every worker, e.g. "
                "the output of: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if len(secret.reveal()) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"DASH_AUTH_SECRET_KEY='**********' is not valid: use a random value of at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        config = cls(
            privacy=PrivacyLevel(privacy or settings.get(PRIVACY)),
            allowed_users=settings.get(ALLOWED_USERS),
            allowed_groups=settings.get(ALLOWED_GROUPS),
            public_paths=settings.get(PUBLIC_PATHS),
            secret_key=secret,
            session_store=settings.get(SESSION_STORE),
            idle_timeout=settings.get(IDLE_TIMEOUT),
            max_age=settings.get(MAX_AGE),
            proxy_hops=settings.get(PROXY_HOPS),
            logout_url=settings.get(LOGOUT_URL),
            revalidate_interval=settings.get(REVALIDATE_INTERVAL),
            krb5_realm=settings.get(KRB5_REALM),
            krb5_keytab=settings.get(KRB5_KEYTAB),
            krb5_service_principal=settings.get(KRB5_SERVICE_PRINCIPAL),
            krb5_delegate_to=settings.get(KRB5_DELEGATE_TO),
        )
        if (config.krb5_keytab or config.krb5_delegate_to) and not (
                config.krb5_realm and config.krb5_keytab and (config.krb5_service_principal or (
                    accepts_tickets and not config.krb5_delegate_to))):
            raise ConfigurationError(
                "Kerberos tickets by delegation need DASH_AUTH_KRB5_REALM, DASH_AUTH_KRB5_KEYTAB and "
                "DASH_AUTH_KRB5_SERVICE_PRINCIPAL together (and DASH_AUTH_KRB5_DELEGATE_TO for the targets)")
        if config.privacy is PrivacyLevel.RESTRICTED and not (config.allowed_users or config.allowed_groups):
            raise ConfigurationError(
                "DASH_AUTH_PRIVACY=restricted (the default) lets nobody in: set DASH_AUTH_ALLOWED_USERS "
                "or DASH_AUTH_ALLOWED_GROUPS, or use DASH_AUTH_PRIVACY=authorized for any signed-in user"
            )
        return config
