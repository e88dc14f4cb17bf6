"""Single sign-on for Dash and Flask apps, with the commercial ``dash_enterprise_auth`` API."""
from __future__ import annotations

from .api import (
    KerberosTicketUnavailable,
    get_kerberos_ticket_cache,
    get_user_data,
    get_username,
    set_user_data,
    set_username,
)
from .components import create_logout_button
from .errors import (
    AccountLocked,
    AuthenticationError,
    ConfigurationError,
    InvalidCredentials,
    ServiceUnavailable,
    TooManyAttempts,
)
from .protection import Protection, is_authorized_hook, protect

__version__ = "0.1.0"

__all__ = [
    "AccountLocked", "AuthenticationError", "ConfigurationError", "InvalidCredentials",
    "KerberosTicketUnavailable", "Protection", "ServiceUnavailable", "TooManyAttempts",
    "create_logout_button", "get_kerberos_ticket_cache", "get_user_data", "get_username",
    "is_authorized_hook", "protect", "set_user_data", "set_username",
]
