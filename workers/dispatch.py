"""Starting, resuming and cancelling jobs: the one path the CLI and the UI use. Checks that the
weights the job will load are local (studio.weights), writes the row, then enqueues it; with
`wait`, blocks until it ends, running it in this process when no worker is alive."""
from __future__ import annotations

import logging
import time

from studio import jobs
from studio.errors import UserError
from studio.weights import missing_weights
from studio.workspace import Workspace
from workers.kinds import kind_of
from workers.queue import enqueue, revoke

log = logging.getLogger(__name__)  # the CLI prints this logger's warnings as `warning: ...` lines
NO_WORKER = ("no worker is running, so it waits in the queue: start one with `bark-studio worker` "
             "(or restart `bark-studio serve`)")


def no_worker_warning(db, job: dict | None) -> str | None:
    """A line to show beside a queued job when no live worker can take it, else None."""
    if not job or job.get("status") != "queued" or jobs.live_workers(db):
        return None
    return f"job {job['id']} is queued, but {NO_WORKER}"


def submit(ws: Workspace, kind: str, params: dict | None = None, *, priority: int = 0,
           wait: bool = False, poll: float = 0.5) -> dict:
    kind_of(kind)  # an unknown kind fails here, before a row is written
    missing = missing_weights(kind, params)  # so does a real model whose weights are not local
    if missing:
        raise UserError(missing)
    job_id = jobs.create_job(ws.db, kind, params, priority=priority)
    if wait and not jobs.live_workers(ws.db):
        from workers.runner import execute

        return execute(ws, job_id, worker_id="inline")
    _enqueue_row(ws, job_id, priority)
    return wait_for(ws, job_id, poll) if wait else jobs.get_job(ws.db, job_id)


def resume(ws: Workspace, job_id: int, *, wait: bool = False, params_update: dict | None = None) -> dict:
    """Queue a cancelled, failed or interrupted job again; its handler continues from its last
    checkpoint (or the one named in `params_update`). The claim makes it run exactly once."""
    job = jobs.requeue(ws.db, job_id, params_update)
    if wait and not jobs.live_workers(ws.db):
        from workers.runner import execute

        return execute(ws, job_id, worker_id="inline")
    _enqueue_row(ws, job_id, job["priority"])
    return wait_for(ws, job_id) if wait else jobs.get_job(ws.db, job_id)


def cancel(ws: Workspace, job_id: int) -> dict:
    """A queued job is cancelled now and its queue delivery revoked; a running one stops at its
    next step (after saving a checkpoint) and ends 'cancelled'."""
    task_id = jobs.queue_task_id(ws.db, job_id)
    if jobs.request_cancel(ws.db, job_id) == "cancelled" and task_id:
        revoke(ws, task_id)
    return jobs.get_job(ws.db, job_id)


def wait_for(ws: Workspace, job_id: int, poll: float = 0.5, timeout: float | None = None) -> dict:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job = jobs.get_job(ws.db, job_id)
        if job["status"] not in ("queued", "running"):
            return job
        if deadline is not None and time.monotonic() > deadline:
            return job
        time.sleep(poll)


def _enqueue_row(ws: Workspace, job_id: int, priority: int) -> None:
    jobs.set_queue_task(ws.db, job_id, enqueue(ws, job_id, priority))
    warning = no_worker_warning(ws.db, {"id": job_id, "status": "queued"})
    if warning:
        log.warning(warning)
