"""The Huey instance of a workspace: SqliteHuey in the workspace by default, RedisHuey when
BARK_STUDIO_REDIS_URL is set. One generic task, `run_job(job_id)`; the job row says what to do."""
from __future__ import annotations

from functools import lru_cache

from huey import RedisHuey, SqliteHuey
from huey.api import Huey

from studio.workspace import Workspace


@lru_cache(maxsize=None)
def huey_for(ws_root: str, redis_url: str | None = None) -> Huey:
    ws = Workspace(ws_root)
    if redis_url:
        huey = RedisHuey("bark-studio", url=redis_url, results=False)
    else:
        huey = SqliteHuey("bark-studio", filename=str(ws.queue_path), results=False)

    @huey.task(name="run_job")
    def run_job(job_id: int) -> None:
        from workers.runner import execute

        execute(ws, job_id)

    huey.bark_run_job = run_job  # the enqueue handle, kept on the instance it belongs to
    return huey


def queue_for(ws: Workspace) -> Huey:
    return huey_for(str(ws.root), ws.redis_url)


def enqueue(ws: Workspace, job_id: int, priority: int = 0) -> str:
    task = queue_for(ws).bark_run_job.s(job_id)
    task.priority = priority
    queue_for(ws).enqueue(task)
    return task.id
