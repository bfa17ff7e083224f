"""Runs one job: claim its row, beat its heartbeat, call its handler, record how it ended.

A Huey delivery (workers.queue's `run_delivery`) checks the row and takes the GPU lock, then
`execute` claims the row and runs the handler: light kinds right here in the forked worker, heavy
kinds in a fresh interpreter (`python -m workers.child`) so that CUDA never initialises in a
forked process. The Huey workers are
daemonic processes, which multiprocessing does not let have children; a fresh interpreter is what
multiprocessing's 'spawn' start method makes anyway."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback

from studio import jobs
from studio.errors import DISK_FULL, UserError, is_disk_full
from studio.workspace import Workspace
from workers.faults import context_class
from workers.gpu_lock import JOB_GPUS_ENV
from workers.kinds import handler_for
from workers.heartbeat import Heartbeat

log = logging.getLogger(__name__)
CHILD_STOP_GRACE_SECONDS = 120.0  # after a forced stop, how long a child may take to checkpoint
CHILD_EXIT_GRACE_SECONDS = 15.0  # after its job has ended, how long a child may take to exit (torch teardown)
ENDED_POLL_SECONDS = 0.5          # how often a supervisor looks whether its child's job has ended

# The consumer's stop flag (set on SIGINT). run_consumer sets it before Huey forks its workers, so
# every worker inherits it; a running job sees it through JobContext.stop_requested().
SHUTDOWN = None


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# Running a claimed job ----------------------------------------------------------------------

def execute(ws: Workspace, job_id: int, worker_id: str | None = None, *, stop_event=None,
            isolate: bool = False, gpus: list[str] | None = None, on_ended=None) -> dict:
    """Run a queued job to its end. A job that is not queued (already claimed, cancelled,
    finished) is left alone: this is what makes a duplicate delivery harmless. `on_ended()` is
    called as soon as an isolated job's row has ended, while its process may still be exiting."""
    db = ws.db
    token = jobs.claim(db, job_id, worker_id or worker_identity())
    if token is None:
        return jobs.get_job(db, job_id)
    if isolate:
        _supervise_child(ws, job_id, token, stop_event, gpus, on_ended)
    else:
        run_claimed(ws, job_id, token, stop_event=stop_event)
    return jobs.get_job(db, job_id)


def run_claimed(ws: Workspace, job_id: int, token: str, *, stop_event=None) -> None:
    """Call the handler of a job this process owns (by `token`) and record how it ended."""
    db = ws.db
    job = jobs.get_job(db, job_id)
    ctx = context_class()(db=db, job_id=job_id, run_token=token, params=job["params"], workspace=ws,
                          stop_event=stop_event)
    beat = Heartbeat(ctx.heartbeat, name=f"heartbeat-job-{job_id}")
    beat.start()
    try:
        result = handler_for(job["kind"])(ctx)
        ctx.flush_log()
        if stopped_early(result) and ctx.stop_requested():
            _finish_stopped(ctx, result)
        else:
            jobs.finish(db, job_id, token, "succeeded", result=result)
    except jobs.JobCancelled as exc:
        ctx.flush_log()
        _finish_stopped(ctx, getattr(ctx, "partial_result", None), reason=str(exc) or None)
    except UserError as exc:
        ctx.flush_log()
        jobs.finish(db, job_id, token, "failed", error=str(exc))
    except KeyboardInterrupt:  # Huey's hard stop reached the job mid-step: resumable, not failed
        ctx.flush_log()
        jobs.finish(db, job_id, token, "interrupted", error="stopped when its worker shut down; resume to continue")
        raise
    except BaseException as exc:  # noqa: BLE001 - any crash becomes a readable failure on the row
        ctx.flush_log()
        oom = is_oom(exc)
        first = (str(exc).strip().splitlines() or [""])[0]
        error = f"{type(exc).__name__}: {first}"[:2000]
        if oom:
            error = f"out of memory ({error}); try a smaller batch size or a smaller model"
        elif is_disk_full(exc, ws.root):
            error = DISK_FULL
        jobs.finish(db, job_id, token, "failed", error=error, error_detail=traceback.format_exc(),
                    failure_reason="oom" if oom else None)
        log.exception("job %s failed", job_id)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt / SystemExit still end the process, after the row is written
    finally:
        beat.stop()


def stopped_early(result) -> bool:
    """A handler that saved a checkpoint and returned on a stop request says so in its result
    (`{"status": "stopped", ...}`, as the training recipe reports); raising JobCancelled is the other way."""
    return isinstance(result, dict) and result.get("status") in ("stopped", "cancelled", "interrupted")


