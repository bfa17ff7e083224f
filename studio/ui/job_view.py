"""How a job row reads in the studio (shared by the Jobs, Train and Generate tabs): a summary
line, the error with its traceback kept for a folded-away accordion, and metric series as tables
for gr.LinePlot. Pure functions of the row; the tabs poll them with gr.Timer."""
from __future__ import annotations

import pandas as pd

from studio import jobs
from studio.db import Database

LOG_TAIL_LINES = 20  # what a running job's view shows of its log (the Jobs tab has the whole tail)
LOSS_SERIES = {"loss": "train loss", "val_loss": "validation loss"}


def summary_md(job: dict | None) -> str:
    if not job:
        return "_No job selected._"
    parts = [f"**Job {job['id']}** · {job['kind']} · **{job['status']}**"]
    live = job["status"] in ("queued", "running")
    # Percent and step belong to a job still going (they are of its current phase, named in its
    # message); an ended job says how it ended, never "failed · 100%" or a stale "step 2/4".
    if live:
        parts.append(f"{100 * (job.get('progress') or 0):.0f}%")
        if job.get("step") is not None and job.get("total_steps"):
            parts.append(f"step {job['step']}/{job['total_steps']}")
        if job.get("epoch") is not None:
            parts.append(f"epoch {job['epoch']:.2f}")
    if job["status"] == "running" and job.get("eta_seconds"):
        parts.append(f"about {_duration(job['eta_seconds'])} left")
    lines = [" · ".join(parts)]
    if job.get("no_worker"):
        lines.append(f"⚠️ **{job['no_worker']}**")
    if live and job.get("message"):
        lines.append(f"_{job['message']}_")
    elif job["status"] == "succeeded":  # its last running message ("outputs 3-4 of 4") is stale now
        took = _elapsed(job)
        lines.append(f"_finished{f' in {took}' if took else ''}_")
    elif job.get("message"):
        lines.append(f"_stopped while {job['message']}_")
    if job.get("error"):
        reason = f" ({job['failure_reason']})" if job.get("failure_reason") else ""
        lines.append(f"**Error{reason}:** {job['error']}")
    if job["status"] == "running" and (tail := log_tail(job)):  # the tabs' timers refresh it while it runs
        lines.append(f"Log (last {LOG_TAIL_LINES} lines):\n````\n{tail}\n````")
    return "\n\n".join(lines)


def log_tail(job: dict | None, n: int = LOG_TAIL_LINES) -> str:
    """The last n lines of the job's log; a line's own backtick fence cannot close the block."""
    lines = ((job or {}).get("log_tail") or "").rstrip("\n").splitlines()[-n:]
    return "\n".join(line.replace("````", "` ` ` `") for line in lines)


def traceback_text(job: dict | None) -> str:
    return (job or {}).get("error_detail") or ""


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def _elapsed(job: dict) -> str:
    from datetime import datetime

    try:
        seconds = (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return ""
    return _duration(seconds) if seconds >= 0 else ""


def load_job(db: Database, job_id) -> dict | None:
    """The row, plus `no_worker`: a warning while it is queued and no live worker can take it."""
    try:
        job = jobs.get_job(db, int(job_id)) if job_id not in (None, "") else None
    except (jobs.NotFound, ValueError):
        return None
    if job and job["status"] == "queued":
        from workers.dispatch import no_worker_warning

        job["no_worker"] = no_worker_warning(db, job)
    return job


def loss_frame(series: dict[str, list[tuple[int, float]]]) -> pd.DataFrame:
    """Train and validation loss as one long table; `series` colours them apart."""
    rows = [(step, value, label) for name, label in LOSS_SERIES.items() for step, value in series.get(name, [])]
    return _typed(pd.DataFrame(rows, columns=["step", "loss", "series"]), "loss")


def _typed(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """Numeric step and value columns, whatever the rows were (none, None, strings): an object
    column, even an empty one, made the plot's y-axis categorical and hid the line."""
    frame["step"] = pd.to_numeric(frame["step"], errors="coerce")
    frame[value] = pd.to_numeric(frame[value], errors="coerce").astype("float64")
    frame = frame.dropna(subset=["step", value])
    frame["step"] = frame["step"].astype("int64")
    if "series" in frame:
        frame["series"] = frame["series"].astype(str)
    return frame.reset_index(drop=True)


def latest_losses_md(series: dict[str, list[tuple[int, float]]]) -> str:
    """One line under the loss plot: the newest train and validation loss and how many points."""
    parts = []
    for name, label in LOSS_SERIES.items():
        points = series.get(name, [])
        if points:
            step, value = points[-1]
            parts.append(f"{label} {value:.4f} at step {step} ({len(points)} points)")
    return " · ".join(parts) or "_no loss recorded yet_"


def metric_frame(series: dict[str, list[tuple[int, float]]], name: str) -> pd.DataFrame:
    return _typed(pd.DataFrame(series.get(name, []), columns=["step", name]), name)


def curves(db: Database, job_id) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """(losses, lr, grad_norm, latest-loss line) of a job; empty tables when there is none yet."""
    series = jobs.metric_series(db, int(job_id)) if job_id not in (None, "") else {}
    return loss_frame(series), metric_frame(series, "lr"), metric_frame(series, "grad_norm"), latest_losses_md(series)


# The job picker: a tab's running and recent jobs, to follow one -----------------------------------

LIVE = ("queued", "running")


def job_label(job: dict, now=None) -> str:
    """`#12 train · my-lora · running · 3 min ago`: what a user recognises a job by."""
    params = job.get("params") or {}
    name = next((str(params[k]) for k in ("name", "dataset", "label", "text") if params.get(k)), "")
    if not name and params.get("texts"):  # a generate job of several sentences
        name = str(params["texts"][0])
    name = name if len(name) <= 32 else name[:31] + "…"
    # no progress here: the list is read when a job starts or ends, so a percent would go stale
    return " · ".join(x for x in (f"#{job['id']} {job['kind']}", name, job["status"], _age(job.get("created_at"), now))
                      if x)


def _age(created_at: str | None, now=None) -> str:
    from datetime import datetime

    if not created_at:
        return ""
    now = now or datetime.utcnow()
    seconds = max(0.0, (now - datetime.fromisoformat(created_at.rstrip("Z"))).total_seconds())
    return "just now" if seconds < 60 else f"{_duration(seconds)} ago"


def recent_jobs(db: Database, kinds: tuple[str, ...], limit: int = 20) -> list[dict]:
    """The newest jobs of these kinds (all kinds when empty), newest first."""
    rows = [j for kind in (kinds or (None,)) for j in jobs.list_jobs(db, kind=kind, limit=limit)]
    return sorted(rows, key=lambda j: -j["id"])[:limit]


def job_choices(db: Database, kinds: tuple[str, ...], limit: int = 20) -> list[tuple[str, int]]:
    return [(job_label(j), j["id"]) for j in recent_jobs(db, kinds, limit)]


def jobs_signature(db: Database, kinds: tuple[str, ...]) -> list:
    """What the picker's labels depend on, minus progress and age: it changes when a job starts or ends."""
    return [[j["id"], j["status"]] for j in recent_jobs(db, kinds)]
