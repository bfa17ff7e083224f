"""serve, worker, backup."""
from __future__ import annotations

from pathlib import Path

import click

from studio.cli import emit, json_option, pass_ctx


def register(main: click.Group) -> None:
    main.add_command(serve)
    main.add_command(worker)
    main.add_command(backup)
    main.add_command(login_link)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=7860, show_default=True, type=int)
@click.option("--workers", "n_workers", default=2, show_default=True, help="Process workers of the embedded consumer.")
@click.option("--no-worker", is_flag=True, help="Start no embedded worker (run `bark-studio worker` elsewhere).")
@pass_ctx
def serve(ctx, host: str, port: int, n_workers: int, no_worker: bool) -> None:
    """Start the studio in the browser, with one embedded worker process."""
    from studio.server import run_server

    run_server(ctx.ws, host=host, port=port, embedded_workers=0 if no_worker else n_workers)


@click.command()
@click.option("--workers", "n_workers", default=2, show_default=True, help="Process workers (jobs at once).")
@click.option("--parent-pid", type=int, default=None, hidden=True,
              help="Stop when this process (the `serve` that started the worker) is gone.")
@pass_ctx
def worker(ctx, n_workers: int, parent_pid: int | None) -> None:
    """Run a queue consumer against the workspace (one per GPU host)."""
    from workers.consumer import run_consumer

    run_consumer(ctx.ws, workers=n_workers, parent_pid=parent_pid)


@click.command()
@click.argument("target_dir", type=click.Path(file_okay=False))
@json_option
@pass_ctx
def backup(ctx, target_dir: str, as_json: bool) -> None:
    """Online backup of the studio database into TARGET_DIR (SQLite's backup API)."""
    from studio.db import utcnow

    out = Path(target_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = ctx.ws.db.backup(out / f"studio-{utcnow():%Y%m%d-%H%M%S}.db")
    emit({"backup": str(path)}, as_json, lambda d: f"backed up to {d['backup']}")


@click.command("login-link")
@click.option("--url", default=None, help="The studio's address (default: $BARK_STUDIO_PUBLIC_URL, else the "
                                          "address `serve` last answered on).")
@click.option("--minutes", default=10.0, show_default=True, type=float, help="How long the link works.")
@json_option
@pass_ctx
def login_link(ctx, url: str | None, minutes: float, as_json: bool) -> None:
    """Print a one-time owner login link (works once, even while failed logins block the password form)."""
    from studio import login_links, served

    base = url or served.public_url(ctx.ws)
    link = login_links.link(base, login_links.issue(ctx.ws, ttl_s=minutes * 60))
    emit({"link": link, "expires_in_s": minutes * 60}, as_json,
         lambda d: f"{d['link']}\n(works once, for {minutes:g} minutes)")
