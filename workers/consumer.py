"""`bark-studio worker`: a Huey consumer for one workspace. The consumer's parent process never
imports torch or initialises CUDA; jobs run in its process workers. On start it clears locks a
killed consumer left behind and marks jobs whose heartbeat stopped as interrupted."""
from __future__ import annotations

import logging
import os
import socket
import threading

from studio import jobs
from studio.db import utcnow
from studio.workspace import Workspace
from workers.queue import queue_for
from workers.runner import HEARTBEAT_SECONDS

log = logging.getLogger(__name__)
STALE_AFTER = 3 * HEARTBEAT_SECONDS  # a job silent for three heartbeats is interrupted


def run_consumer(ws: Workspace, workers: int = 2, worker_type: str = "process") -> None:
    huey = queue_for(ws)
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    _register(ws, worker_id)
    jobs.mark_stale_interrupted(ws.db, STALE_AFTER)
    stop = threading.Event()
    threading.Thread(target=_keep_alive, args=(ws, worker_id, stop), daemon=True).start()
    consumer = huey.create_consumer(workers=workers, worker_type=worker_type, flush_locks=True,
                                    periodic=False, check_worker_health=True)
    try:
        consumer.run()
    finally:
        stop.set()
        with ws.db.write() as s:
            row = s.get(jobs.WorkerRow, worker_id)
            if row is not None:
                row.stopped_at = utcnow()


def _register(ws: Workspace, worker_id: str) -> None:
    with ws.db.write() as s:
        s.merge(jobs.WorkerRow(id=worker_id, host=socket.gethostname(), pid=os.getpid(),
                               started_at=utcnow(), heartbeat_at=utcnow(), stopped_at=None))


def _keep_alive(ws: Workspace, worker_id: str, stop: threading.Event) -> None:
    """The worker's own heartbeat, and the sweep that turns silent running jobs into interrupted ones."""
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            with ws.db.write() as s:
                row = s.get(jobs.WorkerRow, worker_id)
                if row is not None:
                    row.heartbeat_at = utcnow()
            jobs.mark_stale_interrupted(ws.db, STALE_AFTER)
        except Exception:  # noqa: BLE001 - retried next interval
            log.warning("worker heartbeat failed", exc_info=True)
