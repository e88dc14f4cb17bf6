"""The package's routes under ``<routes prefix>/_dash-auth/``: sign in, sign out, health."""
from __future__ import annotations

import logging

import flask
from flask import Blueprint, Response, request

from . import round_trip
from .audit import audit
from .errors import AuthenticationError, ServiceUnavailable
from .origin import is_cross_site, is_same_origin_navigation
from .pages import api_error, page, problem
from .protection import Protection
from .urls import Prefixes, safe_next
from .viewer import current_viewer

log = logging.getLogger("dash_enterprise_auth")


def build_blueprint(protection: Protection, prefixes: Prefixes) -> Blueprint:
    blueprint = Blueprint(
        "dash_enterprise_auth", __name__, url_prefix=prefixes.package_route("").rstrip("/"),
        template_folder="templates", static_folder="static",
    )

    def app_root() -> str:
        return prefixes.app_root(request)

    def next_target() -> str:
        return safe_next(request.values.get("next"), app_root())

    def login_form(status: int = 200, error: str | None = None, username: str = "") -> Response:
        return page(
            "login.html", status, app_title=protection.title(), error=error, username=username,
            next=next_target(), action=prefixes.package_url(request, "login"),
        )

    def unavailable(exc: ServiceUnavailable) -> Response:
        log.error("dash-enterprise-auth: %s", exc.log_detail)
        return problem(request, 503, exc.user_message, "Sign-in unavailable", protection.title())

    def refused(exc: AuthenticationError) -> Response:
        """A refused round trip: always a page, as only browsers come back from a provider."""
        return page("message.html", exc.status, title="Sign-in failed", message=exc.user_message,
                    app_title=protection.title(), retry_url=prefixes.sign_in_url(request, app_root()))

    @blueprint.route("/login", methods=["GET", "POST"])
    def login() -> Response:
        if request.method == "GET":
            viewer = current_viewer("login")
            if viewer is not None and viewer.record is not None and protection.policy.allows(viewer.identity):
                return flask.redirect(next_target(), 302)
            if not protection.accepts_passwords:
                try:
                    return round_trip.start(protection, request, next_target())
                except ServiceUnavailable as exc:
                    return unavailable(exc)
                except AuthenticationError as exc:
                    return refused(exc)
                except Exception:  # a connector bug must give the outage page, not a bare 500
                    log.exception("dash-enterprise-auth: the %s connector failed to start a sign-in",
                                  protection.connector.name)
                    return unavailable(ServiceUnavailable(log_detail="connector error"))
            return login_form()
        if not protection.accepts_passwords:
            return problem(request, 405, "This app signs in through its identity provider.",
                           "Sign in elsewhere", protection.title(), retry_url=prefixes.sign_in_url(request))
        if is_cross_site(request):
            audit("sign_in_failed", user=None, client=request.remote_addr, outcome="refused",
                  reason="cross-site sign-in form")
            return problem(request, 403, "This sign-in came from another site and was refused. "
                           "Open the app and sign in from its own page.", "Sign-in refused",
                           protection.title())
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        client = request.remote_addr or ""
        try:
            identity = protection.sign_in(username, password, client, via="form")
            token = protection.start_session(identity, request)
        except ServiceUnavailable as exc:
            return unavailable(exc)
        except AuthenticationError as exc:
            response = login_form(exc.status, exc.user_message, username.strip()[:256])
            if exc.status == 429:
                response.headers["Retry-After"] = str(getattr(exc, "retry_after", 60))
            return response
        audit("sign_in", user=identity.username, client=client, outcome="success", via="form",
              connector=protection.connector.name)
        response = flask.redirect(next_target(), 302)
        protection.set_cookie(response, request, token)
        return response

    @blueprint.route("/saml/metadata")
    def metadata() -> Response:
        """The app as the provider must know it (SAML SP metadata), for the IdP's admin."""
        callback = request.host_url.rstrip("/") + prefixes.package_url(request, f"callback/{protection.connector.name}")
        try:
            document = protection.connector.metadata_document(callback)
        except ServiceUnavailable as exc:
            return unavailable(exc)
        if document is None:
            return problem(request, 404, "This app's sign-in has no metadata document.", "Not found",
                           protection.title())
        return Response(document, 200, content_type="application/samlmetadata+xml")

    @blueprint.route("/saml/sls", methods=["GET", "POST"])
    def single_logout() -> Response:
        """SAML single logout: the IdP's answer to our logout, or its request to end sessions here."""
        connector = protection.connector
        if not hasattr(connector, "single_logout"):
            return problem(request, 404, "This app's sign-in has no single logout.", "Not found", protection.title())
        signed_out = prefixes.package_url(request, "signed-out")

        def end_sessions(name: str, logout_ids: list[str]) -> None:
            count = sum(protection.store.delete_by_logout_id(i) for i in logout_ids)
            audit("sign_out", user=name, client=request.remote_addr, outcome="success", via="idp", sessions=count)

        try:
            target = connector.single_logout(round_trip.provider_request(protection, request), end_sessions)
        except ServiceUnavailable as exc:
            return unavailable(exc)
        except AuthenticationError as exc:
            log.warning("dash-enterprise-auth: single logout refused: %s", exc.log_detail)
            return refused(exc)
        own = request.host_url.rstrip("/") + signed_out
        response = flask.redirect(target if target and not target.startswith(own) else signed_out, 302)
        protection.clear_cookie(response, request)
        return response

    @blueprint.route("/callback/<name>", methods=["GET", "POST"])
    def callback(name: str) -> Response:
        """Where the identity provider sends the browser back (OAuth redirect URI, SAML ACS)."""
        if protection.accepts_passwords or name != protection.connector.name:
            return problem(request, 404, "There is no sign-in in progress here.", "Not found",
                           protection.title())
        client = request.remote_addr or ""
        try:
            identity, target = round_trip.finish(protection, request)
        except ServiceUnavailable as exc:
            return unavailable(exc)
        except AuthenticationError as exc:
            audit("sign_in_failed", user=None, client=client, outcome="refused", via=name,
                  reason=exc.log_detail or type(exc).__name__)
            return refused(exc)
        except Exception:  # a connector bug must refuse the sign-in, not crash the page
            log.exception("dash-enterprise-auth: the %s connector failed on a callback", name)
            audit("sign_in_failed", user=None, client=client, outcome="refused", via=name, reason="connector error")
            return refused(AuthenticationError("The identity provider's answer could not be processed."))
        try:
            protection.run_hooks(identity, client, via=name)  # audits its own refusals
            if protection.kerberos is not None:  # tickets by delegation, when the app has a keytab
                identity = protection.kerberos.attach(identity)
            token = protection.start_session(identity, request)
        except ServiceUnavailable as exc:
            return unavailable(exc)
        except AuthenticationError as exc:
            return refused(exc)
        audit("sign_in", user=identity.username, client=client, outcome="success", via=name, connector=name)
        response = flask.redirect(safe_next(target, app_root()), 302)
        protection.set_cookie(response, request, token)
        round_trip.forget_state(protection, request, response)
        return response

    @blueprint.route("/logout", methods=["GET", "POST"])
    def logout() -> Response:
        try:
            viewer = protection.viewer_from_cookie(request)
        except ServiceUnavailable as exc:
            return unavailable(exc)
        signed_out = flask.redirect(prefixes.package_url(request, "signed-out"), 302)
        if viewer is None:
            protection.clear_cookie(signed_out, request)
            return signed_out
        if request.method == "GET":
            confirmed = is_same_origin_navigation(request)
        else:
            confirmed = protection.form_token.valid(request.form.get("token"), viewer.record.key) or (
                not is_cross_site(request) and "Sec-Fetch-Site" in request.headers
            )
        if not confirmed:
            return page(
                "logout_confirm.html", 200 if request.method == "GET" else 403,
                app_title=protection.title(), viewer=viewer.identity,
                action=prefixes.package_url(request, "logout"),
                token=protection.form_token.issue(viewer.record.key), cancel=app_root(),
            )
        try:
            protection.sessions.end(viewer.record)
        except ServiceUnavailable as exc:
            return unavailable(exc)
        audit("sign_out", user=viewer.identity.username, client=request.remote_addr, outcome="success")
        protection.connector.sign_out(viewer.identity)
        signed_out_url = request.host_url.rstrip("/") + prefixes.package_url(request, "signed-out")
        target = protection.connector.logout_url(viewer.identity, signed_out_url)
        response = flask.redirect(target, 302) if target else signed_out
        protection.clear_cookie(response, request)
        return response

    @blueprint.route("/signed-out")
    def signed_out() -> Response:
        return page(
            "signed_out.html", app_title=protection.title(),
            sign_in_url=prefixes.sign_in_url(request, app_root()),
        )

    @blueprint.route("/health")
    def health() -> Response:
        try:
            protection.store.ping()
            protection.connector.ping()
        except ServiceUnavailable as exc:
            log.error("dash-enterprise-auth: health check failed: %s", exc.log_detail)
            return api_error(503, "unavailable")
        response = flask.jsonify({"status": "ok"})
        response.headers["Cache-Control"] = "no-store"
        return response

    return blueprint