def _finish_stopped(ctx: jobs.JobContext, partial: dict | None, reason: str | None = None) -> None:
    """Cancelled when the user asked; interrupted (resumable) when the worker is shutting down
    (or, with a `reason`, when a part of the job died: a training rank)."""
    status = "cancelled" if jobs.cancel_requested(ctx.db, ctx.job_id) else "interrupted"
    jobs.finish(ctx.db, ctx.job_id, ctx.run_token, status, result=partial,
                error=None if status == "cancelled" else reason or "stopped when its worker shut down; resume to continue")


def is_oom(exc: BaseException) -> bool:
    """Host or GPU out of memory: MemoryError, torch.OutOfMemoryError, allocator messages."""
    text = str(exc).lower()
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or "out of memory" in text or "can't allocate memory" in text)


# Heavy kinds: a fresh interpreter per job -----------------------------------------------------

def _supervise_child(ws: Workspace, job_id: int, token: str, stop_event, gpus: list[str] | None = None,
                     on_ended=None) -> None:
    """Start the job in its own interpreter and watch it: beat the row's heartbeat while it lives,
    pass the consumer's shutdown on as SIGINT (finish the step, checkpoint, stop), and fail the row
    if the child dies without writing how it ended.

    Once the child has written how its job ended, `on_ended()` runs at once (the job's GPU locks go
    with the job, not with its process, whose exit can take seconds with torch loaded), and a child
    still alive CHILD_EXIT_GRACE_SECONDS later is killed: its torchrun and ranks die with it."""
    db = ws.db
    env = {**os.environ, JOB_GPUS_ENV: ",".join(gpus)} if gpus else None  # the GPUs whose locks it holds
    proc = subprocess.Popen([sys.executable, "-m", "workers.child", str(ws.root), str(job_id), token], env=env)
    jobs.append_log(db, job_id, token, [jobs.stamped(f"running in a spawned process (pid {proc.pid})")])
    beat = Heartbeat(lambda: jobs.touch(db, job_id, token), name=f"supervisor-job-{job_id}")
    beat.start()
    asked_to_stop, ended_at, next_look = False, None, time.monotonic() + ENDED_POLL_SECONDS
    try:
        while True:
            try:
                rc = proc.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                pass
            if not asked_to_stop and stop_event is not None and stop_event.is_set():
                proc.send_signal(signal.SIGINT)
                asked_to_stop = True
            now = time.monotonic()
            if ended_at is None and now >= next_look:
                next_look = now + ENDED_POLL_SECONDS
                if _run_over(db, job_id, token):
                    ended_at = now
                    _call_on_ended(job_id, on_ended)
            elif ended_at is not None and now - ended_at > CHILD_EXIT_GRACE_SECONDS:
                log.warning("job %s ended %.0fs ago but its process %s has not exited; killing it",
                            job_id, now - ended_at, proc.pid)
                proc.kill()
                ended_at = float("inf")  # killed once; the wait above collects it
    except BaseException:  # Huey's hard stop (SIGTERM -> KeyboardInterrupt): stop the child too
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=CHILD_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        _end_orphaned(db, job_id, token, rc, interrupted=True)
        raise
    finally:
        beat.stop()
    _end_orphaned(db, job_id, token, rc, interrupted=False)


def _run_over(db, job_id: int, token: str) -> bool:
    """Whether the run holding `token` has recorded how it ended (the row is no longer its own)."""
    try:
        with db.read() as s:
            row = s.get(jobs.Job, job_id)
            return row is None or row.run_token != token
    except Exception:  # noqa: BLE001 - a busy database: look again next time
        log.warning("job %s: could not read its row", job_id, exc_info=True)
        return False


def _call_on_ended(job_id: int, on_ended) -> None:
    if on_ended is None:
        return
    try:
        on_ended()
    except Exception:  # noqa: BLE001 - the delivery's own release runs again when the child is gone
        log.warning("job %s: releasing what it held failed", job_id, exc_info=True)


def _end_orphaned(db, job_id: int, token: str, rc: int, interrupted: bool) -> None:
    """The child is gone. If it did not record an ending, record one (a no-op when it did)."""
    if interrupted:
        jobs.finish(db, job_id, token, "interrupted", error="stopped when its worker shut down; resume to continue")
        return
    if rc < 0:
        name = signal.Signals(-rc).name
        hint = " (the kernel's out-of-memory killer sends SIGKILL)" if -rc == signal.SIGKILL else ""
        error, reason = f"the job's process was killed by {name}{hint}", "killed"
    else:
        error, reason = f"the job's process exited with status {rc} without reporting an ending", "crashed"
    if jobs.finish(db, job_id, token, "failed", error=error, failure_reason=reason):
        log.error("job %s: %s", job_id, error)
