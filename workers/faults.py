"""A fault switch for proving the out-of-memory path end to end on machines without a GPU to
exhaust: with BARK_STUDIO_FAULT_OOM_AT_STEP=N, a job that reports step N raises the error its
stack would raise when memory runs out (torch.OutOfMemoryError when torch is loaded, else
MemoryError). Off when the variable is unset, empty or 0; the tests say plainly that they use it."""
from __future__ import annotations

import os
import sys

from studio.jobs import JobContext

OOM_AT_STEP_ENV = "BARK_STUDIO_FAULT_OOM_AT_STEP"


def oom_step() -> int | None:
    """The step the switch fails at, or None when it is off (unset, empty or 0)."""
    value = os.environ.get(OOM_AT_STEP_ENV, "").strip()
    if not value:
        return None
    try:
        step = int(value)
    except ValueError:
        raise ValueError(f"{OOM_AT_STEP_ENV} must be a step number (0 or empty: off), not {value!r}") from None
    return step if step > 0 else None


class OomAtStepContext(JobContext):
    def progress(self, fraction=None, *, step=None, **kwargs):
        super().progress(fraction, step=step, **kwargs)
        at = oom_step()
        if step is not None and at is not None and step >= at:
            raise _oom_error(step)


def _oom_error(step: int) -> BaseException:
    message = f"out of memory at step {step} (injected by {OOM_AT_STEP_ENV})"
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "OutOfMemoryError"):
        return torch.OutOfMemoryError(f"CUDA {message}")
    return MemoryError(message)


def context_class() -> type[JobContext]:
    return JobContext if oom_step() is None else OomAtStepContext
