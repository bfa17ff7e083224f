"""jobs list|show|cancel|resume|ping."""
from __future__ import annotations

import click

from studio import jobs
from studio.cli import emit, json_option, pass_ctx
from studio.errors import UserError


def register(main: click.Group) -> None:
    main.add_command(jobs_group)


def _line(j: dict) -> str:
    pct = f"{100 * (j['progress'] or 0):5.1f}%"
    return f"{j['id']:>5}  {j['kind']:<12} {j['status']:<11} {pct}  {j['message'] or ''}"


def _detail(j: dict, traceback: bool = False) -> str:
    lines = [_line(j)]
    if j.get("step") is not None and j.get("total_steps"):
        eta = f", about {j['eta_seconds']:.0f}s left" if j.get("eta_seconds") and j["status"] == "running" else ""
        lines.append(f"step {j['step']}/{j['total_steps']}{eta}")
    if j.get("error"):
        reason = f" [{j['failure_reason']}]" if j.get("failure_reason") else ""
        lines.append(f"error{reason}: {j['error']}")
        if j.get("error_detail"):
            lines.append(j["error_detail"].rstrip() if traceback
                         else f"(traceback folded away: bark-studio jobs show {j['id']} --traceback)")
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
    """Jobs, newest first."""
    rows = jobs.list_jobs(ctx.ws.db, status=status, kind=kind, limit=limit)
    emit(rows, as_json, lambda rs: "\n".join(_line(j) for j in rs) or "no jobs")


@jobs_group.command("show")
@click.argument("job_id", type=int)
@click.option("--traceback", "show_traceback", is_flag=True, help="Unfold a failed job's traceback.")
@json_option
@pass_ctx
def show(ctx, job_id, show_traceback, as_json):
    """One job: status, progress, error (traceback folded unless asked), log tail, metrics."""
    job = jobs.get_job(ctx.ws.db, job_id)
    job["metrics"] = jobs.metric_series(ctx.ws.db, job_id)
    emit(job, as_json, lambda j: _detail(j, show_traceback))


@jobs_group.command("cancel")
@click.argument("job_id", type=int)
@json_option
@pass_ctx
def cancel(ctx, job_id, as_json):
    """Cancel a queued job now (its queue delivery is revoked); stop a running one at its next step."""
    from workers.dispatch import cancel as cancel_job

    emit(cancel_job(ctx.ws, job_id), as_json, _detail)


@jobs_group.command("resume")
@click.argument("job_id", type=int)
@click.option("--wait", is_flag=True, help="Block until the job ends (runs it here if no worker is alive).")
@click.option("--gpus", type=int, help="A training job: continue on this many GPUs (its checkpoint resumes at any count).")
@click.option("--batch-size", type=int, help="A training job: examples per GPU from now on (keep gpus x batch-size "
              "to keep its global batch).")
@json_option
@pass_ctx
def resume(ctx, job_id, wait, gpus, batch_size, as_json):
    """Queue a cancelled, failed or interrupted job again, from its last checkpoint."""
    from models.world import gpus_refusal
    from workers.dispatch import resume as resume_job

    refusal = gpus_refusal(gpus, remote_workers=bool(ctx.ws.redis_url))
    if refusal:
        raise UserError(refusal)
    update = {k: v for k, v in (("gpus", gpus), ("batch_size", batch_size)) if v is not None}
    emit(resume_job(ctx.ws, job_id, wait=wait, params_update=update or None), as_json, _detail)


@jobs_group.command("ping")
@click.option("--wait", is_flag=True)
@json_option
@pass_ctx
def ping(ctx, wait, as_json):
    """Send a no-op job through the queue."""
    from workers.dispatch import submit

    emit(submit(ctx.ws, "noop", {}, wait=wait), as_json, _detail)
