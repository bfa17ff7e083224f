"""The GPU lock: one training job per GPU. It is a Huey lock (a key in the queue's storage, so it
spans every worker process of a host and every host on one Redis), named for this host and GPU,
holding the id of the job that owns it.

Huey's `lock_task` makes a task that cannot get the lock fail ("unable to acquire lock"); here a
job that finds the GPU busy is put back on the schedule and waits. A consumer that was SIGKILLed
leaves its lock behind: the next consumer on the host flushes it at start unless its job is still
alive (running with a fresh heartbeat: an orphaned worker may still be training), and a lock whose
job has ended, or whose job's heartbeat has gone silent, is broken by the next job that asks for it
(at run time, with no consumer restart).

A job over N GPUs (train --gpus N) takes the locks of N GPUs of its host together or not at all
(`GpuLocks`): in one global order, each without waiting, the ones it got released again when one is
busy. A job never waits while it holds a lock, so two jobs that each want two GPUs cannot hold one
each and wait for the other: the one that finds a GPU busy lets go and asks again a moment later.

A delivery frees its locks as soon as its job's row has ended (workers.runner watches the row
while the job's process exits, which with torch loaded takes seconds, and kills a process that
lingers), not when that process is gone."""
from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Callable

from huey.api import Huey
from sqlalchemy import select

from studio import jobs
from studio.db import Database, utcnow

GPU_ENV = "BARK_STUDIO_GPU"  # which GPU this worker drives (one `bark-studio worker` per GPU)


VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"
JOB_GPUS_ENV = "BARK_STUDIO_JOB_GPUS"  # set by the runner for a job's process: the GPUs whose locks it holds


def gpu_name() -> str:
    """host:gpu, e.g. 'box1:0'. The GPU index comes from BARK_STUDIO_GPU, else the first visible device."""
    gpu = os.environ.get(GPU_ENV) or (os.environ.get(VISIBLE_ENV) or "0").split(",")[0].strip() or "0"
    return f"{socket.gethostname()}:{gpu}"


def visible_devices_for(gpu: str | None, visible: str | None, count: Callable[[], int]) -> str | None:
    """The CUDA_VISIBLE_DEVICES that leaves only the card BARK_STUDIO_GPU names (`gpu`, an index
    among the cards this process may use), so that a job's "cuda" (cuda:0) is that card; None to
    leave the environment as it is. `visible` is the current CUDA_VISIBLE_DEVICES; `count()` the
    number of cards this process sees (asked only when `visible` is unset).

    One visible card is left alone whatever its number: a container started with one GPU, or a
    scheduler that handed out one, already chose it. Raises ValueError when `gpu` is not a card
    this process can see."""
    if gpu is None or not gpu.strip():
        return None
    gpu = gpu.strip()
    if not gpu.isdigit():
        raise ValueError(f"{GPU_ENV}={gpu!r} is not a GPU index (0, 1, ...)")
    index = int(gpu)
    entries = [e.strip() for e in visible.split(",") if e.strip()] if visible is not None else None
    n = len(entries) if entries is not None else count()
    if n <= 1:
        return None
    if index >= n:
        raise ValueError(f"{GPU_ENV}={gpu}, but this process sees {n} GPUs (0..{n - 1})")
    return entries[index] if entries is not None else str(index)


def pin_job_gpu(env=os.environ) -> str | None:
    """In a job's own process, before CUDA initialises: make the worker's GPU the only visible one.
    Returns the CUDA_VISIBLE_DEVICES it set (None when it left the environment alone)."""

    def count() -> int:
        import torch  # counts through NVML: CUDA itself stays uninitialised, so the setting below holds

        return torch.cuda.device_count()

    if env.get(JOB_GPUS_ENV):  # a job over several GPUs: exactly the ones it locked
        env[VISIBLE_ENV] = env[JOB_GPUS_ENV]
        return env[VISIBLE_ENV]
    value = visible_devices_for(env.get(GPU_ENV), env.get(VISIBLE_ENV), count)
    if value is not None:
        env[VISIBLE_ENV] = value
    return value


def job_gpus(params: dict | None, env=os.environ) -> list[str]:
    """The GPUs a training job locks: the worker's own for one; for N, the host's first N (the
    entries of CUDA_VISIBLE_DEVICES when it is set, else indices 0..N-1)."""
    n = int((params or {}).get("gpus") or 1)
    if n <= 1:
        return [gpu_name().rsplit(":", 1)[1]]
    visible = [e.strip() for e in (env.get(VISIBLE_ENV) or "").split(",") if e.strip()]
    return visible[:n] if len(visible) >= n else [str(i) for i in range(n)]


