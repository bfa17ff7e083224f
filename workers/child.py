"""The process a heavy job runs in: `python -m workers.child WORKSPACE JOB_ID RUN_TOKEN`.

A fresh interpreter (nothing inherited from the forking consumer, so CUDA may initialise here).
Before anything loads torch it leaves only the worker's GPU visible (BARK_STUDIO_GPU=N), so the
job's "cuda" is card N.
SIGINT asks the job to stop at its next step, save a checkpoint and end 'interrupted' (or
'cancelled' when the user asked). If the worker that started it dies, it exits at once: an
orphan must not keep beating the row's heartbeat, checkpoints are written atomically, and the row
turns 'interrupted' when the heartbeat stops, to be resumed from the last checkpoint."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from studio.workspace import Workspace


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:  # re-parented: the supervising worker died
            logging.getLogger(__name__).error("the worker supervising this job died; exiting")
            os._exit(3)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m workers.child WORKSPACE JOB_ID RUN_TOKEN", file=sys.stderr)
        return 2
    root, job_id, token = argv[0], int(argv[1]), argv[2]
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s job-{job_id} %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda _sig, _frame: stop.set())
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    from workers.gpu_lock import pin_job_gpu

    ws = Workspace(root)
    try:
        pin_job_gpu()
    except ValueError as exc:  # a worker started for a card this host does not have
        from studio import jobs

        jobs.finish(ws.db, job_id, token, "failed", error=str(exc))
        return 0
    from workers.runner import run_claimed

    run_claimed(ws, job_id, token, stop_event=stop)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
