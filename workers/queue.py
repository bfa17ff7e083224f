"""The Huey instance of a workspace: SqliteHuey in the workspace by default, a priority RedisHuey
when BARK_STUDIO_REDIS_URL is set. One generic task, `run_job(job_id)`; the job row says what to do.

Huey delivers at most once, so the queue is only a doorbell: the row decides whether a delivery
runs (a cancelled or already-claimed job is skipped), and a lost delivery is repaired by resuming
the row, never by trusting the queue."""
from __future__ import annotations

import os
from functools import lru_cache

from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey

from studio.workspace import Workspace

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
        from workers.runner import run_delivery

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
