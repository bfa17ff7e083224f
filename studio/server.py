"""The web process: a FastAPI app carrying the Gradio studio (owner only) and the routes other
rooms add (rater pages, static files). It never loads a model: heavy work is a job.

`bark-studio serve` also starts one worker process beside it, as a separate process, so a crash
while decoding untrusted audio or running a model cannot take the studio down."""
from __future__ import annotations

import importlib
import os
import threading
import time
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from studio import served
from studio.limits import max_upload_bytes
from studio.workspace import Workspace

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Modules that add routes to the app before the studio is mounted (each defines `install(app, ws)`).
ROUTE_MODULES: list[str] = [
    "studio.listening.web",  # rater pages: outside the owner login, addressed by random tokens
    "studio.login_links",  # the owner's one-time login links
]


def create_app(ws: Workspace, auth=None) -> FastAPI:
    """The web app. `auth` defaults to the owner's login (studio.security); the studio has no open mode."""
    import gradio as gr

    from studio import login_links, security
    from studio.ui.app import build_studio
    from studio.ui.style import STUDIO_CSS

    if auth is None:
        auth = security.OwnerAuth(security.owner_password(ws)[0])
    app = FastAPI(title="Bark Studio", docs_url=None, redoc_url=None, openapi_url=None)
    security.install(app)  # body limits, the owner gate, rate-limited login, deny-all CORS
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for name in ROUTE_MODULES:
        importlib.import_module(name).install(app, ws)
    blocks = build_studio(ws)
    gr.mount_gradio_app(
        app, blocks, path="/",
        auth=auth,
        max_file_size=max_upload_bytes(),
        allowed_paths=[str(ws.audio_dir), str(ws.generated_dir), str(ws.voices_dir)],
        blocked_paths=[str(ws.db_path), str(ws.queue_path), str(ws.checkpoints_dir),
                       str(ws.adapters_dir), str(ws.tokens_dir), str(ws.models_dir),
                       str(security.password_file(ws)), str(login_links.links_file(ws))],
        ssr_mode=False,  # SSR had a forged-Host auth bypass (6.27-6.31); the studio needs none
        show_error=False,  # gr.Error messages still show; other errors (paths, SQL) stay in the log
        footer_links=[],
        css=STUDIO_CSS,  # phones and tablets, readable tables (studio/ui/style.py)
    )
    # mount_gradio_app never marks the Blocks launched, and Gradio checks file paths sent as handler
    # inputs (upload folder only, blocked_paths) only for a launched Blocks: without this any server
    # file could be copied into Gradio's cache through a handler input.
    blocks.has_launched = True
    app.state.gradio_app = next(r.app for r in app.routes if getattr(r, "app", None) is not None
                                and getattr(r.app, "get_blocks", None) is not None)
    return app


def start_embedded_worker(ws: Workspace, workers: int):
    """The worker beside the web process, restarted if it dies (workers.embedded)."""
    from workers.embedded import EmbeddedWorker

    return EmbeddedWorker(ws, workers).start()


def run_server(ws: Workspace, host: str = "127.0.0.1", port: int = 7860, embedded_workers: int = 2, auth=None) -> None:
    import uvicorn

    from studio import login_links
    from studio.security import trusted_proxies

    if embedded_workers:
        start_embedded_worker(ws, embedded_workers)
    login_line = None
    if auth is None:
        from studio.security import OWNER_USER, owner_password

        password, source = owner_password(ws)
        shown = password if not source.startswith("$") else f"(from {source})"
        login_line = (f"Owner login: user {OWNER_USER!r}, password {shown}" +
                      (f"  (saved in {source})" if not source.startswith("$") else ""))
        base = os.environ.get(served.PUBLIC_URL_ENV) or served.address(host, port)
        login_line += f"\nOne-time owner login link (10 min): {login_links.link(base, login_links.issue(ws))}"
    proxies = trusted_proxies()  # X-Forwarded-For is believed from these peers only (default: none)
    server = uvicorn.Server(uvicorn.Config(create_app(ws, auth=auth), host=host, port=port, log_level="warning",
                                           proxy_headers=bool(proxies), forwarded_allow_ips=",".join(proxies) or ""))
    threading.Thread(target=_announce_when_up, args=(server, ws, served.address(host, port), login_line),
                     daemon=True).start()
    server.run()


def _announce_when_up(server, ws: Workspace, url: str, login_line: str | None) -> None:
    """Print the address only once the server answers on it (and record it for rater links)."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.1)
    served.record(ws, url)
    print(f"Bark Studio on {url}  (workspace {ws.root})", flush=True)
    if login_line:
        print(login_line, flush=True)
