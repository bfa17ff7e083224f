"""Helpers for the queue tests: real jobs to put on the queue, and ways to watch them."""
from __future__ import annotations

import time
from pathlib import Path

from studio import jobs
from workers.dispatch import submit

HEARTBEAT_S = 4.0  # shorter is too tight on a loaded 2-core box: a starved job can miss beats and lose its GPU lock


def wait_status(ws, job_id: int, status: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get_job(ws.db, job_id)  # reading sweeps silent jobs, as the UI and CLI do
        if job["status"] == status:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is {jobs.get_job(ws.db, job_id)['status']}, not {status}, after {timeout}s")


def wait_step(ws, job_id: int, step: int, timeout: float = 600) -> dict:
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


def train_params(steps: int, **extra) -> dict:
    """A real training job on the tiny preset, small enough for a 2-core test machine: one stage,
    one example per step, a checkpoint every other step."""
    return {"dataset": "voice", "model": "tiny", "stages": "semantic", "preset": "quick", "max_steps": steps,
            "save_every": 2, "eval_every": 2, "batch_size": 1, "grad_accum": 1, "precision": "fp32", **extra}


def train_job(ws, steps: int, **extra) -> int:
    return submit(ws, "train", train_params(steps, **extra))["id"]


def checkpoints_of(ws, job_id: int, rows_too: bool = False) -> list[int]:
    """Steps of the checkpoints a training job has on disk; with rows_too (after an orderly stop,
    not a kill) its checkpoint rows must list the same ones."""
    from studio import training

    on_disk = sorted(int(p.name.split("-")[1]) for p in training.run_dir(ws, job_id).glob("step-*"))
    if rows_too:
        rows = sorted(c["step"] for c in training.list_checkpoints(ws, job_id))
        assert rows == on_disk, (rows, on_disk)
    return on_disk


def build_template(root: Path, speech_dir: Path) -> Path:
    """A workspace with a prepared, transcribed and tokenized (tiny) dataset "voice" made from the real
    speech fixtures; tests copy it instead of preparing again."""
    from studio.datasets.importer import import_paths
    from studio.datasets.store import create_dataset, list_clips, set_transcript
    from studio.workspace import Workspace

    ws = Workspace.resolve(root)
    create_dataset(ws.db, "voice")
    import_paths(ws, "voice", [speech_dir / "awb_arctic_a0007.wav", speech_dir / "slt_arctic_a0009.wav"])
    texts = {"awb_arctic_a0007": "Author of the danger trail, Philip Steels, et cetera.",
             "slt_arctic_a0009": "It had fallen on them like a thunderbolt."}
    for clip in list_clips(ws.db, "voice"):
        set_transcript(ws.db, clip["id"], next(t for k, t in texts.items() if k in clip["name"]))
    for kind, params in (("prepare", {"dataset": "voice"}), ("tokenize", {"dataset": "voice", "model": "tiny"})):
        job = submit(ws, kind, params, wait=True)  # no worker: runs right here
        assert job["status"] == "succeeded", job
    ws.db.dispose()  # the last connection to close checkpoints the WAL into studio.db
    import sqlite3

    con = sqlite3.connect(ws.db_path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return ws.root


def copy_template(template: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(template, target, ignore=shutil.ignore_patterns("queue.db*", "*.log"))
    return target
