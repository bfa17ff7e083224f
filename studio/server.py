"""The web process: a FastAPI app carrying the Gradio studio (owner only) and the routes other
rooms add (rater pages, static files). It never loads a model: heavy work is a job.

`bark-studio serve` also starts one worker process beside it, as a separate process, so a crash
while decoding untrusted audio or running a model cannot take the studio down."""
from __future__ import annotations

import atexit
import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from studio.workspace import Workspace

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
MAX_UPLOAD_BYTES_ENV = "BARK_STUDIO_MAX_UPLOAD_MB"
DEFAULT_MAX_UPLOAD_MB = 500

# Modules that add routes to the app before the studio is mounted (each defines `install(app, ws)`).
ROUTE_MODULES: list[str] = [
    "studio.listening.web",  # rater pages: outside the owner login, addressed by random tokens
]


def max_upload_bytes() -> int:
    return int(float(os.environ.get(MAX_UPLOAD_BYTES_ENV, DEFAULT_MAX_UPLOAD_MB)) * 1024 * 1024)


def create_app(ws: Workspace, auth=None) -> FastAPI:
    """The web app. `auth` defaults to the owner's login (studio.security); the studio has no open mode."""
    import gradio as gr

    from studio import security
    from studio.ui.app import build_studio

    if auth is None:
        auth = security.OwnerAuth(security.owner_password(ws)[0])
    app = FastAPI(title="Bark Studio", docs_url=None, redoc_url=None, openapi_url=None)
    security.install(app)  # deny-all CORS, rate-limited owner login
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for name in ROUTE_MODULES:
        importlib.import_module(name).install(app, ws)
    blocks = build_studio(ws)
    return gr.mount_gradio_app(
        app, blocks, path="/",
        auth=auth,
        max_file_size=max_upload_bytes(),
        allowed_paths=[str(ws.audio_dir), str(ws.generated_dir), str(ws.voices_dir)],
        blocked_paths=[str(ws.db_path), str(ws.queue_path), str(ws.checkpoints_dir),
                       str(ws.adapters_dir), str(ws.tokens_dir), str(ws.models_dir)],
        ssr_mode=False,  # SSR had a forged-Host auth bypass (6.27-6.31); the studio needs none
        show_error=True,  # shows gr.Error messages; handlers never raise raw tracebacks to users
        footer_links=[],
    )


def start_embedded_worker(ws: Workspace, workers: int):
    """The worker beside the web process, restarted if it dies (workers.embedded)."""
    from workers.embedded import EmbeddedWorker

    return EmbeddedWorker(ws, workers).start()


def run_server(ws: Workspace, host: str = "127.0.0.1", port: int = 7860, embedded_workers: int = 2, auth=None) -> None:
    import uvicorn

    if embedded_workers:
        start_embedded_worker(ws, embedded_workers)
    print(f"Bark Studio on http://{host}:{port}  (workspace {ws.root})", flush=True)
    if auth is None:
        from studio.security import OWNER_USER, owner_password

        password, source = owner_password(ws)
        shown = password if not source.startswith("$") else f"(from {source})"
        print(f"Owner login: user {OWNER_USER!r}, password {shown}" +
              (f"  (saved in {source})" if not source.startswith("$") else ""), flush=True)
    uvicorn.run(create_app(ws, auth=auth), host=host, port=port, log_level="warning")
