"""The package's routes under ``<routes prefix>/_dash-auth/``: sign in, sign out, health and the rest.

Each route is a function of (protection, request, viewer) to an answer; the
adapters send every request whose path is under ``_dash-auth/`` here, after
the guard has resolved its viewer.
"""
from __future__ import annotations

import logging
import time
from importlib.resources import files
from urllib.parse import quote
from typing import Callable

from . import negotiate, round_trip
from .audit import audit
from .connectors.base import BackChannelLogout, RedirectConnector, ServiceMetadata, SingleLogout
from .errors import AuthenticationError, Replayed, ServiceUnavailable
from .origin import is_cross_site, is_same_origin_navigation
from .pages import api_error
from .protection import Protection
from .urls import safe_next
from .viewer import Viewer
from .web import Answer, Request

log = logging.getLogger("dash_enterprise_auth")

STATIC_TYPES = {"session.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}

Route = Callable[[Protection, Request, "Viewer | None"], Answer]


def handle(protection: Protection, request: Request, viewer: Viewer | None) -> Answer:
    """The answer of the package route ``request.path`` names (404 for none, 405 for a wrong method)."""
    name = request.path[len(protection.prefixes.package_route("")):]
    route, methods = _route(name)
    if route is None:
        return protection.pages.problem(request, 404, "There is nothing here.", "Not found")
    if request.method not in methods:
        answer = api_error(405, "Method not allowed.")
        answer.headers["Allow"] = ", ".join(methods)
        return answer
    return route(protection, request, viewer)


def _route(name: str) -> tuple[Route | None, tuple[str, ...]]:
    if name.startswith("callback/"):
        return callback, ("GET", "POST")
    if name.startswith("static/"):
        return static, ("GET", "HEAD")
    if name.startswith("backchannel-logout/"):
        return backchannel_logout, ("POST",)
    if name.startswith("login/"):
        return login_with, ("GET",)
    return ROUTES.get(name, (None, ()))


# -- helpers ---------------------------------------------------------------------------------

def app_root(protection: Protection, request: Request) -> str:
    return protection.prefixes.app_root(request)


def next_target(protection: Protection, request: Request) -> str:
    return safe_next(request.value("next"), app_root(protection, request))


def login_form(protection: Protection, request: Request, status: int = 200, error: str | None = None,
               username: str = "") -> Answer:
    return protection.pages.page(request, "login.html", status, error=error, username=username,
                                 **sign_in_choices(protection, request))


def sign_in_choices(protection: Protection, request: Request) -> dict:
    """What the sign-in page offers: the password form (when a password connector is listed) and a
    button per redirect connector, each keeping ``next``."""
    next_url = next_target(protection, request)
    methods = protection.methods
    return {
        "password": methods.password is not None, "next": next_url,
        "action": protection.prefixes.package_url(request, "login"),
        "choices": [(methods.labels[c.name], protection.prefixes.package_url(request, f"login/{c.name}")
                     + "?next=" + quote(next_url, safe="/")) for c in methods.redirects],
    }


def unavailable(protection: Protection, request: Request, exc: ServiceUnavailable) -> Answer:
    log.error("dash-enterprise-auth: %s", exc.log_detail)
    return protection.pages.problem(request, 503, exc.user_message, "Sign-in unavailable")


def refused(protection: Protection, request: Request, exc: AuthenticationError) -> Answer:
    """A refused round trip: always a page, as only browsers come back from a provider."""
    return protection.pages.page(request, "message.html", exc.status, title="Sign-in failed",
                                 message=exc.user_message,
                                 retry_url=protection.prefixes.sign_in_url(request, app_root(protection, request)))


# -- routes ------------------------------------------------------------------------------------

def login(protection: Protection, request: Request, viewer: Viewer | None) -> Answer:
    methods = protection.methods
    if request.method == "GET":
        if viewer is not None and viewer.record is not None and protection.policy.allows(viewer.identity):
            return Answer.redirect(next_target(protection, request))
        if methods.negotiate is not None:
            return negotiate.sign_in(protection, request, next_target(protection, request),
                                     sign_in_choices(protection, request))
        if not methods.offers_choice():
            return start_round_trip(protection, request, methods.redirects[0])
        return login_form(protection, request)
    if methods.password is None:
        how = "with Kerberos" if methods.negotiate is not None else "through its identity provider"
        return protection.pages.problem(request, 405, f"This app signs in {how}.",
                                        "Sign in elsewhere", retry_url=protection.prefixes.sign_in_url(request))
    if is_cross_site(request):
        audit("sign_in_failed", user=None, client=request.client, outcome="refused", reason="cross-site sign-in form")
        return protection.pages.problem(request, 403, "This sign-in came from another site and was refused. "
                                        "Open the app and sign in from its own page.", "Sign-in refused")
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    try:
        identity = protection.verify_password(username, password, request.client, via="form")
        token = protection.complete_sign_in(identity, request, via="form", password=password)
    except ServiceUnavailable as exc:
        return unavailable(protection, request, exc)
    except AuthenticationError as exc:
        answer = login_form(protection, request, exc.status, exc.user_message, username.strip()[:256])
        if exc.status == 429:
            answer.headers["Retry-After"] = str(getattr(exc, "retry_after", 60))
        return answer
    answer = Answer.redirect(next_target(protection, request))
    protection.set_cookie(answer, request, token)
    return answer


def login_with(protection: Protection, request: Request, viewer: Viewer | None) -> Answer:
    """``login/<name>``: the sign-in page's button for one redirect connector."""
    connector = protection.methods.named(request.path.rsplit("/", 1)[-1])
    if not isinstance(connector, RedirectConnector):
        return protection.pages.problem(request, 404, "This app has no such sign-in method.", "Not found")
    return start_round_trip(protection, request, connector)


def start_round_trip(protection: Protection, request: Request, connector: RedirectConnector) -> Answer:
    try:
        return round_trip.start(protection, request, next_target(protection, request), connector)
    except ServiceUnavailable as exc:
        return unavailable(protection, request, exc)
    except AuthenticationError as exc:
        return refused(protection, request, exc)
    except Exception:  # a connector bug must give the outage page, not a bare 500
        log.exception("dash-enterprise-auth: the %s connector failed to start a sign-in", connector.name)
        return unavailable(protection, request, ServiceUnavailable(log_detail="connector error"))


def metadata(protection: Protection, request: Request, viewer: Viewer | None) -> Answer:
    """The app as the provider must know it (SAML SP metadata), for the IdP's admin."""
    connector = protection.methods.first(ServiceMetadata)
    if connector is None:
        return protection.pages.problem(request, 404, "This app's sign-in has no metadata document.", "Not found")
    callback = request.host_url.rstrip("/") + protection.prefixes.package_url(request, f"callback/{connector.name}")
    try:
        document = connector.metadata_document(callback)
    except ServiceUnavailable as exc:
        return unavailable(protection, request, exc)
    answer = Answer(200, document.encode())
    answer.headers["Content-Type"] = "application/samlmetadata+xml"
    return answer


def single_logout(protection: Protection, request: Request, viewer: Viewer | None) -> Answer:
    """SAML single logout: the IdP's answer to our logout, or its request to end sessions here."""
    connector = protection.methods.first(SingleLogout)
    if connector is None:
        return protection.pages.problem(request, 404, "This app's sign-in has no single logout.", "Not found")
    signed_out = protection.prefixes.package_url(request, "signed-out")

    def end_sessions(name: str, logout_ids: list[str]) -> None:
        count = sum(protection.store.delete_by_logout_id(i) for i in logout_ids)
        audit("sign_out", user=name, client=request.client, outcome="success", via="idp", sessions=count)

    try:
        target = connector.single_logout(round_trip.provider_request(protection, request, connector), end_sessions)
    except ServiceUnavailable as exc:
        return unavailable(protection, request, exc)
    except AuthenticationError as exc:
        log.warning("dash-enterprise-auth: single logout refused: %s", exc.log_detail)
        return refused(protection, request, exc)
    own = request.host_url.rstrip("/") + signed_out
    answer = Answer.redirect(target if target and not target.startswith(own) else signed_out)
    protection.clear_cookie(answer, request)
    return answer


def backchannel_logout(protection: Protection, request: Request, viewer: Viewer | None) -> Answer:
    """OpenID Connect Back-Channel Logout: the provider's server says sign-ins ended there.

    A server-to-server POST with no cookie and no browser: no origin or CSRF check applies, the
    provider's signed, single-use logout token is the only credential. 200 once the sessions
    have ended on every worker and host; 400 (the reason in the log) for a token that is not
    valid or was seen before, ending nothing; 503 when the session store (or the provider's
    keys) cannot be reached, ending nothing either, so the provider may send it again.
    """
    connector = protection.methods.named(request.path.rsplit("/", 1)[-1])
    if not isinstance(connector, BackChannelLogout):
        return api_error(404, "This app's sign-in has no back-channel logout here.")
    try:
        notice = connector.logout_notice(request.form)
        # Seen first, then ended: a replay must end nothing, even sessions started since.
        if not protection.store.remember_once(notice.once_id, max(1.0, notice.until - time.time())):
            raise Replayed(log_detail="logout token refused: its jti was seen before (replay)")
        count = sum(protection.store.delete_by_logout_id(i) for i in notice.logout_ids)
    except ServiceUnavailable as exc:
        log.error("dash-enterprise-auth: back-channel logout not done, nothing ended: %s", exc.log_detail)
        return _no_store(api_error(503, "temporarily_unavailable"))
    except AuthenticationError as exc:
        log.warning("dash-enterprise-auth: back-channel logout refused: %s", exc.log_detail)
        audit("sign_out", user=None, client=request.client, outcome="refused", via="backchannel",
              reason=exc.log_detail or type(exc).__name__)
        return _no_store(api_error(400, "invalid_request", error_description="The logout token is not valid."))
    except Exception:  # a connector bug must refuse the notice, not crash the route
        log.exception("dash-enterprise-auth: the %s connector failed on a back-channel logout", connector.name)
        return _no_store(api_error(400, "invalid_request", error_description="The logout token is not valid."))
    audit("sign_out", user=notice.subject, client=request.client, outcome="success", via="backchannel",
          sessions=count)
    return _no_store(Answer(200))


def _no_store(answer: Answer) -> Answer:
    answer.headers["Cache-Control"] = "no-store"
    return answer


def callback(protection: Protection, request: Request, viewer: Viewer | None) -> Answer:
    """Where the identity provider sends the browser back (OAuth redirect URI, SAML ACS)."""
    name = request.path.rsplit("/", 1)[-1]
    connector = protection.methods.named(name)
    if not isinstance(connector, RedirectConnector):
        return protection.pages.problem(request, 404, "There is no sign-in in progress here.", "Not found")
    try:
        identity, target = round_trip.finish(protection, request, connector)
    except ServiceUnavailable as exc:
        return unavailable(protection, request, exc)
    except AuthenticationError as exc:
        audit("sign_in_failed", user=None, client=request.client, outcome="refused", via=name,
              reason=exc.log_detail or type(exc).__name__)
        return refused(protection, request, exc)
    except Exception:  # a connector bug must refuse the sign-in, not crash the page
        log.exception("dash-enterprise-auth: the %s connector failed on a callback", name)
        audit("sign_in_failed", user=None, client=request.client, outcome="refused", via=name, reason="connector error")
        return refused(protection, request, AuthenticationError("The identity provider's answer could not be processed."))
    try:
        token = protection.complete_sign_in(identity, request, via=name)
    except ServiceUnavailable as exc:
        return unavailable(protection, request, exc)
    except AuthenticationError as exc:
        return refused(protection, request, exc)
    answer = Answer.redirect(safe_next(target, app_root(protection, request)))
    protection.set_cookie(answer, request, token)
    round_trip.forget_state(protection, request, answer)
    return answer


def logout(protection: Protection, request: Request, viewer: Viewer | None) -> Answer:
    signed_out = Answer.redirect(protection.prefixes.package_url(request, "signed-out"))
    if viewer is None or viewer.record is None:
        try:
            protection.viewer_from_cookie(request)  # the store is down: say so rather than pretend
        except ServiceUnavailable as exc:
            return unavailable(protection, request, exc)
        protection.clear_cookie(signed_out, request)
        return signed_out
    if request.method == "GET":
        confirmed = is_same_origin_navigation(request)
    else:
        confirmed = protection.form_token.valid(request.form.get("token"), viewer.record.key) or (
            not is_cross_site(request) and "Sec-Fetch-Site" in request.headers
        )
    if not confirmed:
        return protection.pages.page(
            request, "logout_confirm.html", 200 if request.method == "GET" else 403, viewer=viewer.identity,
            action=protection.prefixes.package_url(request, "logout"),
            token=protection.form_token.issue(viewer.record.key), cancel=app_root(protection, request),
        )
    try:
        protection.sessions.end(viewer.record)
    except ServiceUnavailable as exc:
        return unavailable(protection, request, exc)
    audit("sign_out", user=viewer.identity.username, client=request.client, outcome="success")
    connector = protection.methods.of(viewer.identity)  # single logout at the provider that signed them in
    connector.sign_out(viewer.identity)
    signed_out_url = request.host_url.rstrip("/") + protection.prefixes.package_url(request, "signed-out")
    target = connector.logout_url(viewer.identity, signed_out_url)
    answer = Answer.redirect(target) if target else signed_out
    protection.clear_cookie(answer, request)
    return answer


def signed_out(protection: Protection, request: Request, viewer: Viewer | None) -> Answer:
    return protection.pages.page(request, "signed_out.html",
                                 sign_in_url=protection.prefixes.sign_in_url(request, app_root(protection, request)))


def health(protection: Protection, request: Request, viewer: Viewer | None) -> Answer:
    try:
        protection.store.ping()
        for connector in protection.methods.all:
            connector.ping()
    except ServiceUnavailable as exc:
        log.error("dash-enterprise-auth: health check failed: %s", exc.log_detail)
        return api_error(503, "unavailable")
    return Answer.json(200, {"status": "ok"})


def static(protection: Protection, request: Request, viewer: Viewer | None) -> Answer:
    name = request.path.rsplit("/", 1)[-1]
    content_type = STATIC_TYPES.get(name)
    if content_type is None or request.path != protection.prefixes.package_route(f"static/{name}"):
        return protection.pages.problem(request, 404, "There is nothing here.", "Not found")
    answer = Answer(200, files("dash_enterprise_auth").joinpath("static", name).read_bytes())
    answer.headers.update({"Content-Type": content_type, "Cache-Control": "no-cache",
                           "X-Content-Type-Options": "nosniff"})
    return answer


ROUTES: dict[str, tuple[Route, tuple[str, ...]]] = {
    "login": (login, ("GET", "POST")),
    "logout": (logout, ("GET", "POST")),
    "signed-out": (signed_out, ("GET",)),
    "health": (health, ("GET",)),
    "saml/metadata": (metadata, ("GET",)),
    "saml/sls": (single_logout, ("GET", "POST")),
}
