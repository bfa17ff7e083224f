"""Where the running studio answers. `bark-studio serve` records its address once it answers, so
rater links (from the CLI and the Listen tab) carry the real port, not a default one."""
from __future__ import annotations

import os
import socket

from models.files import atomic_write
from studio.workspace import Workspace

PUBLIC_URL_ENV = "BARK_STUDIO_PUBLIC_URL"  # set when raters reach the studio through a proxy or a public name
DEFAULT_URL = "http://127.0.0.1:7860"
SERVED_URL_FILE = "served-url"


def address(host: str, port: int) -> str:
    """The URL a browser uses for a server bound to host:port (a wildcard bind is reached by host name)."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def record(ws: Workspace, url: str) -> None:
    atomic_write(ws.root / SERVED_URL_FILE, (url + "\n").encode())


def public_url(ws: Workspace) -> str:
    """Where raters reach the studio: $BARK_STUDIO_PUBLIC_URL, else where `serve` last answered."""
    if os.environ.get(PUBLIC_URL_ENV):
        return os.environ[PUBLIC_URL_ENV]
    try:
        return (ws.root / SERVED_URL_FILE).read_text().strip() or DEFAULT_URL
    except OSError:
        return DEFAULT_URL
