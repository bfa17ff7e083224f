"""Who may reach what in the web process: the owner's login, its rate limit, the gate in front of
everything behind that login, and the app-wide CORS and cookie stance. SECURITY.md states the
promises and names the tests that hold them.

- The owner's password: BARK_STUDIO_PASSWORD when set, else one generated on first `serve` and kept
  (mode 0600) in the workspace. Raters never log in: their pages live outside the studio
  (studio.listening.web) and are addressed by random tokens.
- Login rate limit: failed logins are counted per client address; after LOGIN_MAX_FAILURES the
  client waits LOGIN_WINDOW_S, doubling with each further failure (up to MAX_LOCKOUT_S). The table
  is bounded (least recently seen clients are forgotten first). The address is the socket's peer,
  or X-Forwarded-For only when the peer is one of BARK_STUDIO_TRUSTED_PROXIES (server.run_server).
  The owner always has a way in that failures cannot block: a one-time login link
  (studio.login_links).
- The gate (OwnerGate): a state-changing request (POST, PUT, PATCH, DELETE) from a foreign Origin
  is refused; one to anything behind the login needs the owner's session before its body is read;
  `/logout` is a POST; session cookies are SameSite=Lax (BARK_STUDIO_COOKIE_SAMESITE); FastAPI's
  OpenAPI documents are not served; a page shown without a session carries none of Gradio's API
  description (it names datasets, clips, voices and sessions in its enums).
- CORS: a CORSMiddleware that allows no origin sits on the parent app. Gradio's own CORS middleware
  then stands aside (it answers any origin with credentials when the host is not localhost), so a
  cross-origin page (`Origin: https://evil.example`, `Origin: null`) never gets
  Access-Control-Allow-Origin back."""
from __future__ import annotations

import hmac
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlsplit

from studio.workspace import Workspace

PASSWORD_ENV = "BARK_STUDIO_PASSWORD"
MAX_FAILURES_ENV = "BARK_STUDIO_LOGIN_MAX_FAILURES"
WINDOW_ENV = "BARK_STUDIO_LOGIN_WINDOW_S"
TRUSTED_PROXIES_ENV = "BARK_STUDIO_TRUSTED_PROXIES"
SAMESITE_ENV = "BARK_STUDIO_COOKIE_SAMESITE"
OWNER_USER = "owner"
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_S = 300.0
MAX_LOCKOUT_S = 3600.0
LOGIN_TABLE_SIZE = 10_000  # clients remembered by the rate limit; the least recently seen go first
LOGIN_PATHS = ("/login", "/login/")
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
# Reachable without the owner's session (each checks its own secret or has none to protect).
PUBLIC_WRITES = re.compile(r"^/(login/?|logout/?|login-link/[^/]+/?|listen/.*)$")
HIDDEN_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)


def password_file(ws: Workspace) -> Path:
    return ws.root / "owner_password"


def owner_password(ws: Workspace) -> tuple[str, str]:
    """(password, where it came from). Generates and saves one when none is configured."""
    env = os.environ.get(PASSWORD_ENV, "")
    if env:
        return env, f"${PASSWORD_ENV}"
    path = password_file(ws)
    if path.exists():
        saved = path.read_text(encoding="utf-8").strip()
        if saved:
            return saved, str(path)
    password = secrets.token_urlsafe(15)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")
    return password, str(path)


def trusted_proxies() -> list[str]:
    """Addresses (or CIDR ranges) whose X-Forwarded-For/-Proto headers are believed; default none."""
    return [p.strip() for p in os.environ.get(TRUSTED_PROXIES_ENV, "").split(",") if p.strip()]


def cookie_samesite() -> str:
    value = os.environ.get(SAMESITE_ENV, "lax").strip().lower()
    if value not in ("lax", "strict", "none"):
        from studio.errors import UserError

        raise UserError(f"{SAMESITE_ENV} must be lax, strict or none, not {value!r}")
    return value


