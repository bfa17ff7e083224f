"""Helpers for the queue tests: real jobs to put on the queue, and ways to watch them."""
from __future__ import annotations

import time
from pathlib import Path

from studio import jobs
from workers.dispatch import submit

HEARTBEAT_S = 1.0


def wait_status(ws, job_id: int, status: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get_job(ws.db, job_id)  # reading sweeps silent jobs, as the UI and CLI do
        if job["status"] == status:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is {jobs.get_job(ws.db, job_id)['status']}, not {status}, after {timeout}s")


def wait_step(ws, job_id: int, step: int, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get_job(ws.db, job_id)
        if job["status"] not in ("queued", "running"):
            raise AssertionError(f"job {job_id} ended {job['status']} before step {step}: {job['error']}\n{job['log_tail']}")
        if (job["step"] or 0) >= step:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach step {step} in {timeout}s")


def maps_torch(pid: int) -> bool:
    """Whether a live process has torch's shared library mapped (it imported torch)."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def prepare_job(ws, speech_dir: Path) -> int:
    """A light job: import the real speech fixtures into a dataset, then queue its preparation."""
    from studio.datasets.importer import import_paths
    from studio.datasets.store import create_dataset

    create_dataset(ws.db, "beside")
    import_paths(ws, "beside", sorted(str(p) for p in speech_dir.glob("*.wav")))
    return submit(ws, "prepare", {"dataset": "beside"})["id"]
