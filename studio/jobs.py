"""Jobs: a database row per job is the truth. The UI and the CLI read the row, never the queue.

A job moves queued -> running -> succeeded | failed | cancelled | interrupted. A runner claims a
queued job atomically (so two runs of one job never execute at once), beats its heartbeat while it
works, and finishes it. Handlers see a JobContext: progress, metrics, log lines, a stop flag."""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from studio.db import Base, Database, utcnow
from studio.errors import NotFound, UserError

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
FINISHED = ("succeeded", "failed", "cancelled")
ENDED = FINISHED + ("interrupted",)  # every status a run can end in; interrupted ones resume
LOG_TAIL_CHARS = 20_000
HEARTBEAT_ENV = "BARK_STUDIO_HEARTBEAT_S"
DEFAULT_HEARTBEAT_S = 5.0


def heartbeat_seconds() -> float:
    """How often a running job (and a worker) beats; tests shorten it through the environment."""
    return max(0.2, float(os.environ.get(HEARTBEAT_ENV) or DEFAULT_HEARTBEAT_S))


def stale_after_seconds() -> float:
    """A running job silent this long is interrupted. Sweeps run every half interval, so a job
    whose heartbeat stops is marked within three intervals of its last beat."""
    return 2.5 * heartbeat_seconds()


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    step: Mapped[int | None] = mapped_column(Integer)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    epoch: Mapped[float | None] = mapped_column(Float)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(String(500), default="")  # what it is doing now
    log_tail: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)  # one readable line
    error_detail: Mapped[str | None] = mapped_column(Text)  # the traceback, folded away in the UI
    failure_reason: Mapped[str | None] = mapped_column(String(40))  # e.g. "oom"
    result: Mapped[dict | None] = mapped_column(JSON)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_token: Mapped[str | None] = mapped_column(String(32))  # the execution that owns the row now
    worker_id: Mapped[str | None] = mapped_column(String(120))
    queue_task_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class JobMetric(Base):
    """One point of a job's metric series (loss, val_loss, lr, grad_norm, tokens_per_s...)."""

    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_job_name_step", "job_id", "name", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(40))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WorkerRow(Base):
    """A running consumer; its heartbeat tells `--wait` whether a worker will pick a job up."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime)
    gpus: Mapped[str | None] = mapped_column(String(200))  # the GPU indices it drives, e.g. "0"
    processes: Mapped[str | None] = mapped_column(String(2000))  # pids of its job processes, "412,413"


class JobCancelled(Exception):
    """Raised inside a handler when the user asked the job to stop."""


# Rows -> plain dicts (what the CLI prints with --json and the UI renders) ------------------------

def job_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id, "kind": job.kind, "status": job.status, "params": job.params,
        "priority": job.priority, "progress": job.progress, "step": job.step,
        "total_steps": job.total_steps, "epoch": job.epoch, "eta_seconds": job.eta_seconds,
        "message": job.message, "error": job.error, "failure_reason": job.failure_reason,
        "result": job.result, "attempts": job.attempts, "worker_id": job.worker_id,
        "cancel_requested": job.cancel_requested,
        "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
        "heartbeat_at": _iso(job.heartbeat_at), "finished_at": _iso(job.finished_at),
    }


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") + "Z" if t else None


# Queries and transitions ---------------------------------------------------------------------

def create_job(db: Database, kind: str, params: dict | None = None, priority: int = 0) -> int:
    with db.write() as s:
        job = Job(kind=kind, params=params or {}, priority=priority, status="queued")
        s.add(job)
        s.flush()
        return job.id


def get_job(db: Database, job_id: int) -> dict[str, Any]:
    sweep_stale(db)
    with db.read() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        out = job_dict(job)
        out["log_tail"] = job.log_tail
        out["error_detail"] = job.error_detail
        return out


def list_jobs(db: Database, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[dict]:
    sweep_stale(db)
    with db.read() as s:
        q = select(Job).order_by(Job.id.desc()).limit(limit)
        if status:
            q = q.where(Job.status == status)
        if kind:
            q = q.where(Job.kind == kind)
        return [job_dict(j) for j in s.scalars(q)]


def metric_series(db: Database, job_id: int) -> dict[str, list[tuple[int, float]]]:
    with db.read() as s:
        rows = s.execute(select(JobMetric.name, JobMetric.step, JobMetric.value)
                         .where(JobMetric.job_id == job_id).order_by(JobMetric.step, JobMetric.id))
        series: dict[str, list[tuple[int, float]]] = {}
        for name, step, value in rows:
            series.setdefault(name, []).append((step, value))
        return series


def claim(db: Database, job_id: int, worker_id: str) -> str | None:
    """Atomically move a queued job to running; returns the run token, or None if it is not queued."""
    token = secrets.token_hex(8)
    now = utcnow()
    with db.write() as s:
        res = s.execute(update(Job).where(Job.id == job_id, Job.status == "queued")
                        .values(status="running", run_token=token, worker_id=worker_id, started_at=now,
                                heartbeat_at=now, attempts=Job.attempts + 1, error=None, message="starting",
                                error_detail=None, failure_reason=None))
        return token if res.rowcount == 1 else None


def request_cancel(db: Database, job_id: int) -> str:
    """Queued jobs are cancelled at once; running ones stop at their next step. Returns the status."""
    with db.write() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        if job.status == "queued":
            job.status, job.finished_at = "cancelled", utcnow()
        elif job.status == "running":
            job.cancel_requested = True
        return job.status


def requeue(db: Database, job_id: int, params_update: dict | None = None) -> dict:
    """Put a stopped job back in the queue (resume). Only cancelled, failed or interrupted jobs."""
    with db.write() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        if job.status not in ("cancelled", "failed", "interrupted"):
            raise UserError(f"job {job_id} is {job.status}; only cancelled, failed or interrupted jobs resume")
        job.status, job.cancel_requested, job.finished_at, job.run_token = "queued", False, None, None
        if params_update:
            job.params = {**job.params, **params_update}
        return job_dict(job)


def queue_task_id(db: Database, job_id: int) -> str | None:
    """The id of the job's latest queue delivery (None for an unknown job or one never enqueued)."""
    with db.read() as s:
        return s.scalar(select(Job.queue_task_id).where(Job.id == job_id))


