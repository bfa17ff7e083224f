"""The owner's login to the studio, its rate limit, and the app-wide CORS stance.

The studio's Gradio tabs need the owner's password: BARK_STUDIO_PASSWORD when set, else one
generated on first `serve` and kept (mode 0600) in the workspace. Failed logins are counted per
client address; after LOGIN_MAX_FAILURES within LOGIN_WINDOW_S the login answers 429 until the
window has passed. Raters never log in: their pages live outside the studio (studio.listening.web).

CORS: a CORSMiddleware that allows no origin sits on the parent app. Gradio's own CORS middleware
then stands aside (it answers any origin with credentials when the host is not localhost), so a
cross-origin page (`Origin: https://evil.example`, `Origin: null`) never gets
Access-Control-Allow-Origin back."""
from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections import deque
from pathlib import Path

from studio.workspace import Workspace

PASSWORD_ENV = "BARK_STUDIO_PASSWORD"
MAX_FAILURES_ENV = "BARK_STUDIO_LOGIN_MAX_FAILURES"
WINDOW_ENV = "BARK_STUDIO_LOGIN_WINDOW_S"
OWNER_USER = "owner"
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_S = 300.0
LOGIN_PATHS = ("/login", "/login/")


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


class OwnerAuth:
    """Gradio's auth callable: the owner's user name and password, compared in constant time."""

    def __init__(self, password: str, user: str = OWNER_USER):
        self._password = password.encode("utf-8")
        self._user = user.encode("utf-8")

    def __call__(self, username: str, password: str) -> bool:
        user_ok = hmac.compare_digest((username or "").strip().lower().encode("utf-8"), self._user)
        pass_ok = hmac.compare_digest((password or "").encode("utf-8"), self._password)
        return user_ok and pass_ok


class LoginRateLimit:
    """ASGI middleware: counts failed POST /login per client address; too many -> 429."""

    def __init__(self, app, max_failures: int | None = None, window_s: float | None = None):
        self.app = app
        self.max_failures = int(max_failures or os.environ.get(MAX_FAILURES_ENV) or LOGIN_MAX_FAILURES)
        self.window_s = float(window_s or os.environ.get(WINDOW_ENV) or LOGIN_WINDOW_S)
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque:
        q = self._failures.setdefault(client, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in LOGIN_PATHS:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        now = time.monotonic()
        with self._lock:
            q = self._recent(client, now)
            blocked = len(q) >= self.max_failures
            retry = int(q[0] + self.window_s - now) + 1 if blocked else 0
        if blocked:
            from starlette.responses import JSONResponse

            response = JSONResponse({"detail": f"too many failed logins; try again in {retry} s"}, status_code=429,
                                    headers={"Retry-After": str(retry)})
            await response(scope, receive, send)
            return
        status = {}

        async def watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        with self._lock:
            if status.get("code") == 200:
                self._failures.pop(client, None)
            elif status.get("code") in (400, 401, 403):
                self._recent(client, time.monotonic()).append(time.monotonic())


def install(app) -> None:
    """Deny-all CORS and the login rate limit, on the parent FastAPI app."""
    from starlette.middleware.cors import CORSMiddleware

    app.add_middleware(CORSMiddleware, allow_origins=[], allow_credentials=False)
    app.add_middleware(LoginRateLimit)