class OwnerAuth:
    """Gradio's auth callable: the owner's user name and password, compared in constant time."""

    def __init__(self, password: str, user: str = OWNER_USER):
        self._password = password.encode("utf-8")
        self._user = user.encode("utf-8")

    def __call__(self, username: str, password: str) -> bool:
        user_ok = hmac.compare_digest((username or "").strip().lower().encode("utf-8"), self._user)
        pass_ok = hmac.compare_digest((password or "").encode("utf-8"), self._password)
        return user_ok and pass_ok


async def _send_json(send, status: int, detail: str, headers: dict | None = None) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class LoginRateLimit:
    """ASGI middleware: per-client exponential back-off on failed POST /login, in a bounded table."""

    def __init__(self, app, max_failures: int | None = None, window_s: float | None = None,
                 table_size: int = LOGIN_TABLE_SIZE):
        self.app = app
        self.max_failures = int(max_failures or os.environ.get(MAX_FAILURES_ENV) or LOGIN_MAX_FAILURES)
        self.window_s = float(window_s or os.environ.get(WINDOW_ENV) or LOGIN_WINDOW_S)
        self.table_size = table_size
        # client -> [failures, locked_until, last_failure]; ordered by last use (LRU).
        self._clients: OrderedDict[str, list] = OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, client: str, now: float) -> list | None:
        entry = self._clients.get(client)
        if entry is not None and now > max(entry[1], entry[2]) + self.window_s:
            del self._clients[client]  # quiet for a whole window after its lockout: forgiven
            return None
        return entry

    def retry_after(self, client: str, now: float) -> int:
        with self._lock:
            entry = self._entry(client, now)
            return int(entry[1] - now) + 1 if entry is not None and entry[1] > now else 0

    def record(self, client: str, ok: bool, now: float) -> None:
        with self._lock:
            if ok:
                self._clients.pop(client, None)
                return
            entry = self._entry(client, now) or [0, 0.0, now]
            entry[0] += 1
            entry[2] = now
            over = entry[0] - self.max_failures
            if over >= 0:
                entry[1] = now + min(MAX_LOCKOUT_S, self.window_s * 2 ** min(over, 30))
            self._clients[client] = entry
            self._clients.move_to_end(client)
            while len(self._clients) > self.table_size:
                self._clients.popitem(last=False)

    def __len__(self) -> int:
        return len(self._clients)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in LOGIN_PATHS:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        retry = self.retry_after(client, time.monotonic())
        if retry:
            await _send_json(send, 429, f"too many failed logins; try again in {retry} s, or use a login link "
                                        "(`bark-studio login-link`)", {"Retry-After": str(retry)})
            return
        status = {}

        async def watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status.get("code") == 200:
            self.record(client, True, time.monotonic())
        elif status.get("code") in (400, 401, 403):
            self.record(client, False, time.monotonic())


