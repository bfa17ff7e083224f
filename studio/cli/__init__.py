"""The `bark-studio` command. It mirrors the UI: whatever the browser can do to data, a command
can do, and every command that reports takes --json. Each group lives in its own module."""
from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any, Callable

import click

from studio.errors import DiskFull, UserError, is_disk_full
from studio.workspace import Workspace

# Modules that add commands to `main` (each defines `register(main)`).
COMMAND_MODULES = [
    "studio.cli.core",
    "studio.cli.jobs_cmd",
    "studio.cli.dataset_cmd",
    "studio.cli.sweep_cmd",
    "studio.cli.experiment_cmd",
    "studio.cli.emergent_cmd",
    "studio.cli.listen_cmd",
    "studio.cli.train_cmd",
    "studio.cli.models_cmd",
    "studio.cli.workers_cmd",
    "studio.cli.tag_probe_cmd",
]


class Context:
    def __init__(self, home: str | None):
        self._home = home
        self._ws: Workspace | None = None

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            self._ws = Workspace.resolve(self._home)
        return self._ws


pass_ctx = click.make_pass_decorator(Context)


class StudioGroup(click.Group):
    """Turns UserError, and a full disk, into one clear line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            if isinstance(exc, DiskFull) and exc.__cause__ is not None:
                _log_traceback(ctx, exc)
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except Exception as exc:
            home = getattr(ctx.obj, "_home", None) or os.environ.get("BARK_STUDIO_HOME") or "."
            if not is_disk_full(exc, home if os.path.isdir(home) else None):
                raise
            _log_traceback(ctx, exc)
            click.echo(f"error: {DiskFull()}", err=True)
            sys.exit(1)


CLI_LOG = "bark-studio-cli.log"  # in the system temp folder: the workspace's disk may be the full one


def _log_traceback(ctx: click.Context, exc: BaseException) -> None:
    """Keep the traceback the terminal is spared, for a bug report (best effort: the disk may be full)."""
    import tempfile
    import traceback

    try:
        with open(os.path.join(tempfile.gettempdir(), CLI_LOG), "a") as f:
            f.write(f"--- bark-studio {' '.join(sys.argv[1:])}\n{''.join(traceback.format_exception(exc))}")
    except OSError:
        pass


@click.group(cls=StudioGroup)
@click.option("--home", envvar="BARK_STUDIO_HOME", type=click.Path(file_okay=False),
              help="Workspace folder (default: $BARK_STUDIO_HOME, else the user's data directory).")
@click.pass_context
def main(ctx: click.Context, home: str | None) -> None:
    """Bark Studio: curate, condition, fine-tune, generate and judge Bark."""
    ctx.obj = Context(home)
    _show_dispatch_warnings()


def _show_dispatch_warnings() -> None:
    """What the job dispatcher warns about (a job queued with no worker alive) is one stderr line."""
    import logging

    logger = logging.getLogger("workers.dispatch")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        handler.setLevel(logging.WARNING)
        logger.addHandler(handler)
        logger.propagate = False


def emit(data: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    """Print `data` as JSON with --json, else as the human summary."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    else:
        click.echo(human(data) if human else json.dumps(data, indent=2, default=str, ensure_ascii=False))


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(main)
