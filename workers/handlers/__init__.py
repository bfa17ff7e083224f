"""Job kinds and the function that runs each, as "module:function" so that a worker imports
only what the job at hand needs (and the web process imports none of it).

A handler takes a studio.jobs.JobContext and returns a JSON-able result dict (or None)."""
from __future__ import annotations

import importlib
from typing import Callable

from studio.errors import UserError

HANDLERS: dict[str, str] = {
    # kind: "module:function"
    "noop": "workers.handlers.builtin:noop",
    "tokenize": "workers.handlers.tokens:tokenize_job",
    "train": "workers.handlers.train:train_job",
    "export_adapter": "workers.handlers.train:export_adapter_job",
    "generate": "workers.handlers.generate:generate_job",
    "voice": "workers.handlers.generate:voice_job",
    "import": "workers.handlers.dataset:import_job",
    "prepare": "workers.handlers.dataset:prepare_job",
    "transcribe": "workers.handlers.dataset:transcribe_job",
    "eval": "workers.handlers.experiments:eval_job",
    "sweep": "workers.handlers.experiments:sweep_job",
    "listening_stimuli": "workers.handlers.listening:listening_stimuli",
    "download": "workers.handlers.download:download_job",
    "tag_probe": "workers.handlers.tag_probe:tag_probe_job",
}


def handler_for(kind: str) -> Callable:
    try:
        target = HANDLERS[kind]
    except KeyError:
        raise UserError(f"unknown job kind {kind!r}; known: {', '.join(sorted(HANDLERS))}") from None
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)