def _netloc(host: str, scheme: str) -> tuple[str, int]:
    parts = urlsplit(f"{scheme}://{host}")
    return (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def same_origin(origin: str, host: str) -> bool:
    """Whether a request's Origin names this server (its Host header, or BARK_STUDIO_PUBLIC_URL)."""
    if not origin or origin == "null":
        return False
    o = urlsplit(origin)
    if o.scheme not in ("http", "https") or not o.hostname:
        return False
    mine = _netloc(o.netloc, o.scheme)
    if host and mine == _netloc(host, o.scheme):
        return True
    from studio.served import PUBLIC_URL_ENV  # the address raters and the owner use

    public = os.environ.get(PUBLIC_URL_ENV, "")
    if public:
        p = urlsplit(public)
        return (p.scheme, _netloc(p.netloc, p.scheme or "https")) == (o.scheme, mine)
    return False


class OwnerGate:
    """ASGI middleware in front of the whole app: see the module docstring. `gradio_app` is read from
    `app.state.gradio_app` at request time (the studio is mounted after the middleware is added)."""

    def __init__(self, app, parent):
        self.app = app
        self.parent = parent
        self.samesite = cookie_samesite()

    def is_owner(self, scope) -> bool:
        from starlette.requests import cookie_parser

        gradio_app = getattr(self.parent.state, "gradio_app", None)
        if gradio_app is None:
            return False
        raw = dict(scope["headers"]).get(b"cookie", b"").decode("latin-1")
        cookies = cookie_parser(raw)
        for name in (f"access-token-{gradio_app.cookie_id}", f"access-token-unsecure-{gradio_app.cookie_id}"):
            token = cookies.get(name)
            if token and gradio_app.tokens.get(token):
                return True
        return False

    @staticmethod
    def foreign(headers: dict) -> bool:
        """Whether a browser sent this request from another site. A browser's Sec-Fetch-Site (no page
        can set it) decides; it also covers `Origin: null`, which a same-origin form sends from a
        no-referrer page (the rater's consent). Without it, the Origin must name this server."""
        fetch_site = headers.get(b"sec-fetch-site", b"").decode("latin-1")
        if fetch_site:
            return fetch_site not in ("same-origin", "none")
        origin = headers.get(b"origin", b"").decode("latin-1")
        return bool(origin) and not same_origin(origin, headers.get(b"host", b"").decode("latin-1"))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = dict(scope["headers"])
        if path in HIDDEN_PATHS:
            await _send_json(send, 404, "Not Found")
            return
        if path.rstrip("/") == "/logout":
            if method != "POST":
                await _send_json(send, 405, "log out with a POST", {"Allow": "POST"})
                return
            scope = {**scope, "method": "GET"}  # Gradio's own logout route clears the session
        if method in STATE_CHANGING:
            if self.foreign(headers):
                await _send_json(send, 403, "cross-site request refused")
                return
            if not PUBLIC_WRITES.match(path) and not self.is_owner(scope):
                await _send_json(send, 401, "Not authenticated")  # before a byte of the body is read
                return
        owner = None
        if method in ("GET", "HEAD"):
            owner = self.is_owner(scope)
            if not owner:  # an identity body, so the API description can be taken out of a page
                scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]}
        await self.app(scope, receive, self._sender(send, scrub=owner is False))

    def _sender(self, send, scrub: bool):
        held: dict = {}

        async def wrapped(message):
            if message["type"] == "http.response.start":
                headers = [self._cookie(k, v) for k, v in message.get("headers", [])]
                message = {**message, "headers": headers}
                ctype = dict(headers).get(b"content-type", b"")
                if scrub and ctype.startswith(b"text/html"):
                    held["start"], held["body"] = message, []
                    return
            elif message["type"] == "http.response.body" and "start" in held:
                held["body"].append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = _API_INFO.sub(b"window.gradio_api_info = {};</script>", b"".join(held.pop("body")))
                start = held.pop("start")
                headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
                await send({**start, "headers": headers + [(b"content-length", str(len(body)).encode())]})
                message = {"type": "http.response.body", "body": body}
            await send(message)

        return wrapped

    def _cookie(self, key: bytes, value: bytes) -> tuple[bytes, bytes]:
        if key == b"set-cookie":
            value = re.sub(rb"(?i)samesite=\w+", b"SameSite=" + self.samesite.capitalize().encode(), value)
        return key, value


def install(app) -> None:
    """The body limits, the gate, the login rate limit and deny-all CORS, on the parent FastAPI app
    (the last added runs first: body limits, then the gate, then the rest)."""
    from starlette.middleware.cors import CORSMiddleware

    from studio.limits import BodyLimit

    app.add_middleware(CORSMiddleware, allow_origins=[], allow_credentials=False)
    app.add_middleware(LoginRateLimit)
    app.add_middleware(OwnerGate, parent=app)
    app.add_middleware(BodyLimit)
