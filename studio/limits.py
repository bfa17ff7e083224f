"""Request-size limits in front of every route, checked before anything reads a body.

A handler that calls `await request.body()` (the rater's vote, Gradio's queue/join, the login
form) holds the whole body in memory, so a 400 MB POST cost the server 400 MB and more before any
size or login check ran. `BodyLimit` refuses a request whose declared Content-Length is over its
route's limit with 413 at once, and counts the bytes of a streamed (chunked) body as the app reads
them, answering 413 when they pass the limit. Small JSON routes get small limits; only Gradio's
upload route, which streams files to disk, gets the upload limit (BARK_STUDIO_MAX_UPLOAD_MB, for
all the files of one request together)."""
from __future__ import annotations

import os
import re

MAX_UPLOAD_BYTES_ENV = "BARK_STUDIO_MAX_UPLOAD_MB"
DEFAULT_MAX_UPLOAD_MB = 500
MAX_BODY_KB_ENV = "BARK_STUDIO_MAX_BODY_KB"
DEFAULT_BODY_KB = 1024  # handler inputs of the studio's tabs (text, numbers, choices), JSON
MULTIPART_OVERHEAD = 64 * 1024  # part headers and boundaries around the uploaded files

VOTE_BYTES = 4096  # a rater's vote: a trial id, a response, play counts and times
LOGIN_BYTES = 16 * 1024  # user name and password as a form

# (path pattern, limit in bytes or a callable giving it); the first match wins.
_ROUTES: list[tuple[re.Pattern, object]] = [
    (re.compile(r"^/listen/[^/]+/[^/]+/api/vote$"), VOTE_BYTES),
    (re.compile(r"^/listen/"), 1024),  # consent is an empty form; the rest are GETs
    (re.compile(r"^/login(-link/[^/]+)?/?$"), LOGIN_BYTES),
    (re.compile(r"^/logout/?$"), 1024),
    (re.compile(r"^(/gradio_api)?/upload/?$"), lambda: max_upload_bytes() + MULTIPART_OVERHEAD),
]


def max_upload_bytes() -> int:
    return int(float(os.environ.get(MAX_UPLOAD_BYTES_ENV, DEFAULT_MAX_UPLOAD_MB)) * 1024 * 1024)


def default_body_bytes() -> int:
    return int(float(os.environ.get(MAX_BODY_KB_ENV, DEFAULT_BODY_KB)) * 1024)


def body_limit(path: str) -> int:
    for pattern, limit in _ROUTES:
        if pattern.match(path):
            return limit() if callable(limit) else limit
    return default_body_bytes()


def _too_large(limit: int):
    # An HTTPException, so that FastAPI's body parsing passes it on as 413 (it turns other errors
    # while reading a body into 400) and Starlette's exception middleware answers it.
    from starlette.exceptions import HTTPException

    return HTTPException(413, f"request body too large (limit {limit} bytes)")


async def _refuse(send, limit: int) -> None:
    body = f'{{"detail": "request body too large (limit {limit} bytes)"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: the per-route body limit, before any byte of the body is buffered."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = True
            if too_big:
                await _refuse(send, limit)
                return
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _too_large(limit)
            return message

        async def watched_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        from starlette.exceptions import HTTPException

        try:
            await self.app(scope, counted_receive, watched_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await _refuse(send, limit)
