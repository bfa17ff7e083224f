"""Loudness per ITU-R BS.1770 (pyloudnorm) with a sample-peak ceiling.

Normalising each segment to the target gives a level training set. With keep-dynamics (whisper or
ASMR sets whose quietness is the point), one gain for the whole dataset keeps clips' relative levels."""
from __future__ import annotations

import math

import numpy as np

DEFAULT_TARGET_LUFS = -20.0
DEFAULT_PEAK_DBFS = -1.0


def measure_lufs(audio: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS; -inf for silence or audio under 0.4 s (BS.1770 cannot gate it)."""
    import pyloudnorm

    a = np.asarray(audio, dtype=np.float64)
    if a.shape[0] < int(0.4 * sr) + 1:
        return -math.inf
    value = pyloudnorm.Meter(sr).integrated_loudness(a)
    return float(value) if np.isfinite(value) else -math.inf


def peak_dbfs(audio: np.ndarray) -> float:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def gain_to_target(lufs: float, peak_db: float, target_lufs: float, ceiling_dbfs: float) -> tuple[float, bool]:
    """The gain (dB) that brings `lufs` to the target without the peak passing the ceiling.
    Returns (gain_db, limited_by_peak)."""
    if not math.isfinite(lufs):
        return 0.0, False
    gain = target_lufs - lufs
    if math.isfinite(peak_db) and peak_db + gain > ceiling_dbfs:
        return ceiling_dbfs - peak_db, True
    return gain, False


def apply_gain(audio: np.ndarray, gain_db: float) -> np.ndarray:
    return (np.asarray(audio, dtype=np.float32) * np.float32(10 ** (gain_db / 20))).astype(np.float32)


def limit_peaks(audio: np.ndarray, sr: int, ceiling_dbfs: float = DEFAULT_PEAK_DBFS,
                window_ms: float = 5.0) -> np.ndarray:
    """A brickwall peak limiter with a smooth gain envelope: the per-sample gain a peak needs is
    spread by a minimum filter of width 2w, then smoothed by a mean filter of width w, which keeps
    every sample under the ceiling while the gain moves over ~w instead of jumping."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    a = np.asarray(audio, dtype=np.float32)
    ceiling = 10 ** (ceiling_dbfs / 20)
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(a), 1e-12))
    if need.min() >= 1.0:
        return a
    w = max(1, int(sr * window_ms / 1000))
    env = uniform_filter1d(minimum_filter1d(need, 2 * w + 1), w)
    out = a * env.astype(np.float32)
    return np.clip(out, -ceiling, ceiling).astype(np.float32)  # float rounding at the very edge


def normalize(audio: np.ndarray, sr: int, target_lufs: float = DEFAULT_TARGET_LUFS,
              ceiling_dbfs: float = DEFAULT_PEAK_DBFS) -> tuple[np.ndarray, dict]:
    """One clip to the target loudness with peaks held under the ceiling by the limiter.
    Limiting lowers loudness a little, so the gain is refined twice. Returns (audio, facts)."""
    lufs = measure_lufs(audio, sr)
    if not math.isfinite(lufs):
        return np.asarray(audio, dtype=np.float32), {"input_lufs": lufs, "gain_db": 0.0, "peak_limited": False}
    gain, out, limited = target_lufs - lufs, audio, False
    for _ in range(3):
        out = apply_gain(audio, gain)
        if peak_dbfs(out) > ceiling_dbfs:
            out, limited = limit_peaks(out, sr, ceiling_dbfs), True
        miss = target_lufs - measure_lufs(out, sr)
        if abs(miss) < 0.05:
            break
        gain += miss
    return out, {"input_lufs": lufs, "gain_db": gain, "peak_limited": limited}


def dataset_gain(clip_lufs: list[float], clip_peaks_db: list[float], target_lufs: float,
                 ceiling_dbfs: float) -> float:
    """Keep-dynamics: one gain for every clip, putting the median clip at the target unless the
    loudest peak in the set would pass the ceiling."""
    finite = [v for v in clip_lufs if math.isfinite(v)]
    if not finite:
        return 0.0
    gain = target_lufs - float(np.median(finite))
    peaks = [p for p in clip_peaks_db if math.isfinite(p)]
    if peaks and max(peaks) + gain > ceiling_dbfs:
        gain = ceiling_dbfs - max(peaks)
    return gain
