"""Every job kind in one table: the function that runs it, and where it runs.

- `spawned`: the kind loads a model, so it runs in a fresh interpreter (`python -m workers.child`)
  pinned to the worker's GPU (BARK_STUDIO_GPU): CUDA never initialises in a forked process.
- `gpu_exclusive`: the kind also holds its host's GPU lock, so one runs per GPU (training fills
  the card); other kinds, spawned or light, run beside it.
Light kinds (neither) run in the forked Huey worker itself.

A handler is "module:function", imported only when a job of its kind runs (the web process
imports none of them). It takes a studio.jobs.JobContext and returns a JSON-able dict (or None)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from studio.errors import UserError


@dataclass(frozen=True)
class Kind:
    handler: str                 # "module:function"
    spawned: bool = False        # runs in its own interpreter, pinned to the worker's GPU
    gpu_exclusive: bool = False  # holds the host's GPU lock while it runs


KINDS: dict[str, Kind] = {
    "noop": Kind("workers.handlers.builtin:noop"),
    "import": Kind("workers.handlers.dataset:import_job"),
    "prepare": Kind("workers.handlers.dataset:prepare_job"),
    "transcribe": Kind("workers.handlers.dataset:transcribe_job", spawned=True),  # Whisper, on CUDA when present
    "tokenize": Kind("workers.handlers.tokens:tokenize_job", spawned=True),
    "train": Kind("workers.handlers.train:train_job", spawned=True, gpu_exclusive=True),
    "export_adapter": Kind("workers.handlers.train:export_adapter_job", spawned=True),
    "generate": Kind("workers.handlers.generate:generate_job", spawned=True),
    "voice": Kind("workers.handlers.generate:voice_job", spawned=True),
    "eval": Kind("workers.handlers.experiments:eval_job", spawned=True),
    "sweep": Kind("workers.handlers.experiments:sweep_job", spawned=True),
    "listening_stimuli": Kind("workers.handlers.listening:listening_stimuli", spawned=True),
    "download": Kind("workers.handlers.download:download_job", spawned=True),
    "tag_probe": Kind("workers.handlers.tag_probe:tag_probe_job", spawned=True),
}


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise UserError(f"unknown job kind {name!r}; known: {', '.join(sorted(KINDS))}") from None


def handler_for(name: str) -> Callable:
    module, _, func = kind_of(name).handler.partition(":")
    return getattr(importlib.import_module(module), func)


# An unknown kind (a row from an older version) runs light: its handler lookup then fails the job.
def runs_in_child(name: str) -> bool:
    return name in KINDS and KINDS[name].spawned


def needs_gpu_lock(name: str) -> bool:
    return name in KINDS and KINDS[name].gpu_exclusive
