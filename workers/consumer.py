"""`bark-studio worker`: a Huey consumer for one workspace.

The consumer's parent process never imports torch (so CUDA never initialises in a process that
forks); Huey forks its process workers from it, and heavy jobs run in a fresh interpreter each.
On start it marks jobs whose heartbeat stopped as interrupted and flushes the locks a killed
consumer left behind (this host's GPU lock only when its job is no longer alive); while it runs it
beats its own row and keeps sweeping. SIGINT is a graceful stop: running jobs finish their step,
checkpoint and end 'interrupted' (resumable); a second SIGINT stops at once.

The worker `serve` embeds is given the server's pid and stops (gracefully) when the server is gone,
so a SIGKILLed studio leaves no orphan behind; a standalone `bark-studio worker` has no parent to watch."""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time

from studio import jobs
from studio.workspace import Workspace
from workers import runner
from workers.gpu_lock import GpuLock, gpu_name
from workers.queue import queue_for

log = logging.getLogger("workers.consumer")


PARENT_POLL_SECONDS = 1.0  # how often an embedded worker checks that its server still runs


def run_consumer(ws: Workspace, workers: int = 2, worker_type: str = "process", parent_pid: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    huey = queue_for(ws)
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    _register(ws, worker_id)
    swept = jobs.mark_stale_interrupted(ws.db, jobs.stale_after_seconds())
    if swept:
        log.warning("jobs %s had lost their heartbeat; marked interrupted", swept)
    _clean_leftovers(ws)
    os.register_at_fork(after_in_child=_exit_with_consumer)  # Huey's forked workers and scheduler
    consumer = huey.create_consumer(workers=workers, worker_type=worker_type, flush_locks=True,
                                    periodic=False, check_worker_health=True, health_check_interval=2)
    # Made after Huey's blanket flush above, so that flush leaves the GPU lock alone: it is freed
    # here only when the job holding it is no longer alive.
    gpu = GpuLock(huey)
    others_alive = any(w != worker_id for w in jobs.live_workers(ws.db))
    stale = gpu.flush_if_stale(ws.db, others_alive)
    if stale is not None:
        log.warning("Found stale locks: %s (held for job %s, which is no longer running)", gpu.name, stale)
    elif gpu.holder() is not None:
        log.info("%s is held by job %s, which is still running; left in place", gpu.name, gpu.holder())
    runner.SHUTDOWN = consumer.stop_flag  # inherited by the forked workers
    log.info("worker %s: %d %s workers, GPU lock %s, heartbeat every %.1fs", worker_id, workers,
             worker_type, gpu.name, jobs.heartbeat_seconds())
    stop = threading.Event()
    threading.Thread(target=_keep_alive, args=(ws, worker_id, consumer, stop), daemon=True, name="keep-alive").start()
    if parent_pid:
        threading.Thread(target=_stop_when_orphaned, args=(parent_pid, stop), daemon=True, name="parent-watch").start()
    try:
        consumer.run()
    finally:
        stop.set()
        jobs.worker_stopped(ws.db, worker_id)
        log.info("consumer parent exiting; torch imported in the parent: %s", "torch" in sys.modules)


def _clean_leftovers(ws: Workspace) -> None:
    from studio.datasets.importer import clean_leftovers

    try:
        gone = clean_leftovers(ws)
    except Exception:  # noqa: BLE001 - tidying must not keep a worker from starting
        log.warning("could not clean the workspace's tmp folder", exc_info=True)
        return
    if gone:
        log.info("removed what killed jobs left in tmp/: %s", ", ".join(gone))


def _register(ws: Workspace, worker_id: str) -> None:
    jobs.register_worker(ws.db, worker_id, host=socket.gethostname(), pid=os.getpid(),
                         gpus=gpu_name().rsplit(":", 1)[1])


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
            jobs.beat_worker(ws.db, worker_id, pids, [f"{host}:{pid}" for pid in pids])
            swept = jobs.mark_stale_interrupted(ws.db, jobs.stale_after_seconds())
            if swept:
                log.warning("jobs %s lost their heartbeat; marked interrupted", swept)
        except Exception:  # noqa: BLE001 - retried next interval
            log.warning("worker heartbeat failed", exc_info=True)


def _stop_when_orphaned(parent_pid: int, stop: threading.Event) -> None:
    """Stop this consumer gracefully (as Ctrl-C does) once the server that started it is gone:
    re-parenting is how a SIGKILLed parent shows. Running jobs checkpoint and end 'interrupted'."""
    while not stop.wait(PARENT_POLL_SECONDS):
        if os.getppid() != parent_pid:
            log.error("the studio server (pid %d) that started this worker is gone; stopping", parent_pid)
            os.kill(os.getpid(), signal.SIGINT)
            return


def _exit_with_consumer() -> None:
    """In each process Huey forks: exit at once when the consumer is gone (SIGKILLed). An orphaned
    Huey worker would go on taking jobs that no live consumer accounts for; a job it was running
    stops being beaten and turns 'interrupted', to be resumed (as workers.child does)."""
    consumer_pid = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != consumer_pid:
                logging.getLogger(__name__).error("the consumer (pid %d) died; this worker process exits", consumer_pid)
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="consumer-watch").start()
