"""jobs list|show|cancel|resume|ping."""
from __future__ import annotations

import click

from studio import jobs
from studio.cli import emit, json_option, pass_ctx


def register(main: click.Group) -> None:
    main.add_command(jobs_group)


def _line(j: dict) -> str:
    pct = f"{100 * (j['progress'] or 0):5.1f}%"
    return f"{j['id']:>5}  {j['kind']:<12} {j['status']:<11} {pct}  {j['message'] or ''}"


def _detail(j: dict) -> str:
    lines = [_line(j)]
    if j.get("error"):
        lines.append(f"error: {j['error']}")
    if j.get("result"):
        lines.append(f"result: {j['result']}")
    return "\n".join(lines)


@click.group("jobs")
def jobs_group() -> None:
    """Inspect and control jobs (the same rows the Train tab shows)."""


@jobs_group.command("list")
@click.option("--status", type=click.Choice(jobs.STATUSES))
@click.option("--kind")
@click.option("--limit", default=50, show_default=True)
@json_option
@pass_ctx
def list_(ctx, status, kind, limit, as_json):
    rows = jobs.list_jobs(ctx.ws.db, status=status, kind=kind, limit=limit)
    emit(rows, as_json, lambda rs: "\n".join(_line(j) for j in rs) or "no jobs")


@jobs_group.command("show")
@click.argument("job_id", type=int)
@json_option
@pass_ctx
def show(ctx, job_id, as_json):
    job = jobs.get_job(ctx.ws.db, job_id)
    job["metrics"] = jobs.metric_series(ctx.ws.db, job_id)
    emit(job, as_json, _detail)


@jobs_group.command("cancel")
@click.argument("job_id", type=int)
@json_option
@pass_ctx
def cancel(ctx, job_id, as_json):
    jobs.request_cancel(ctx.ws.db, job_id)
    emit(jobs.get_job(ctx.ws.db, job_id), as_json, _detail)


@jobs_group.command("resume")
@click.argument("job_id", type=int)
@click.option("--wait", is_flag=True, help="Block until the job ends (runs it here if no worker is alive).")
@json_option
@pass_ctx
def resume(ctx, job_id, wait, as_json):
    from workers.dispatch import resume as resume_job

    emit(resume_job(ctx.ws, job_id, wait=wait), as_json, _detail)


@jobs_group.command("ping")
@click.option("--wait", is_flag=True)
@json_option
@pass_ctx
def ping(ctx, wait, as_json):
    """Send a no-op job through the queue."""
    from workers.dispatch import submit

    emit(submit(ctx.ws, "noop", {}, wait=wait), as_json, _detail)
