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
import threading
import time
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from studio import served
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
    from studio.ui.style import STUDIO_CSS

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
        css=STUDIO_CSS,  # phones and tablets, readable tables (studio/ui/style.py)
    )


def start_embedded_worker(ws: Workspace, workers: int) -> subprocess.Popen:
    # Same process group as the server: Ctrl-C in the terminal reaches the worker too, and it
    # checkpoints and stops; a worker in its own session outlived the studio.
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "--home", str(ws.root), "worker",
                             "--workers", str(workers)])

    def _stop() -> None:
        for sig, grace in ((None, 5), (signal.SIGINT, 30)):  # a second SIGINT would stop it mid-step
            if proc.poll() is not None:
                return
            if sig is not None:
                proc.send_signal(sig)
            try:
                proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                pass
        proc.kill()

    atexit.register(_stop)
    return proc


def run_server(ws: Workspace, host: str = "127.0.0.1", port: int = 7860, embedded_workers: int = 2, auth=None) -> None:
    import uvicorn

    if embedded_workers:
        start_embedded_worker(ws, embedded_workers)
    login_line = None
    if auth is None:
        from studio.security import OWNER_USER, owner_password

        password, source = owner_password(ws)
        shown = password if not source.startswith("$") else f"(from {source})"
        login_line = (f"Owner login: user {OWNER_USER!r}, password {shown}" +
                      (f"  (saved in {source})" if not source.startswith("$") else ""))
    server = uvicorn.Server(uvicorn.Config(create_app(ws, auth=auth), host=host, port=port, log_level="warning"))
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
