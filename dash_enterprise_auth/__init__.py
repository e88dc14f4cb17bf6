"""Single sign-on for Dash and Flask apps, with the commercial ``dash_enterprise_auth`` API."""
from __future__ import annotations

from .api import (
    accessible_pages,
    KerberosTicketUnavailable,
    get_kerberos_ticket_cache,
    get_user_data,
    get_username,
    kerberos_ccache,
    kerberos_ccache_file,
    set_user_data,
    set_username,
)
from .compat import (
    BasicAuth, PlotlyAuth, check_groups, list_groups, protected, protected_callback, public_callback,
)
from .components import create_logout_button
from .errors import (
    AccountLocked,
    AuthenticationError,
    ConfigurationError,
    InvalidCredentials,
    ServiceUnavailable,
    SessionEnded,
    TooManyAttempts,
)
from .install import protect
from .protection import Protection, is_authorized_hook

__version__ = "0.1.0"

__all__ = [
    "accessible_pages", "AccountLocked", "AuthenticationError", "BasicAuth", "ConfigurationError", "InvalidCredentials",
    "KerberosTicketUnavailable", "PlotlyAuth", "Protection", "ServiceUnavailable", "SessionEnded", "TooManyAttempts",
    "check_groups", "create_logout_button", "get_kerberos_ticket_cache", "get_user_data",
    "get_username", "is_authorized_hook", "kerberos_ccache", "kerberos_ccache_file", "list_groups", "protect", "protected", "protected_callback", "public_callback",
    "set_user_data", "set_username",
]
