"""Which job kinds run where. Heavy kinds (they load a model) run in a spawned child process, so
CUDA never initialises in a process that was forked; GPU-exclusive kinds (training) also hold the
GPU lock of their host, so one runs per GPU while light kinds (prepare, transcribe, import) run
beside it."""
from __future__ import annotations

SPAWNED_KINDS = frozenset({"train", "export_adapter", "tokenize", "generate", "voice", "sweep", "eval", "listening_stimuli",
                           "download", "tag_probe"})
GPU_EXCLUSIVE_KINDS = frozenset({"train"})


def runs_in_child(kind: str) -> bool:
    return kind in SPAWNED_KINDS


def needs_gpu_lock(kind: str) -> bool:
    return kind in GPU_EXCLUSIVE_KINDS
