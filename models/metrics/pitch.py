"""F0 tracks at 16 kHz, 10 ms frames: librosa's pYIN (default, fast on CPU) or torchcrepe 'tiny'
(weights ship in the package). Unvoiced frames are NaN."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SR = 16_000
HOP = 160  # 10 ms
FMIN, FMAX = 50.0, 800.0
METHODS = ("pyin", "crepe")
CREPE_VOICED = 0.35  # periodicity above this counts as voiced (torchcrepe's tiny model reads low)


@dataclass
class F0Track:
    f0: np.ndarray  # (frames,) Hz, NaN where unvoiced
    periodicity: np.ndarray  # (frames,) 0..1, how periodic each frame is (harmonicity)
    hop_s: float = HOP / SR

    @property
    def voiced(self) -> np.ndarray:
        return np.isfinite(self.f0)


def track(wave: np.ndarray, method: str = "pyin") -> F0Track:
    """F0 of a mono 16 kHz wave."""
    if method == "pyin":
        import librosa

        f0, voiced, prob = librosa.pyin(wave, fmin=FMIN, fmax=FMAX, sr=SR, frame_length=1024, hop_length=HOP)
        f0 = np.where(voiced, f0, np.nan)
        return F0Track(f0.astype(np.float64), np.nan_to_num(prob).astype(np.float64))
    if method == "crepe":
        import torch
        import torchcrepe

        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]  # (1, n)
        f0, per = torchcrepe.predict(x, SR, hop_length=HOP, fmin=FMIN, fmax=FMAX, model="tiny",
                                     return_periodicity=True, batch_size=1024, device="cpu")
        per = torchcrepe.filter.median(per, 3)
        f0, per = f0[0].numpy().astype(np.float64), per[0].numpy().astype(np.float64)  # (frames,)
        f0 = np.where(per >= CREPE_VOICED, f0, np.nan)
        return F0Track(f0, per)
    raise ValueError(f"unknown F0 method {method!r}; choose one of {', '.join(METHODS)}")
