"""Exceptions that carry a message fit for a user and details for the log.

Callers branch on the type, never on the text. ``user_message`` may be shown
on a page; ``log_detail`` goes to the operator's log. Neither holds a secret.
"""
from __future__ import annotations


class ConfigurationError(Exception):
    """A setting is missing or malformed; raised at start-up, never per request."""


class AuthenticationError(Exception):
    """Sign-in did not produce an identity."""

    status = 401
    default_message = "Sign-in failed."

    def __init__(self, user_message: str | None = None, log_detail: str = "") -> None:
        self.user_message = user_message or self.default_message
        self.log_detail = log_detail
        super().__init__(self.user_message)


class InvalidCredentials(AuthenticationError):
    """Wrong username or password; deliberately does not say which."""

    default_message = "The username or password is incorrect."


class AccountLocked(AuthenticationError):
    """The identity provider knows the account but refuses it (disabled, locked)."""

    status = 403
    default_message = "This account is locked or disabled. Contact your administrator."


class TooManyAttempts(AuthenticationError):
    """Throttled: even the right password is refused until ``retry_after`` seconds pass."""

    status = 429
    default_message = "Too many failed sign-in attempts. Try again later."

    def __init__(self, retry_after: int, log_detail: str = "") -> None:
        self.retry_after = retry_after
        minutes = max(1, round(retry_after / 60))
        super().__init__(
            f"Too many failed sign-in attempts. Try again in about {minutes} minute"
            f"{'s' if minutes != 1 else ''}.",
            log_detail,
        )


class ServiceUnavailable(AuthenticationError):
    """The session store or the identity provider does not answer; fail closed."""

    status = 503
    default_message = "The sign-in service is unavailable right now. Try again in a few minutes."


class SessionStoreUnavailable(ServiceUnavailable):
    """The session store (SQLite file, Redis) failed; nobody is let in meanwhile."""


class ProviderUnavailable(ServiceUnavailable):
    """The identity provider (directory, IdP, OAuth server) does not answer."""

    default_message = ("The identity provider does not answer right now, so nobody can sign in. "
                       "Try again in a few minutes.")


class AccessRevoked(AuthenticationError):
    """Re-validation: the provider no longer lets this signed-in person in (deleted, disabled,
    locked, grant revoked); their session ends. Not raised for "cannot tell now", which is
    a ServiceUnavailable and leaves the session alone."""

    default_message = "Your access to this app has ended. Sign in again."


class ProviderRefused(AuthenticationError):
    """The provider, or its answer, did not give a sign-in."""

    default_message = "The identity provider did not sign you in. Please try again."


class RealmNotAllowed(AuthenticationError):
    """A valid Kerberos sign-in from a realm this app does not accept (``DASH_AUTH_KRB5_ALLOWED_REALMS``)."""

    status = 403

    def __init__(self, realm: str, log_detail: str = "") -> None:
        self.realm = realm
        super().__init__(f"Accounts of the Kerberos realm {realm} cannot sign in to this app. Sign in with an "
                         "account of the app's own realm, or ask its administrator to allow yours.", log_detail)


class SessionEnded(AuthenticationError):
    """The viewer's session ended (signed out elsewhere, revoked, expired) while a request ran:
    the request is answered as one without a session."""

    default_message = "Not signed in, or the session has ended. Sign in again."


class SignInRequired(AuthenticationError):
    """An anonymous viewer reached something of the app (a page's callback) that needs sign-in."""

    default_message = "Not signed in, or the session has ended. Sign in again."


class NotAllowed(AuthenticationError):
    """A signed-in viewer reached something of the app (a page's callback) their rule does not open."""

    status = 403
    default_message = "You may not use this part of the app."


class SignInExpired(AuthenticationError):
    """A provider's answer whose single-use state is unknown, used or expired."""

    status = 400
    default_message = "This sign-in has expired or was already used. Please sign in again."


class WrongBrowser(AuthenticationError):
    """A provider's answer reaching a browser other than the one that started the sign-in."""

    status = 400
    default_message = ("This sign-in was started in another browser or tab. Please sign in again from "
                       "this window.")


class Replayed(AuthenticationError):
    """A one-time answer (a SAML assertion) used a second time."""

    status = 400
    default_message = "This sign-in answer was used before. Please sign in again."


class KerberosTicketUnavailable(RuntimeError):
    """No Kerberos ticket exists for this viewer's sign-in, or it has expired."""
