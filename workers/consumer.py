"""`bark-studio worker`: a Huey consumer for one workspace.

The consumer's parent process never imports torch (so CUDA never initialises in a process that
forks); Huey forks its process workers from it, and heavy jobs run in a fresh interpreter each.
On start it flushes the locks a killed consumer left behind (this host's GPU lock among them) and
marks jobs whose heartbeat stopped as interrupted; while it runs it beats its own row and keeps
sweeping. SIGINT is a graceful stop: running jobs finish their step, checkpoint and end
'interrupted' (resumable); a second SIGINT stops at once."""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading

from sqlalchemy import update

from studio import jobs
from studio.db import utcnow
from studio.workspace import Workspace
from workers import runner
from workers.gpu_lock import GpuLock
from workers.queue import queue_for

log = logging.getLogger("workers.consumer")


def run_consumer(ws: Workspace, workers: int = 2, worker_type: str = "process") -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    huey = queue_for(ws)
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    _register(ws, worker_id)
    swept = jobs.mark_stale_interrupted(ws.db, jobs.stale_after_seconds())
    if swept:
        log.warning("jobs %s had lost their heartbeat; marked interrupted", swept)
    gpu = GpuLock(huey)  # registers this host's GPU lock, so the flush below clears a stale one
    consumer = huey.create_consumer(workers=workers, worker_type=worker_type, flush_locks=True,
                                    periodic=False, check_worker_health=True, health_check_interval=2)
    runner.SHUTDOWN = consumer.stop_flag  # inherited by the forked workers
    log.info("worker %s: %d %s workers, GPU lock %s, heartbeat every %.1fs", worker_id, workers,
             worker_type, gpu.name, jobs.heartbeat_seconds())
    stop = threading.Event()
    threading.Thread(target=_keep_alive, args=(ws, worker_id, consumer, stop), daemon=True, name="keep-alive").start()
    try:
        consumer.run()
    finally:
        stop.set()
        with ws.db.write() as s:
            row = s.get(jobs.WorkerRow, worker_id)
            if row is not None:
                row.stopped_at = utcnow()
        log.info("consumer parent exiting; torch imported in the parent: %s", "torch" in sys.modules)


def _register(ws: Workspace, worker_id: str) -> None:
    with ws.db.write() as s:
        s.merge(jobs.WorkerRow(id=worker_id, host=socket.gethostname(), pid=os.getpid(),
                               started_at=utcnow(), heartbeat_at=utcnow(), stopped_at=None))


def _alive(pid: int | None) -> bool:
    """A live, non-zombie process (read from /proc; no waitpid, which would race Huey's own)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _keep_alive(ws: Workspace, worker_id: str, consumer, stop: threading.Event) -> None:
    """The worker's own heartbeat, the heartbeat of every job its worker processes are running,
    and the sweep that turns silent running jobs into interrupted ones; every half interval, so a
    silent job is marked within three intervals of its last beat.

    Beating here, in the parent, for jobs whose process is alive keeps a light job that holds the
    GIL for seconds (importing torch, a long C call) from reading as dead; a job whose process
    died, or whose whole consumer did, stops being beaten and is interrupted."""
    host = socket.gethostname()
    while not stop.wait(jobs.heartbeat_seconds() / 2):
        try:
            pids = [p.pid for _, p in list(consumer.worker_threads) if _alive(p.pid)]
            with ws.db.write() as s:
                now = utcnow()
                row = s.get(jobs.WorkerRow, worker_id)
                if row is not None:
                    row.heartbeat_at = now
                if pids:
                    s.execute(update(jobs.Job).where(jobs.Job.status == "running",
                                                     jobs.Job.worker_id.in_([f"{host}:{pid}" for pid in pids]))
                              .values(heartbeat_at=now))
            swept = jobs.mark_stale_interrupted(ws.db, jobs.stale_after_seconds())
            if swept:
                log.warning("jobs %s lost their heartbeat; marked interrupted", swept)
        except Exception:  # noqa: BLE001 - retried next interval
            log.warning("worker heartbeat failed", exc_info=True)