def set_queue_task(db: Database, job_id: int, task_id: str) -> None:
    """Record the queue delivery just made for a job (cancelling a queued job revokes it)."""
    with db.write() as s:
        s.execute(update(Job).where(Job.id == job_id).values(queue_task_id=task_id))


def wait_in_queue(db: Database, job_id: int, task_id: str, message: str) -> None:
    """A job that could not start yet (its GPU is busy) got a later delivery; it stays queued, saying why."""
    with db.write() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.status == "queued").values(
            queue_task_id=task_id, message=message))


def fail_unstarted(db: Database, job_id: int, error: str, detail: str) -> None:
    """A queued job that could not even be started fails visibly (a no-op once it left the queue)."""
    with db.write() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.status == "queued").values(
            status="failed", error=error[:2000], error_detail=detail, finished_at=utcnow()))


def cancel_requested(db: Database, job_id: int) -> bool:
    with db.read() as s:
        return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def touch(db: Database, job_id: int, run_token: str) -> None:
    """Beat the heartbeat of the run holding `run_token` (a no-op for a run that lost its claim)."""
    with db.write() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.run_token == run_token).values(heartbeat_at=utcnow()))


def stamped(line: str) -> str:
    return f"[{utcnow():%H:%M:%S}] {line}"


def append_log(db: Database, job_id: int, run_token: str, lines: list[str]) -> None:
    """Add lines to the log tail of the run holding `run_token`; the tail keeps its last LOG_TAIL_CHARS."""
    with db.write() as s:
        job = s.get(Job, job_id)
        if job is not None and job.run_token == run_token:
            job.log_tail = (job.log_tail + "\n".join(lines) + "\n")[-LOG_TAIL_CHARS:]


# Workers ------------------------------------------------------------------------------------

def register_worker(db: Database, worker_id: str, *, host: str, pid: int, gpus: str) -> None:
    now = utcnow()
    with db.write() as s:
        s.merge(WorkerRow(id=worker_id, host=host, pid=pid, gpus=gpus, started_at=now, heartbeat_at=now,
                          stopped_at=None))


def beat_worker(db: Database, worker_id: str, processes: list[int], job_workers: list[str]) -> None:
    """A consumer's heartbeat, with its live worker processes, and the heartbeat of every job running
    in one of them (`job_workers`: their worker ids)."""
    with db.write() as s:
        now = utcnow()
        row = s.get(WorkerRow, worker_id)
        if row is not None:
            row.heartbeat_at = now
            row.processes = ",".join(map(str, processes))
        if job_workers:
            s.execute(update(Job).where(Job.status == "running", Job.worker_id.in_(job_workers))
                      .values(heartbeat_at=now))


def worker_stopped(db: Database, worker_id: str) -> None:
    with db.write() as s:
        row = s.get(WorkerRow, worker_id)
        if row is not None:
            row.stopped_at = utcnow()


def sweep_stale(db: Database) -> list[int]:
    """Reading jobs marks silent ones interrupted, so a row never says 'running' forever even when
    no worker is left to sweep. A cheap read first; a write only when something is stale."""
    cutoff = utcnow() - timedelta(seconds=stale_after_seconds())
    with db.read() as s:
        stale = s.scalar(select(Job.id).where(Job.status == "running", Job.heartbeat_at < cutoff).limit(1))
    return mark_stale_interrupted(db, stale_after_seconds()) if stale is not None else []


def mark_stale_interrupted(db: Database, stale_after: float) -> list[int]:
    """Running jobs whose heartbeat stopped more than `stale_after` seconds ago become interrupted."""
    cutoff = utcnow() - timedelta(seconds=stale_after)
    with db.write() as s:
        ids = list(s.scalars(select(Job.id).where(Job.status == "running", Job.heartbeat_at < cutoff)))
        if ids:
            s.execute(update(Job).where(Job.id.in_(ids)).values(
                status="interrupted", run_token=None, finished_at=utcnow(),
                error="the worker running this job stopped answering (heartbeat lost); resume to continue"))
        return ids


