"""Sample-rate conversion with soxr at HQ (not scipy's resample_poly, which rings and aliases)."""
from __future__ import annotations

import numpy as np

TARGET_RATE = 24_000  # Bark's EnCodec runs at 24 kHz
VAD_RATE = 16_000  # silero accepts 8 or 16 kHz only


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(T,) or (T, C) -> (T,) float32, channels averaged."""
    a = np.asarray(audio, dtype=np.float32)
    return a if a.ndim == 1 else a.mean(axis=1).astype(np.float32)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    import soxr

    a = np.ascontiguousarray(audio, dtype=np.float32)
    if rate_in == rate_out:
        return a
    return soxr.resample(a, rate_in, rate_out, quality="HQ").astype(np.float32)
