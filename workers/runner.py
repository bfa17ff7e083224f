"""Runs one job: claim its row, beat its heartbeat, call its handler, record how it ended."""
from __future__ import annotations

import logging
import os
import socket
import threading
import traceback

from studio import jobs
from studio.errors import UserError
from studio.workspace import Workspace
from workers.handlers import handler_for

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 5.0


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def execute(ws: Workspace, job_id: int, worker_id: str | None = None) -> dict:
    """Run a queued job to its end in this process. A job that is not queued (already claimed,
    cancelled, finished) is left alone: this is what makes a duplicate delivery harmless."""
    db = ws.db
    token = jobs.claim(db, job_id, worker_id or worker_identity())
    if token is None:
        return jobs.get_job(db, job_id)
    job = jobs.get_job(db, job_id)
    ctx = jobs.JobContext(db=db, job_id=job_id, run_token=token, params=job["params"], workspace=ws)
    beat = _Heartbeat(ctx)
    beat.start()
    try:
        result = handler_for(job["kind"])(ctx)
        ctx.flush_log()
        jobs.finish(db, job_id, token, "succeeded", result=result)
    except jobs.JobCancelled:
        ctx.flush_log()
        jobs.finish(db, job_id, token, "cancelled", result=getattr(ctx, "partial_result", None))
    except UserError as exc:
        ctx.flush_log()
        jobs.finish(db, job_id, token, "failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - any crash becomes a readable failure on the row
        ctx.flush_log()
        reason = "oom" if _is_oom(exc) else None
        jobs.finish(db, job_id, token, "failed", error=f"{type(exc).__name__}: {exc}"[:2000],
                    error_detail=traceback.format_exc(), failure_reason=reason)
        log.exception("job %s failed", job_id)
    finally:
        beat.stop()
    return jobs.get_job(db, job_id)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


class _Heartbeat(threading.Thread):
    """Keeps the row's heartbeat fresh while a handler works between progress reports."""

    def __init__(self, ctx: jobs.JobContext, every: float = HEARTBEAT_SECONDS):
        super().__init__(daemon=True, name=f"heartbeat-{ctx.job_id}")
        self.ctx, self.every, self._stop_event = ctx, every, threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            try:
                self.ctx.heartbeat()
            except Exception:  # noqa: BLE001 - a missed beat is retried next interval
                log.warning("heartbeat for job %s failed", self.ctx.job_id, exc_info=True)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self.every + 1)
