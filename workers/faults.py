"""A fault switch for proving the out-of-memory path end to end on machines without a GPU to
exhaust: with BARK_STUDIO_FAULT_OOM_AT_STEP=N, a job that reports step N raises the error its
stack would raise when memory runs out (torch.OutOfMemoryError when torch is loaded, else
MemoryError). Off unless the variable is set; the tests say plainly that they use it."""
from __future__ import annotations

import os
import sys

from studio.jobs import JobContext

OOM_AT_STEP_ENV = "BARK_STUDIO_FAULT_OOM_AT_STEP"


class OomAtStepContext(JobContext):
    def progress(self, fraction=None, *, step=None, **kwargs):
        super().progress(fraction, step=step, **kwargs)
        if step is not None and step >= int(os.environ[OOM_AT_STEP_ENV]):
            raise _oom_error(step)


def _oom_error(step: int) -> BaseException:
    message = f"out of memory at step {step} (injected by {OOM_AT_STEP_ENV})"
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "OutOfMemoryError"):
        return torch.OutOfMemoryError(f"CUDA {message}")
    return MemoryError(message)


def context_class() -> type[JobContext]:
    return OomAtStepContext if os.environ.get(OOM_AT_STEP_ENV) else JobContext
