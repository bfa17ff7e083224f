"""The live workers of a studio, wherever they run: host, GPUs, the jobs they are running and
their last heartbeat (`bark-studio workers`, the Jobs tab). Read from the shared database only."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from studio import jobs
from studio.db import Database, utcnow


def live_workers(db: Database) -> list[dict]:
    """One dict per worker that beat within three heartbeats, oldest first."""
    cutoff = utcnow() - timedelta(seconds=3 * jobs.heartbeat_seconds())
    with db.read() as s:
        workers = list(s.scalars(select(jobs.WorkerRow).where(jobs.WorkerRow.heartbeat_at >= cutoff,
                                                              jobs.WorkerRow.stopped_at.is_(None))
                                 .order_by(jobs.WorkerRow.started_at)))
        running = list(s.scalars(select(jobs.Job).where(jobs.Job.status == "running").order_by(jobs.Job.id)))
        now = utcnow()
        out = []
        for w in workers:
            # a job's worker_id is host:pid of the process running it: the consumer, or one of its workers
            ids = {w.id} | {f"{w.host}:{pid}" for pid in (w.processes or "").split(",") if pid}
            current = [{"id": j.id, "kind": j.kind, "progress": j.progress} for j in running if j.worker_id in ids]
            out.append({"id": w.id, "host": w.host, "pid": w.pid,
                        "gpus": [g for g in (w.gpus or "").split(",") if g],
                        "jobs": current, "started_at": _iso(w.started_at),
                        "heartbeat_at": _iso(w.heartbeat_at),
                        "heartbeat_age_s": round((now - w.heartbeat_at).total_seconds(), 1)})
        return out


def _iso(t) -> str:
    return t.isoformat(timespec="seconds") + "Z"


def describe(worker: dict) -> str:
    """One line: host:pid, GPUs, current jobs, heartbeat age."""
    gpus = ",".join(worker["gpus"]) or "-"
    running = ", ".join(f"#{j['id']} {j['kind']}" for j in worker["jobs"]) or "idle"
    return f"{worker['id']:<28} gpu {gpus:<6} {running:<30} beat {worker['heartbeat_age_s']:.1f}s ago"
