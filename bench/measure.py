"""Timing and peak-memory measurement shared by the bench sections.

Peak memory on CPU is the process's resident set sampled every millisecond by a thread, minus
the resident set before the measured section started. run_all re-executes itself with a fixed
glibc mmap threshold so freed tensors go back to the OS at once (otherwise a later section
would reuse an earlier one's freed pages and read low). On CUDA it is max_memory_allocated.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time
from contextlib import contextmanager

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


def release_memory() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class PeakMemory:
    """`with PeakMemory(device) as pm: ...` then pm.peak_bytes (above the level at entry)."""

    def __init__(self, device: str = "cpu", interval_s: float = 0.001):
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.peak_bytes = 0

    def __enter__(self):
        release_memory()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = rss_bytes()
        self._peak = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_bytes())
            time.sleep(self.interval_s)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._base
            return False
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self._peak, rss_bytes()) - self._base
        return False


class Timer:
    def __init__(self, device: str = "cpu"):
        self.device = torch.device(device)
        self.seconds = 0.0

    def __enter__(self):
        self._sync()
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._sync()
        self.seconds = time.perf_counter() - self._t
        return False

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def machine() -> str:
    """One line naming the hardware a figure was measured on."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    model = "CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads, no GPU"


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def matmul_peak_flops(device: str = "cpu", precision: str = "bf16") -> float:
    """The device's measured dense matmul rate (FLOP/s) in `precision`: the denominator of MFU.
    Large square products on a GPU; on a CPU the shapes of a bark-small MLP layer over 4096 positions."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    m, k, n = (8192, 8192, 8192) if torch.device(device).type == "cuda" else (4096, 768, 3072)
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5):  # the best of five: the rate the hardware reaches, not a noisy average
        with Timer(device) as t:
            a @ b
        best = min(best, t.seconds)
    return 2 * m * k * n / best

