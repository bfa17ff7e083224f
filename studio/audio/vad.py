"""Speech regions with silero-vad (its weights ship inside the package; no download)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from studio.audio.resample import VAD_RATE, resample


@dataclass(frozen=True)
class VadSettings:
    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    pad_ms: int = 30


@lru_cache(maxsize=1)
def _model():
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=False)


def speech_regions(audio: np.ndarray, sr: int, settings: VadSettings = VadSettings()) -> list[tuple[float, float]]:
    """[(start_s, end_s)] of speech in mono `audio`. Resamples to 16 kHz first (silero rejects 24 kHz)."""
    import torch
    from silero_vad import get_speech_timestamps

    a16 = resample(audio, sr, VAD_RATE)
    model = _model()
    model.reset_states()
    with torch.inference_mode():
        stamps = get_speech_timestamps(torch.from_numpy(a16), model, threshold=settings.threshold,
                                       sampling_rate=VAD_RATE, min_speech_duration_ms=settings.min_speech_ms,
                                       min_silence_duration_ms=settings.min_silence_ms,
                                       speech_pad_ms=settings.pad_ms)
    return [(s["start"] / VAD_RATE, s["end"] / VAD_RATE) for s in stamps]
