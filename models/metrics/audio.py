"""Reading audio for metrics: mono float32 at the rate a metric needs, with one clear error per file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.errors import ModelInputError


class MetricInputError(ModelInputError):
    """An input a metric cannot use; the message names the file and the reason."""


def load_mono(path: str | Path, sr: int) -> np.ndarray:
    """Decode `path`, average channels, resample (soxr HQ) to `sr`. Raises MetricInputError."""
    import soundfile as sf
    import soxr

    path = Path(path)
    if not path.is_file():
        raise MetricInputError(f"{path}: no such audio file")
    try:
        wave, file_sr = sf.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
    except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
        raise MetricInputError(f"{path}: not readable audio ({exc})") from None
    if wave.shape[0] == 0:
        raise MetricInputError(f"{path}: the file holds no samples")
    wave = wave.mean(axis=1)  # (n,)
    if not np.all(np.isfinite(wave)):
        raise MetricInputError(f"{path}: samples are not finite (NaN or inf)")
    if file_sr != sr:
        wave = soxr.resample(wave, file_sr, sr, quality="HQ").astype(np.float32)
    return wave


def as_wave(item, sr: int) -> np.ndarray:
    """A path is loaded; an array is taken as already mono at `sr`."""
    if isinstance(item, (str, Path)):
        return load_mono(item, sr)
    wave = np.asarray(item, dtype=np.float32).reshape(-1)
    if wave.size == 0:
        raise MetricInputError("an audio array holds no samples")
    return wave
