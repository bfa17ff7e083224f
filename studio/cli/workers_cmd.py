"""workers: every live worker of this studio, on any host."""
from __future__ import annotations

import click

from studio import fleet
from studio.cli import emit, json_option, pass_ctx


def register(main: click.Group) -> None:
    main.add_command(workers)


@click.command("workers")
@json_option
@pass_ctx
def workers(ctx, as_json):
    """Live workers: host:pid, the GPUs each drives, the jobs it runs, its last heartbeat."""
    emit(fleet.live_workers(ctx.ws.db), as_json,
         lambda ws: "\n".join(fleet.describe(w) for w in ws) or "no live worker (start one: bark-studio worker)")
