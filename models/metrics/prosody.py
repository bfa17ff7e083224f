"""Prosody against a reference recording of the same text: F0 tracks aligned by DTW on MFCCs
(content, not pitch, decides which frames correspond), then on frames voiced in both: F0 RMSE
in cents and Pearson r of log-F0; and the voiced/unvoiced disagreement along the path."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.metrics.audio import MetricInputError, as_wave
from models.metrics.pitch import HOP, SR, track

MIN_SHARED_VOICED = 10  # frames voiced in both before r and RMSE mean anything


def _mfcc(wave: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.feature.mfcc(y=wave, sr=SR, n_mfcc=20, n_fft=1024, hop_length=HOP)  # (20, frames)


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(k, 2) frame index pairs aligning wave a to wave b, in time order."""
    import librosa

    ma, mb = _mfcc(a)[1:], _mfcc(b)[1:]  # c0 is loudness: leave it out of the alignment
    _, wp = librosa.sequence.dtw(X=ma, Y=mb, metric="euclidean")
    return wp[::-1]


def compare(generated, reference, method: str = "pyin") -> dict:
    """F0 RMSE (cents), log-F0 Pearson r and V/UV error of `generated` against `reference`."""
    label = lambda x, d: str(x) if isinstance(x, (str, Path)) else d  # noqa: E731
    a, b = as_wave(generated, SR), as_wave(reference, SR)
    for w, name in ((a, label(generated, "generated clip")), (b, label(reference, "reference clip"))):
        if len(w) < 0.2 * SR:
            raise MetricInputError(f"{name}: {len(w) / SR:.2f} s is too short for prosody (needs 0.2 s)")
    ta, tb = track(a, method), track(b, method)
    path = dtw_path(a, b)
    path = path[(path[:, 0] < len(ta.f0)) & (path[:, 1] < len(tb.f0))]
    fa, fb = ta.f0[path[:, 0]], tb.f0[path[:, 1]]  # (k,) aligned F0, NaN where unvoiced
    va, vb = np.isfinite(fa), np.isfinite(fb)
    both = va & vb
    out = {"f0_method": method, "aligned_frames": int(len(path)), "voiced_both": int(both.sum()),
           "vuv_error": float(np.mean(va != vb)) if len(path) else None,
           "f0_rmse_cents": None, "f0_corr": None,
           "mean_f0_generated": float(np.nanmean(ta.f0)) if ta.voiced.any() else None,
           "mean_f0_reference": float(np.nanmean(tb.f0)) if tb.voiced.any() else None}
    if both.sum() >= MIN_SHARED_VOICED:
        la, lb = np.log2(fa[both]), np.log2(fb[both])
        out["f0_rmse_cents"] = float(np.sqrt(np.mean((1200 * (la - lb)) ** 2)))
        if la.std() > 0 and lb.std() > 0:
            out["f0_corr"] = float(np.corrcoef(la, lb)[0, 1])
    return out