class GpuLock:
    def __init__(self, huey: Huey, name: str | None = None):
        self.name = f"gpu:{name or gpu_name()}"
        self.gpu = self.name.rsplit(":", 1)[1]
        self.huey = huey
        self.lock = huey.lock_task(self.name)  # registers the key, so flush_locks() clears it

    def holder(self) -> int | None:
        """The job id in the lock, None when free (-1 when it holds something else: stale)."""
        value = self.huey.get(self.lock._key, peek=True)
        if value is None:
            return None
        return value if isinstance(value, int) else -1

    def acquire(self, db: Database, job_id: int) -> int | None:
        """Take the lock for `job_id`. Returns None on success, else the id of the job holding it.

        The check-and-break of a dead holder runs inside one database write transaction, which
        serialises it across every worker sharing the database."""
        with db.write() as s:
            if self.huey.put_if_empty(self.lock._key, job_id):
                return None
            holder = self.holder()
            if holder == job_id:
                return None  # ours already (a crash between taking it and claiming the row)
            row = s.get(jobs.Job, holder) if holder is not None else None
            if row is not None and (row.status == "queued" or _beating(row)):
                return holder
            # its job ended without releasing it, or its worker died (a host gone, its heartbeat
            # silent for three beats) before anyone swept the row: stale either way
            self.huey.delete(self.lock._key)
            return None if self.huey.put_if_empty(self.lock._key, job_id) else self.holder()

    def release(self, job_id: int) -> None:
        if self.holder() == job_id:
            self.lock.release()

    def release_when_ended(self, db: Database, job_id: int) -> None:
        """A delivery's release once its job has ended. A job resumed at once is queued or running
        again under a newer delivery, which may already count this lock as its own (see acquire):
        that delivery releases it. But a resume may change the GPU count (2 ranks, then 1): a lock
        the newer run cannot take is released here, or it would stay held by a job not using that
        GPU. One write transaction, like acquire."""
        with db.write() as s:
            row = s.get(jobs.Job, job_id)
            if row is None or row.status not in ("queued", "running") or self.gpu not in _gpus_it_may_take(s, row):
                self.release(job_id)

    def flush_if_stale(self, db: Database, others_alive: bool) -> int | None:
        """At a consumer's start: free the lock unless its job is alive. Returns the id of the job
        whose stale lock was flushed, else None. A running holder with a fresh heartbeat keeps it
        (its worker outlived a crash of the server that started it); a queued holder keeps it
        while another worker is alive (it took the lock and is claiming the row this moment)."""
        with db.write() as s:
            holder = self.holder()
            if holder is None:
                return None
            row = s.get(jobs.Job, holder) if holder > 0 else None
            if row is not None and _beating(row):
                return None
            if row is not None and row.status == "queued" and others_alive:
                return None
            self.huey.delete(self.lock._key)
            return holder


def _gpus_it_may_take(s, row: jobs.Job) -> set[str]:
    """The GPUs whose locks a newer delivery of this queued or running job may count as its own:
    for several, the ones job_gpus names (the same on every worker of this host); for one, the GPU
    of any live worker on this host (the delivery may land on any of them)."""
    if int((row.params or {}).get("gpus") or 1) > 1:
        return set(job_gpus(row.params))
    fresh_after = utcnow() - timedelta(seconds=3 * jobs.heartbeat_seconds())
    listed = s.scalars(select(jobs.WorkerRow.gpus).where(
        jobs.WorkerRow.host == socket.gethostname(), jobs.WorkerRow.heartbeat_at >= fresh_after,
        jobs.WorkerRow.stopped_at.is_(None)))
    return {g.strip() for gpus in listed for g in (gpus or "").split(",") if g.strip()} | set(job_gpus(row.params))


def _beating(row: jobs.Job) -> bool:
    """A running job whose heartbeat is fresh: its worker is alive, wherever it runs."""
    fresh_after = utcnow() - timedelta(seconds=jobs.stale_after_seconds())
    return row.status == "running" and row.heartbeat_at is not None and row.heartbeat_at >= fresh_after


class GpuLocks:
    """The locks of several GPUs of this host, taken together or not at all (see the module doc)."""

    def __init__(self, huey: Huey, gpus: list[str]):
        host = socket.gethostname()
        self.locks = [GpuLock(huey, f"{host}:{g}") for g in sorted(gpus, key=lambda g: (len(g), g))]
        self.name = "+".join(lock.name for lock in self.locks)

    def acquire(self, db: Database, job_id: int) -> int | None:
        """Take every lock for `job_id`: None on success, else the id of a job holding one (then
        this job holds none; `name` says which GPU was busy)."""
        taken = []
        for lock in self.locks:  # one global order, and no waiting while holding
            holder = lock.acquire(db, job_id)
            if holder is not None:
                for got in reversed(taken):
                    got.release(job_id)
                self.name = lock.name
                return holder
            taken.append(lock)
        return None

    def release(self, job_id: int) -> None:
        for lock in reversed(self.locks):
            lock.release(job_id)

    def release_when_ended(self, db: Database, job_id: int) -> None:
        for lock in reversed(self.locks):
            lock.release_when_ended(db, job_id)

    def holders(self) -> list[int | None]:
        return [lock.holder() for lock in self.locks]
