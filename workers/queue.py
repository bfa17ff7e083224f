"""The Huey instance of a workspace: SqliteHuey in the workspace by default, a priority RedisHuey
when BARK_STUDIO_REDIS_URL is set. One generic task, `run_job(job_id)`; the job row says what to do.

Huey delivers at most once, so the queue is only a doorbell: the row decides whether a delivery
runs (a cancelled or already-claimed job is skipped), and a lost delivery is repaired by resuming
the row, never by trusting the queue. A delivery (`run_delivery`) checks the row (a cancelled or
claimed job is skipped), takes the GPU lock for GPU-exclusive kinds (or goes back on the schedule
to wait for it), then hands the job to workers.runner."""
from __future__ import annotations

import logging
import os
import traceback
from functools import lru_cache

from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey

from studio import jobs
from studio.errors import NotFound
from studio.workspace import Workspace
from workers import runner
from workers.gpu_lock import GpuLock, GpuLocks, job_gpus
from workers.kinds import needs_gpu_lock, runs_in_child

log = logging.getLogger("workers.runner")  # the name these lines always had in the worker's log
GPU_WAIT_SECONDS = 1.0  # how soon a job that found the GPU busy asks again

QUEUE_NAME_ENV = "BARK_STUDIO_QUEUE_NAME"  # one Redis can serve several studios under distinct names


@lru_cache(maxsize=None)
def huey_for(ws_root: str, redis_url: str | None = None, name: str = "bark-studio") -> Huey:
    if redis_url:
        # Priority queues need Redis >= 5 (a sorted set per queue).
        huey = PriorityRedisHuey(name, url=redis_url, results=False)
    else:
        huey = SqliteHuey(name, filename=str(Workspace(ws_root).queue_path), results=False)

    @huey.task(name="run_job")
    def run_job(job_id: int) -> None:
        run_delivery(_worker_workspace(ws_root), job_id)

    huey.bark_run_job = run_job  # the enqueue handle, kept on the instance it belongs to
    return huey


@lru_cache(maxsize=None)
def _worker_workspace(ws_root: str) -> Workspace:
    """One Workspace (one database engine) per worker process, made after the fork."""
    return Workspace(ws_root)


def queue_for(ws: Workspace) -> Huey:
    return huey_for(str(ws.root), ws.redis_url, os.environ.get(QUEUE_NAME_ENV) or "bark-studio")


def enqueue(ws: Workspace, job_id: int, priority: int = 0, delay: float | None = None) -> str:
    """Put a delivery of `job_id` on the queue (after `delay` seconds when given); returns its task id."""
    huey = queue_for(ws)
    task = huey.bark_run_job.s(job_id, priority=priority, delay=delay or None)
    huey.enqueue(task)  # a task with an eta waits in the schedule until it is due
    return task.id


def revoke(ws: Workspace, task_id: str | None) -> None:
    """Revoke a queued delivery so no worker even dequeues it (the row is cancelled separately)."""
    if task_id:
        queue_for(ws).revoke_by_id(task_id, revoke_once=True)


def pending_count(ws: Workspace) -> int:
    return queue_for(ws).pending_count()


def run_delivery(ws: Workspace, job_id: int) -> None:
    try:
        job = jobs.get_job(ws.db, job_id)
    except NotFound:
        log.warning("delivery for job %s, which does not exist; dropped", job_id)
        return
    if job["status"] != "queued":
        log.info("job %s is %s; delivery skipped", job_id, job["status"])
        return
    gpus = job_gpus(job["params"]) if needs_gpu_lock(job["kind"]) else None
    lock = (GpuLocks(queue_for(ws), gpus) if len(gpus) > 1 else GpuLock(queue_for(ws))) if gpus else None
    try:
        holder = lock.acquire(ws.db, job_id) if lock is not None else None
        if holder is not None:
            _wait_for_gpu(ws, job, holder, lock.name)
            return
    except Exception as exc:  # the delivery would be lost with the job left queued: fail it visibly
        log.exception("job %s: could not be started", job_id)
        jobs.fail_unstarted(ws.db, job_id, f"could not be started: {type(exc).__name__}: {exc}", traceback.format_exc())
        return
    try:
        runner.execute(ws, job_id, stop_event=runner.SHUTDOWN, isolate=runs_in_child(job["kind"]),
                       gpus=gpus if gpus and len(gpus) > 1 else None,
                       on_ended=(lambda: lock.release_when_ended(ws.db, job_id)) if lock is not None else None)
    finally:
        if lock is not None:
            lock.release_when_ended(ws.db, job_id)


def _wait_for_gpu(ws: Workspace, job: dict, holder: int, lock_name: str) -> None:
    """The GPU is busy: schedule another delivery a moment later. The row stays queued."""
    task_id = enqueue(ws, job["id"], job["priority"], delay=GPU_WAIT_SECONDS)
    jobs.wait_in_queue(ws.db, job["id"], task_id, f"waiting for the GPU ({lock_name} is running job {holder})")
