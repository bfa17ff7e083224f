"""How many ranks a training job may run here: the torch-free check the CLI and the Train tab make
at submit time (models.distributed holds the ranks themselves; the job's process checks again
with torch before it launches them).

BARK_STUDIO_DIST_BACKEND=gloo is for tests only: it lets N CPU ranks stand in for N GPUs on a
machine without them (the same code path, gloo instead of NCCL; slow, and nothing to train on)."""
from __future__ import annotations

import os
from pathlib import Path

from models.errors import ModelInputError

BACKEND_ENV = "BARK_STUDIO_DIST_BACKEND"  # "gloo" (CPU ranks, tests only); unset: NCCL on GPUs
BACKENDS = ("nccl", "gloo")


def backend() -> str:
    chosen = (os.environ.get(BACKEND_ENV) or "nccl").strip().lower()
    if chosen not in BACKENDS:
        raise ModelInputError(f"{BACKEND_ENV}={chosen!r}: use gloo (CPU ranks, for tests) or leave it unset")
    return chosen


def visible_gpu_count(env=os.environ) -> int:
    """NVIDIA GPUs this process may use, without loading torch: CUDA_VISIBLE_DEVICES when set,
    else the cards the driver lists under /proc."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        return 0 if not entries or entries[0].startswith("-") else len(entries)
    cards = Path("/proc/driver/nvidia/gpus")
    return len(list(cards.iterdir())) if cards.is_dir() else 0


def gpus_refusal(gpus: int | None, count: int | None = None, remote_workers: bool = False) -> str | None:
    """Why a job asking for `gpus` cannot run here, in one line, or None. `count` defaults to
    visible_gpu_count(); the gloo test mode accepts any number. With `remote_workers` (a studio on
    Redis, whose workers run on other hosts) only the number itself is checked here: the job's
    process refuses it on a host without enough GPUs."""
    if gpus is None or gpus == 1:
        return None
    if gpus < 1:
        return f"--gpus must be at least 1, got {gpus}"
    if backend() == "gloo" or remote_workers:
        return None
    have = visible_gpu_count() if count is None else count
    if have < gpus:
        return (f"--gpus {gpus}: this machine has {have} GPU(s); a training job spans the GPUs of one host "
                f"(ask for at most {have} or run it on a host with {gpus})" if have else
                f"--gpus {gpus}: this machine has no GPU; a training job over several ranks needs one per rank")
    return None


def check_gpus(gpus: int | None, count: int | None = None) -> None:
    """gpus_refusal as a ModelInputError (in the job's process, which counts with torch)."""
    refusal = gpus_refusal(gpus, count)
    if refusal:
        raise ModelInputError(refusal)
