"""The queue of a multi-host studio, on a real redis-server and a real PostgreSQL server: job
priorities hold on Redis, and a GPU lock left by a worker that died is broken when the next job
asks for it, with no consumer restart."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from studio import jobs
from studio.db import utcnow
from tests.conftest import Consumer
from workers.dispatch import submit, wait_for
from workers.gpu_lock import GpuLock
from workers.queue import queue_for


def test_higher_priority_jobs_run_first_on_redis_and_postgresql(ws, redis_url, postgres_url):
    assert type(queue_for(ws)).__name__ == "PriorityRedisHuey" and ws.db.engine.dialect.name == "postgresql"
    ids = [submit(ws, "noop", {"n": i}, priority=p)["id"] for i, p in enumerate([0, 10, 5, 7])]
    c = Consumer(ws, workers=1)  # queued while no worker ran; one worker takes them in order
    try:
        done = [wait_for(ws, i, poll=0.2, timeout=60) for i in ids]
    finally:
        c.stop()
    assert [d["status"] for d in done] == ["succeeded"] * 4
    with ws.db.read() as s:
        started = {i: s.get(jobs.Job, i).started_at for i in ids}
    assert [done[ids.index(i)]["priority"] for i in sorted(ids, key=started.get)] == [10, 7, 5, 0]


def _running_job_of_a_dead_worker(ws, silent_for: float) -> int:
    """A training job claimed by a worker on another host whose heartbeat stopped `silent_for` s ago."""
    job_id = jobs.create_job(ws.db, "train", {"dataset": "voice"})
    assert jobs.claim(ws.db, job_id, "gone-host:4242")
    with ws.db.write() as s:
        s.execute(update(jobs.Job).where(jobs.Job.id == job_id)
                  .values(heartbeat_at=utcnow() - timedelta(seconds=silent_for)))
    return job_id


def test_a_dead_workers_gpu_lock_is_broken_at_run_time(ws, redis_url, postgres_url):
    lock = GpuLock(queue_for(ws))
    dead = _running_job_of_a_dead_worker(ws, silent_for=3 * jobs.stale_after_seconds())
    assert lock.acquire(ws.db, dead) is None and lock.holder() == dead  # it held the GPU, then died
    waiting = jobs.create_job(ws.db, "train", {"dataset": "voice"})
    assert lock.acquire(ws.db, waiting) is None  # the row still says running, but nothing beats
    assert lock.holder() == waiting


def test_a_live_jobs_gpu_lock_is_kept(ws, redis_url, postgres_url):
    lock = GpuLock(queue_for(ws))
    alive = _running_job_of_a_dead_worker(ws, silent_for=0)  # beating now
    assert lock.acquire(ws.db, alive) is None
    waiting = jobs.create_job(ws.db, "train", {"dataset": "voice"})
    assert lock.acquire(ws.db, waiting) == alive and lock.holder() == alive