def live_workers(db: Database, within: float | None = None) -> list[str]:
    """Consumers that beat recently (within three heartbeat intervals unless told otherwise)."""
    cutoff = utcnow() - timedelta(seconds=within if within is not None else 3 * heartbeat_seconds())
    with db.read() as s:
        return list(s.scalars(select(WorkerRow.id).where(WorkerRow.heartbeat_at >= cutoff,
                                                          WorkerRow.stopped_at.is_(None))))


# What a handler sees ------------------------------------------------------------------------

@dataclass
class JobContext:
    """A running job's channel back to its row. Every write is checked against the run token, so
    an execution that lost its claim (interrupted, then resumed elsewhere) cannot overwrite it."""

    db: Database
    job_id: int
    run_token: str
    params: dict
    workspace: Any = None  # studio.workspace.Workspace
    stop_event: Any = None  # set when the worker shuts down (SIGINT): stop at the next step, resumable
    _started: float = field(default_factory=time.monotonic)
    _pending_log: list[str] = field(default_factory=list)
    _phase: str | None = None  # what the job is doing now (tokenizing, loading model, training, ...)
    _total: int | None = None  # the step count of the current phase
    _done: float = 0.0  # the fraction of the current phase reached so far

    def progress(self, fraction: float | None = None, *, step: int | None = None, total: int | None = None,
                 epoch: float | None = None, message: str | None = None, eta_seconds: float | None = None,
                 phase: str | None = None) -> None:
        """Progress moves forward only within a phase. A new phase (a new `phase` name, or a new step
        total) starts again from its own 0, names itself in the message, and times its own ETA."""
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if (phase is not None and phase != self._phase) or (total is not None and total != self._total):
            self._phase = phase if phase is not None else self._phase
            self._total, self._done, self._started = total, 0.0, time.monotonic()
            values.update(progress=0.0, step=None, total_steps=total, eta_seconds=None)
        if step is not None:
            values["step"] = step
        if total is not None:
            values["total_steps"] = total
        if fraction is None and step is not None and total:
            fraction = step / total
        if fraction is not None:
            self._done = max(self._done, min(1.0, float(fraction)))
            values["progress"] = self._done
            if eta_seconds is None and self._done > 0:
                eta_seconds = (time.monotonic() - self._started) * (1 - self._done) / self._done
        if eta_seconds is not None:
            values["eta_seconds"] = eta_seconds
        if epoch is not None:
            values["epoch"] = epoch
        if message is not None or phase is not None:
            text = message or ""
            if self._phase and not text.startswith(self._phase):
                text = f"{self._phase}: {text}" if text else self._phase
            values["message"] = text[:500]
        self._update(values)

    def log(self, line: str) -> None:
        self._pending_log.append(stamped(line))
        self.flush_log()

    def flush_log(self) -> None:
        if not self._pending_log:
            return
        lines, self._pending_log = self._pending_log, []
        append_log(self.db, self.job_id, self.run_token, lines)

    def metric(self, name: str, step: int, value: float) -> None:
        self.metrics(step, {name: value})

    def metrics(self, step: int, values: dict[str, float]) -> None:
        with self.db.write() as s:
            for name, value in values.items():
                if value is not None:
                    s.add(JobMetric(job_id=self.job_id, name=name, step=int(step), value=float(value)))

    def heartbeat(self) -> bool:
        """Beat the heartbeat; True when the user asked the job to stop."""
        self._update({"heartbeat_at": utcnow()})
        return self.stop_requested()

    def shutting_down(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def stop_requested(self) -> bool:
        """True when the user cancelled, the worker is shutting down, or this run lost its claim."""
        if self.shutting_down():
            return True
        with self.db.read() as s:
            job = s.get(Job, self.job_id)
            return job is None or job.cancel_requested or job.run_token != self.run_token

    def check_cancelled(self) -> None:
        if self.stop_requested():
            raise JobCancelled()

    def _update(self, values: dict) -> None:
        with self.db.write() as s:
            s.execute(update(Job).where(Job.id == self.job_id, Job.run_token == self.run_token).values(**values))


def finish(db: Database, job_id: int, run_token: str, status: str, *, result: dict | None = None,
           error: str | None = None, error_detail: str | None = None, failure_reason: str | None = None) -> bool:
    assert status in ENDED, status
    with db.write() as s:
        res = s.execute(update(Job).where(Job.id == job_id, Job.run_token == run_token).values(
            status=status, result=result, error=error, error_detail=error_detail, failure_reason=failure_reason,
            finished_at=utcnow(), heartbeat_at=utcnow(), run_token=None, cancel_requested=False,
            progress=1.0 if status == "succeeded" else Job.progress,
            step=Job.total_steps if status == "succeeded" else Job.step))
        return res.rowcount == 1
