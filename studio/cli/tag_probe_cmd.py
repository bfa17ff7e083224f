"""experiments tag-probe: each declared tag of an adapter's dataset, with and without the adapter."""
from __future__ import annotations

import click

from studio.cli import emit, json_option, pass_ctx


def register(main: click.Group) -> None:
    group = main.commands.get("experiments")
    if group is None:  # the `experiments` group is made here until another module owns one
        group = click.Group("experiments", help="Experiment tools over trained adapters (tag-probe).")
        main.add_command(group)
    group.add_command(tag_probe_cmd)


def _line(job: dict) -> str:
    from studio.experiments.tag_probe import table_text

    out = [f"job {job['id']} ({job['kind']}): {job['status']}"]
    if job.get("error"):
        out.append(f"error: {job['error']}")
    if job["status"] == "succeeded" and job.get("result"):
        out.append(table_text(job["result"]))
    return "\n".join(out)


@click.command("tag-probe")
@click.option("--adapter", required=True, help="The adapter (name, or `latest`) whose dataset's tags to probe.")
@click.option("--tags", default="", help="Comma-separated tags to probe (default: every declared tag).")
@click.option("--seeds", default=2, show_default=True, type=int, help="Seeds per carrier sentence (0..N-1).")
@click.option("--carrier", "carriers", multiple=True,
              help="A carrier sentence with {tag} where the tag goes (repeat; default: the two built-in ones).")
@click.option("--max-new-semantic", type=int, help="Cap on semantic tokens per take (short trials).")
@click.option("--wait", is_flag=True, help="Block until the job ends (runs it here if no worker is alive).")
@json_option
@pass_ctx
def tag_probe_cmd(ctx, adapter, tags, seeds, carriers, max_new_semantic, wait, as_json):
    """Generate each declared tag in fixed sentences, with and without the adapter and the tag, and
    tabulate what changed around the tag (loudness, non-speech share, emergent descriptors)."""
    from studio.experiments.tag_probe import KIND, probe_request
    from workers.dispatch import submit

    params = probe_request(ctx.ws, adapter, [t for t in tags.split(",") if t.strip()], seeds, list(carriers),
                           max_new_semantic)
    job = submit(ctx.ws, KIND, params, wait=wait)
    emit(job, as_json, _line)
    if job["status"] == "failed":
        raise SystemExit(1)
