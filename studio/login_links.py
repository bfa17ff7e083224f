"""One-time login links: the owner's way in that failed logins cannot block.

`bark-studio login-link` (and `serve`, at start) prints a link with a random token. The workspace
keeps only the token's SHA-256 and its expiry (`login_links.json`, mode 0600). Opening the link
shows a button; pressing it (a POST, so a link preview cannot spend it) logs the browser in as the
owner and spends the link. A link works once, for LINK_TTL_S seconds."""
from __future__ import annotations

import fcntl
import hashlib
import html
import json
import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path

from studio.workspace import Workspace

LINK_TTL_S = 600.0
MAX_LINKS = 20  # live links kept; the oldest go first
PATH = "/login-link/"
PRIVATE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                   "X-Content-Type-Options": "nosniff"}


def links_file(ws: Workspace) -> Path:
    return ws.root / "login_links.json"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@contextmanager
def _links(ws: Workspace):
    """The live links ({digest: expiry, unix time}), locked for read-modify-write across processes."""
    fd = os.open(links_file(ws), os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            links = json.loads(f.read() or "{}")
        except ValueError:
            links = {}
        now = time.time()
        links = {d: exp for d, exp in links.items() if exp > now}
        yield links
        kept = dict(sorted(links.items(), key=lambda kv: kv[1])[-MAX_LINKS:])
        f.seek(0)
        f.truncate()
        f.write(json.dumps(kept))


def issue(ws: Workspace, ttl_s: float = LINK_TTL_S) -> str:
    """A new token (shown once; only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    with _links(ws) as links:
        links[_digest(token)] = time.time() + ttl_s
    return token


def redeem(ws: Workspace, token: str) -> bool:
    """Spend a token: True once for a live one, False for anything else."""
    with _links(ws) as links:
        return links.pop(_digest(token or ""), None) is not None


def link(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + PATH + token


def _page(body: str, status: int = 200):
    from fastapi.responses import HTMLResponse

    return HTMLResponse(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="robots" '
                        f'content="noindex"><title>Bark Studio login</title>'
                        f'<link rel="stylesheet" href="/static/listen.css"></head><body><main class="card">{body}'
                        f'</main></body></html>', status_code=status, headers=PRIVATE_HEADERS)


def install(app, ws: Workspace) -> None:
    """GET shows a button, POST spends the link and sets the owner's session cookies."""
    from fastapi.responses import RedirectResponse

    from studio.security import OWNER_USER, cookie_samesite

    @app.get(PATH + "{token}", include_in_schema=False)
    def login_link_page(token: str):
        return _page(f'<h1>Bark Studio</h1><form method="post" action="{html.escape(PATH + token)}">'
                     '<button class="primary" id="login-link" type="submit">Log in as the owner</button></form>')

    @app.post(PATH + "{token}", include_in_schema=False)
    def login_link_use(token: str):
        gradio_app = app.state.gradio_app
        if not redeem(ws, token):
            return _page('<h1>Bark Studio</h1><p class="notice">This login link was used already or has '
                         'expired. Run <code>bark-studio login-link</code> for a new one.</p>', 403)
        session = secrets.token_urlsafe(16)
        gradio_app.tokens[session] = OWNER_USER
        response = RedirectResponse("/", status_code=303, headers=PRIVATE_HEADERS)
        samesite = cookie_samesite()
        response.set_cookie(f"access-token-{gradio_app.cookie_id}", session, httponly=True, samesite=samesite,
                            secure=True)
        response.set_cookie(f"access-token-unsecure-{gradio_app.cookie_id}", session, httponly=True,
                            samesite=samesite)
        return response
