"""A local stand-in for the Plotly cloud (plot.ly / api.plot.ly), which cannot be reached from here.

The ``plotly`` connector reproduces the sign-in of ``dash_auth.PlotlyAuth`` (dash-auth 1.x).
Tests point it at this server, which speaks the same endpoints with the same JSON shapes, so the
connector runs against real HTTP: redirects, cookies, status codes, slow or absent provider.

What dash-auth 1.x did, and what is reproduced here
---------------------------------------------------
Sign-in (browser, on ``plotly_domain``): ``GET {domain}/o/authorize/?response_type=token&client_id=..
&redirect_uri={app}{prefix}_oauth-redirect`` -- the OAuth2 *implicit* grant, no ``state``, the token
came back in the URL fragment and the page POSTed it to the app. Plotly's ``/o/...`` routes and its
consent page (an ``allow`` button) match django-oauth-toolkit's. Here ``response_type=token`` still
works (fragment, as then), but the primary path is the *code* grant (``response_type=code``,
optional PKCE) with ``POST /o/token/``, which PlotlyAuth never called; its request and answer
follow RFC 6749/7636 and django-oauth-toolkit.

API (on ``plotly_api_domain``), all JSON; errors are ``{"errors": [{"message": ...}]}``:
- ``GET /v2/users/current`` with ``Authorization: Bearer <token>`` (or Basic user:api_key) ->
  ``{"username", "email", ...}`` (extra keys of the user entry, e.g. ``kerberos_ticket_cache`` and
  ``kerberos_ticket_expiry`` which 1.2+ asked for with ``?kerberos=1``); 401 for a missing, unknown,
  expired or revoked token.
- View check: PlotlyAuth called ``GET /v2/files/<fid>`` with the *viewer's* Bearer token: 200 = may
  view, 404 = may not. The fid came from ``GET /v2/files/lookup?path=<app_name>`` made at start-up
  with HTTP Basic ``PLOTLY_USERNAME:PLOTLY_API_KEY`` (the app owner). ``lookup`` resolves the path in
  the namespace of ``user=`` or, by default, of the requester -- so a viewer's lookup of someone
  else's app needs ``&user=<owner>``. Anyone (even anonymous) sees world-readable files; a file with
  ``share_key_enabled`` is also readable with ``?share_key=<key>``. ``share_key``/``share_key_enabled``
  are owner-only ("-admin") fields, as the API docs list them.
- ``sharing``: 'public' -> ``world_readable``; 'secret' -> ``share_key_enabled``, and the app itself
  compared the ``share_key`` query parameter (``hmac.compare_digest``) with the ``share_key`` of the
  file JSON it got from the lookup; 'private' -> neither.
- Registration with no client id configured (Basic auth of the API user): ``/v2/files/lookup``, then
  ``POST /v2/dash-apps`` (``{"filename", "share_key_enabled", "world_readable", "app_url"}`` ->
  ``{"file": {...}}``) or ``PATCH /v2/dash-apps/<fid>``; then ``POST /v2/oauth-apps/update_or_create``
  (``{"name", "client_type": "public", "authorization_grant_type": "implicit", "redirect_uris":
  "<space separated>"}`` -> app JSON with ``client_id``), falling back, when that answered 405, to
  ``GET /v2/oauth-apps/lookup?name=`` (a list, ``[0]["id"]``) and ``PATCH /v2/oauth-apps/<id>`` or
  ``POST /v2/oauth-apps``. Set ``update_or_create = False`` to get the 405.
- Logout: ``POST {domain}/Auth/o/revoke_token/`` (``/o/revoke_token/`` before 1.3), form fields
  ``token`` and ``client_id``, no other client auth (public client) -> 200; errors only printed.

Where the sources are silent, this server chooses, and says so: the ``filetype`` value, the statuses
of the registration calls (201 created / 200 updated), ``expires_in`` (django-oauth-toolkit's 36000 s),
``scope`` ("read write", its default scopes), the 401 body, and the login page (the real one was
Plotly's sign-in modal plus a consent page with an ``allow`` button).

Sources (read for facts only): github.com/plotly/dash-auth at tags v0.0.4, v1.0.2, v1.2.0, v1.4.0 --
dash_auth/plotly_auth.py, dash_auth/oauth.py, dash_auth/api_requests.py, js/src/login-index.react.js,
js/src/oauth-redirect-index.react.js, tests/users.py, tests/test_plotlyauth.py, CHANGELOG.md;
github.com/plotly/plotly.py plotly/api/v2/{files,users,dash_apps,utils}.py (v3) and
plotly/plotly.py chart_studio plotly.py (share_key_enabled/world_readable); api.plotly.com/v2/files
API page (file field list); github.com/plotly/falcon backend/routes.js (users/current -> username);
github.com/jazzband/django-oauth-toolkit docs/tutorial/tutorial_04.rst (revoke_token form).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import unquote, urlencode

from flask import Flask, Response, jsonify, redirect, request
from werkzeug.serving import WSGIRequestHandler, make_server

from .app_server import free_port

SESSION_COOKIE = "plotly_stub_sessionid"
GRANT_TYPES = {"authorization-code", "implicit", "password", "client-credentials"}


def _now() -> float:
    return time.time()


def _same(a: object, b: object) -> bool:
    return hmac.compare_digest(str(a).encode(), str(b).encode())


class _ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args) -> None:  # no access log on the test output
        pass


class _OAuthError(Exception):
    def __init__(self, error: str, status: int = 400, description: str | None = None):
        super().__init__(error)
        self.error, self.status, self.description = error, status, description


@dataclass
class PlotlyServer:
    users: dict[str, dict] = field(default_factory=dict)   # username -> {"password", "email", ...}
    # app name (path) -> {"owner", "viewers": [...], "world_readable", "share_key"[, "share_key_enabled"]};
    # a share_key means the secret link is enabled unless "share_key_enabled": False
    files: dict[str, dict] = field(default_factory=dict)
    api_users: dict[str, str] = field(default_factory=dict)  # PLOTLY_USERNAME -> PLOTLY_API_KEY
    port: int = field(default_factory=free_port)
    delay: float = 0.0            # seconds slept before every response
    token_ttl: int = 36000        # expires_in of access tokens
    code_ttl: int = 60            # lifetime of authorization codes
    require_pkce: bool = False    # refuse response_type=code without code_challenge
    update_or_create: bool = True  # False: /v2/oauth-apps/update_or_create answers 405, as older servers did
    revoked: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    hits: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._clients: dict[str, dict] = {}
        self._codes: dict[str, dict] = {}
        self._tokens: dict[str, dict] = {}
        self._refresh: dict[str, str] = {}     # refresh token -> access token
        self._sessions: dict[str, str] = {}    # browser session -> username
        self._fids: dict[str, str] = {}        # file name -> fid
        self._created: dict[str, str] = {}
        self._next_app_id = 1
        self._server = None
        self._thread: threading.Thread | None = None
        self._app = self._build_app()

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "PlotlyServer":
        if self._server is None:
            with self._lock:
                for name in list(self.files):   # fids in the order the files were given
                    self._fid(name)
            self._server = make_server("127.0.0.1", self.port, self._app, threaded=True,
                                       request_handler=_QuietHandler)
            self._thread = threading.Thread(target=self._server.serve_forever, name="plotly-stub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(10)
            self._server = self._thread = None

    down, up = stop, start   # state (users, clients, tokens) survives; the port is kept

    # ------------------------------------------------------------------ helpers for tests
    def register_client(self, redirect_uris: list[str] | str, *, name: str = "dash app",
                        client_type: str = "confidential", grant_type: str = "authorization-code",
                        owner: str | None = None, client_id: str | None = None,
                        client_secret: str | None = None) -> dict:
        """An OAuth application as if made on the Plotly site; returns its JSON (with the secret)."""
        uris = redirect_uris if isinstance(redirect_uris, str) else " ".join(redirect_uris)
        with self._lock:
            return dict(self._new_client(owner, {"name": name, "client_type": client_type,
                                                 "authorization_grant_type": grant_type, "redirect_uris": uris},
                                         client_id, client_secret))

    def registered_clients(self) -> list[dict]:
        """Every OAuth application, made by register_client or through /v2/oauth-apps."""
        with self._lock:
            return [dict(c) for c in self._clients.values()]

    def issue_token(self, username: str, client_id: str | None = None) -> str:
        """A valid access token for ``username`` without the browser flow."""
        with self._lock:
            return self._issue(username, client_id, "read write")["access_token"]

    def expire(self, token: str) -> None:
        """Make an access token expired (not revoked)."""
        with self._lock:
            if token in self._tokens:
                self._tokens[token]["expires"] = 0

    def forget_sessions(self) -> None:
        """Log every browser out of the stub, so /o/authorize shows the form again."""
        with self._lock:
            self._sessions.clear()

    def fid(self, name: str) -> str:
        with self._lock:
            return self._fid(name)

    # ------------------------------------------------------------------ state
    def _new_client(self, owner, data, client_id=None, client_secret=None) -> dict:
        client = {
            "id": self._next_app_id,
            "name": data.get("name") or "",
            "client_id": client_id or secrets.token_urlsafe(30),
            "client_secret": client_secret or secrets.token_urlsafe(60),
            "client_type": data.get("client_type") or "public",
            "authorization_grant_type": data.get("authorization_grant_type") or "authorization-code",
            "redirect_uris": data.get("redirect_uris") or "",
            "owner": owner,
        }
        self._check_client_fields(client)
        self._next_app_id += 1
        self._clients[client["client_id"]] = client
        return client

    @staticmethod
    def _check_client_fields(client: dict) -> None:
        if client["client_type"] not in ("public", "confidential"):
            raise _ApiError(400, f"client_type: \"{client['client_type']}\" is not a valid choice.")
        if client["authorization_grant_type"] not in GRANT_TYPES:
            raise _ApiError(400, f"authorization_grant_type: \"{client['authorization_grant_type']}\" "
                                 "is not a valid choice.")

    def _issue(self, username: str, client_id: str | None, scope: str) -> dict:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._tokens[access] = {"username": username, "client_id": client_id, "scope": scope,
                                "expires": _now() + self.token_ttl, "refresh": refresh}
        self._refresh[refresh] = access
        self.issued.append(access)
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.token_ttl,
                "refresh_token": refresh, "scope": scope}

    def _token_user(self, token: str) -> str | None:
        info = self._tokens.get(token)
        if info is None or info["expires"] <= _now():
            return None
        return info["username"]

    def _drop_token(self, access: str) -> None:
        info = self._tokens.pop(access, None)
        if info:
            self._refresh.pop(info["refresh"], None)

    def _fid(self, name: str) -> str:
        if name not in self._fids:
            owner = self.files[name]["owner"]
            taken = [f for f in self._fids.values() if f.startswith(owner + ":")]
            self._fids[name] = f"{owner}:{len(taken) + 1}"
            self._created[name] = datetime.now(timezone.utc).isoformat()
        return self._fids[name]

    def _name_of(self, fid: str) -> str | None:
        for name in list(self.files):
            if self._fid(name) == fid:
                return name
        return None

    @staticmethod
    def _share_enabled(entry: dict) -> bool:
        return bool(entry.get("share_key_enabled", bool(entry.get("share_key"))))

    def _can_read(self, entry: dict, who: str | None, share_key: str | None) -> bool:
        if entry.get("world_readable"):
            return True
        if who is not None and (who == entry["owner"] or who in entry.get("viewers", ())):
            return True
        key = entry.get("share_key")
        return bool(share_key and key and self._share_enabled(entry)
                    and _same(share_key, key))

    def _file_json(self, name: str, who: str | None) -> dict:
        entry, fid = self.files[name], self._fid(name)
        owner, idlocal = fid.split(":")
        data = {
            "fid": fid, "filename": name, "filetype": "dash_app", "owner": owner,
            "world_readable": bool(entry.get("world_readable")), "parent": -1, "parented": False,
            "creation_time": self._created[name], "date_modified": self._created[name],
            "web_url": f"{self.url}/~{owner}/{idlocal}/",
            "api_urls": {"files": f"{self.url}/v2/files/{fid}", "dash_apps": f"{self.url}/v2/dash-apps/{fid}"},
            "current_user_permission": "admin" if who == owner else "read",
        }
        if who == owner:  # "-admin" fields
            data["share_key"] = entry.get("share_key") or ""
            data["share_key_enabled"] = self._share_enabled(entry)
        return data

    # ------------------------------------------------------------------ request authentication
    def _requester(self, required: bool) -> str | None:
        header = request.headers.get("Plotly-Authorization") or request.headers.get("Authorization") or ""
        kind, _, value = header.partition(" ")
        if kind.lower() == "bearer" and value:
            who = self._token_user(value.strip())
            if who is None:
                raise _ApiError(401, "Invalid or expired token.", {"WWW-Authenticate": 'Bearer realm="api"'})
            return who
        if kind.lower() == "basic" and value:
            try:
                user, _, key = base64.b64decode(value).decode().partition(":")
            except Exception:
                user, key = "", ""
            if not user or self.api_users.get(user) != key:
                raise _ApiError(401, "Invalid username/api_key.", {"WWW-Authenticate": 'Basic realm="api"'})
            return user
        if required:
            raise _ApiError(401, "Authentication credentials were not provided.",
                            {"WWW-Authenticate": 'Basic realm="api"'})
        return None

    @staticmethod
    def _body() -> dict:
        data = request.get_json(force=True, silent=True)
        if isinstance(data, dict):
            return data
        return request.form.to_dict()

    # ------------------------------------------------------------------ the WSGI app
    def _build_app(self) -> Flask:
        app = Flask("plotly_stub")
        server = self

        @app.before_request
        def _slow_and_count():
            server.hits.append((request.method, request.path))
            if server.delay:
                time.sleep(server.delay)

        @app.errorhandler(_ApiError)
        def _api_error(err: _ApiError):
            response = jsonify({"errors": [{"message": err.message}]})
            response.status_code = err.status
            response.headers.update(err.headers)
            return response

        def route(rule, **options):  # with and without the trailing slash, never a redirect
            other = rule.rstrip("/") if rule.endswith("/") else rule + "/"

            def wrap(view):
                app.add_url_rule(rule, view_func=view, **options)
                app.add_url_rule(other, endpoint=view.__name__ + "_other_slash", view_func=view, **options)
                return view
            return wrap

        # ---------------------------------------------------------- OAuth2 (plotly_domain)
        @route("/o/authorize/", methods=["GET", "POST"])
        def authorize():
            params = request.values
            client = server._clients.get(params.get("client_id", ""))
            if client is None:
                return _page("Invalid client_id", "No OAuth application has this client_id.", 400)
            registered = client["redirect_uris"].split()
            redirect_uri = params.get("redirect_uri")
            explicit = redirect_uri is not None   # only then must /o/token/ repeat it
            if not explicit and len(registered) == 1:
                redirect_uri = registered[0]
            if redirect_uri not in registered:
                return _page("Mismatching redirect URI",
                             f"{html.escape(str(redirect_uri))} is not registered for this application.", 400)
            state = params.get("state")
            response_type = params.get("response_type", "")
            implicit = response_type == "token"

            def back(**values):
                if state is not None:
                    values["state"] = state
                query = urlencode(values)
                if implicit:
                    return redirect(f"{redirect_uri}#{query}", 302)
                return redirect(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}", 302)

            if response_type not in ("code", "token"):
                return back(error="unsupported_response_type")
            wanted = "implicit" if implicit else "authorization-code"
            if client["authorization_grant_type"] != wanted:
                return back(error="unauthorized_client")
            challenge = params.get("code_challenge")
            method = params.get("code_challenge_method") or ("plain" if challenge else None)
            if not implicit:
                if challenge is None and server.require_pkce:
                    return back(error="invalid_request", error_description="Code challenge required.")
                if challenge is not None and method not in ("S256", "plain"):
                    return back(error="invalid_request", error_description="Unsupported code_challenge_method.")

            with server._lock:
                who = server._sessions.get(request.cookies.get(SESSION_COOKIE, ""))
            new_session = None
            if request.method == "POST":
                if "cancel" in request.form:
                    return back(error="access_denied")
                username, password = request.form.get("username", ""), request.form.get("password", "")
                user = server.users.get(username)
                if user is None or not _same(user.get("password", ""), password):
                    return _login_form(params, "Invalid username or password")
                who, new_session = username, secrets.token_urlsafe(24)
                with server._lock:
                    server._sessions[new_session] = who
            elif who is None or params.get("prompt") == "login":
                return _login_form(params)

            scope = params.get("scope") or "read write"
            with server._lock:
                if implicit:
                    token = server._issue(who, client["client_id"], scope)
                    response = back(access_token=token["access_token"], token_type="Bearer",
                                    expires_in=token["expires_in"], scope=scope)
                else:
                    code = secrets.token_urlsafe(24)
                    server._codes[code] = {"client_id": client["client_id"], "username": who, "scope": scope,
                                           "redirect_uri": redirect_uri if explicit else None,
                                           "challenge": challenge, "method": method,
                                           "expires": _now() + server.code_ttl}
                    response = back(code=code)
            if new_session:
                response.set_cookie(SESSION_COOKIE, new_session, path="/o/", httponly=True, samesite="Lax")
            return response

        def _login_form(params, error: str = ""):
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in params.items() if k not in ("username", "password", "cancel", "allow"))
            message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
            body = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>Log in - Plotly (stub)</title>"
                    f"</head><body><h1>Log in to Plotly</h1>{message}"
                    f'<form method="post" action="/o/authorize/">{hidden}'
                    '<label>Username <input name="username" id="username" autocomplete="username"></label>'
                    '<label>Password <input name="password" id="password" type="password" '
                    'autocomplete="current-password"></label>'
                    '<button type="submit" name="allow" value="Authorize" id="allow">Log in and authorize</button>'
                    '<button type="submit" name="cancel" value="Cancel" id="cancel">Cancel</button>'
                    "</form></body></html>")
            return Response(body, 200, content_type="text/html; charset=utf-8")

        def _page(title: str, text: str, status: int):
            body = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                    f"</head><body><h1>Error: {html.escape(title)}</h1><p>{text}</p></body></html>")
            return Response(body, status, content_type="text/html; charset=utf-8")

        def _client_auth(form) -> dict:
            """The calling client (RFC 6749 2.3.1): Basic header, or client_id[/client_secret] in the body."""
            header = request.headers.get("Authorization", "")
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if header.lower().startswith("basic "):
                try:
                    raw_id, _, raw_secret = base64.b64decode(header[6:]).decode().partition(":")
                    client_id, secret = unquote(raw_id), unquote(raw_secret)
                except Exception:
                    client_id = None
            client = server._clients.get(client_id or "")
            if client is None or (client["client_type"] == "confidential" and not (
                    secret and _same(secret, client["client_secret"]))):
                raise _OAuthError("invalid_client", 401)
            return client

        @app.errorhandler(_OAuthError)
        def _oauth_error(err):
            body = {"error": err.error}
            if err.description:
                body["error_description"] = err.description
            response = jsonify(body)
            response.status_code = err.status
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
            return response

        @route("/o/token/", methods=["POST"])
        def token():
            form = request.form
            grant_type = form.get("grant_type")
            with server._lock:
                client = _client_auth(form)
                if grant_type == "authorization_code":
                    code = server._codes.pop(form.get("code", ""), None)  # single use, even when refused
                    if code is None or code["expires"] <= _now() or code["client_id"] != client["client_id"]:
                        raise _OAuthError("invalid_grant")
                    if code["redirect_uri"] is not None and form.get("redirect_uri") != code["redirect_uri"]:
                        raise _OAuthError("invalid_grant", description="Mismatching redirect URI.")
                    if code["challenge"] is not None:
                        verifier = form.get("code_verifier") or ""
                        if code["method"] == "S256":
                            digest = hashlib.sha256(verifier.encode()).digest()
                            computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                        else:
                            computed = verifier
                        if not verifier or not _same(computed, code["challenge"]):
                            raise _OAuthError("invalid_grant", description="Code verifier mismatch.")
                    body = server._issue(code["username"], client["client_id"], code["scope"])
                elif grant_type == "refresh_token":
                    old = server._refresh.get(form.get("refresh_token", ""))
                    info = server._tokens.get(old) if old else None
                    if info is None or info["client_id"] != client["client_id"]:
                        raise _OAuthError("invalid_grant")
                    server._drop_token(old)   # rotation: the old pair stops working
                    body = server._issue(info["username"], client["client_id"], info["scope"])
                else:
                    raise _OAuthError("unsupported_grant_type")
            response = jsonify(body)
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
            return response

        def revoke_token():
            form = request.form
            with server._lock:
                client = _client_auth(form)
                value = form.get("token", "")
                access = value if value in server._tokens else server._refresh.get(value)
                if access and server._tokens[access]["client_id"] in (client["client_id"], None):
                    server._drop_token(access)
                    server.revoked.append(value)
            return Response("", 200)   # RFC 7009: unknown tokens answer 200 too

        route("/Auth/o/revoke_token/", methods=["POST"])(revoke_token)   # dash-auth >= 1.3.0
        for rule in ("/o/revoke_token/", "/o/revoke_token"):             # dash-auth 1.1 - 1.2
            app.add_url_rule(rule, endpoint="old " + rule, view_func=revoke_token, methods=["POST"])

        # ---------------------------------------------------------- REST API v2 (plotly_api_domain)
        @route("/v2/users/current", methods=["GET"])
        def users_current():
            who = server._requester(required=True)
            entry = server.users.get(who, {})
            data = {"username": who, "email": entry.get("email", "")}
            data.update({k: v for k, v in entry.items() if k not in ("password", "api_key", "email")})
            return jsonify(data)

        @route("/v2/files/lookup", methods=["GET"])
        def files_lookup():
            who = server._requester(required=False)
            namespace = request.args.get("user") or who
            path = (request.args.get("path") or "").strip("/")
            with server._lock:
                entry = server.files.get(path)
                found = (entry is not None and entry["owner"] == namespace
                         and server._can_read(entry, who, request.args.get("share_key")))
                if request.args.get("exists") in ("true", "True", "1"):
                    return jsonify({"exists": found})
                if not found:
                    raise _ApiError(404, "Not found.")
                return jsonify(server._file_json(path, who))

        @route("/v2/files/<fid>", methods=["GET"])
        def files_retrieve(fid):
            who = server._requester(required=False)
            with server._lock:
                name = server._name_of(fid)
                if name is None or not server._can_read(server.files[name], who, request.args.get("share_key")):
                    raise _ApiError(404, "Not found.")
                return jsonify(server._file_json(name, who))

        @route("/v2/dash-apps", methods=["POST"])
        def dash_apps_create():
            who = server._requester(required=True)
            data = server._body()
            name = str(data.get("filename") or "").strip("/")
            if not name:
                raise _ApiError(400, "filename: This field is required.")
            with server._lock:
                if name in server.files:
                    raise _ApiError(400, f"A file named '{name}' already exists.")
                server.files[name] = {"owner": who, "viewers": [], "world_readable": bool(data.get("world_readable")),
                                      "share_key": secrets.token_urlsafe(16),
                                      "share_key_enabled": bool(data.get("share_key_enabled")),
                                      "app_url": data.get("app_url")}
                return jsonify({"file": server._file_json(name, who)}), 201

        @route("/v2/dash-apps/<fid>", methods=["PATCH", "PUT"])
        def dash_apps_update(fid):
            who = server._requester(required=True)
            data = server._body()
            with server._lock:
                name = server._name_of(fid)
                if name is None or not server._can_read(server.files[name], who, None):
                    raise _ApiError(404, "Not found.")
                entry = server.files[name]
                if entry["owner"] != who:
                    raise _ApiError(403, "You do not have permission to perform this action.")
                for key in ("world_readable", "share_key_enabled"):
                    if key in data:
                        entry[key] = bool(data[key])
                if "app_url" in data:
                    entry["app_url"] = data["app_url"]
                if entry.get("share_key_enabled") and not entry.get("share_key"):
                    entry["share_key"] = secrets.token_urlsafe(16)
                return jsonify({"file": server._file_json(name, who)})

        def _public(client: dict) -> dict:
            return {k: v for k, v in client.items() if k != "owner"}

        def _mine(who: str) -> list[dict]:
            return [c for c in server._clients.values() if c["owner"] == who]

        @route("/v2/oauth-apps/update_or_create", methods=["POST"])
        def oauth_apps_update_or_create():
            if not server.update_or_create:
                raise _ApiError(405, 'Method "POST" not allowed.')
            who = server._requester(required=True)
            data = server._body()
            with server._lock:
                existing = [c for c in _mine(who) if c["name"] == data.get("name")]
                if existing:
                    return jsonify(_public(_update_client(existing[0], data)))
                return jsonify(_public(server._new_client(who, data))), 201

        @route("/v2/oauth-apps/lookup", methods=["GET"])
        def oauth_apps_lookup():
            who = server._requester(required=True)
            with server._lock:
                return jsonify([_public(c) for c in _mine(who) if c["name"] == request.args.get("name")])

        @route("/v2/oauth-apps", methods=["POST"])
        def oauth_apps_create():
            who = server._requester(required=True)
            with server._lock:
                return jsonify(_public(server._new_client(who, server._body()))), 201

        @route("/v2/oauth-apps/<int:app_id>", methods=["PATCH", "PUT"])
        def oauth_apps_update(app_id):
            who = server._requester(required=True)
            with server._lock:
                matches = [c for c in _mine(who) if c["id"] == app_id]
                if not matches:
                    raise _ApiError(404, "Not found.")
                return jsonify(_public(_update_client(matches[0], server._body())))

        def _update_client(client: dict, data: dict) -> dict:
            changed = dict(client)
            for key in ("name", "client_type", "authorization_grant_type", "redirect_uris"):
                if data.get(key) is not None:
                    changed[key] = data[key]
            server._check_client_fields(changed)
            client.update(changed)
            return client

        return app
