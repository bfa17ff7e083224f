"""Quality measures without a clean reference: SNR of speech and clipping.

SNR comes from the VAD's own split of the recording: speech power is measured on the speech regions,
noise power on the non-speech around them (a recording's room tone between and around its
sentences), and SNR = (speech-region power - noise power) / noise power. WADA-SNR (Kim & Stern 2008)
assumes speech samples follow one Gamma shape; real voices do not (it reads the clean CMU ARCTIC
awb recording at ~15 dB, where its speech stands ~27 dB over its silence), so it is only a fallback
where a recording holds too little non-speech to measure its noise (clips trimmed tight to the
words, prepare without VAD, or noise the VAD takes for speech, like babble)."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

SNR_FLOOR_DB, SNR_CEIL_DB = -20.0, 100.0
DIGITAL_SILENCE = 2.0 ** -16  # under half a 16-bit step: zeros, or a resampler's ringing around them
NOISE_GUARD_S = 0.05  # the VAD pads speech by ~30 ms; a guard keeps breath and decay out of the noise
MIN_NOISE_S = 0.25  # less non-speech than this cannot be trusted as the noise floor: estimate blind
NOISE_CONTEXT_S = 30.0  # a segment's noise floor comes from the non-speech within this of it
QUIET_FRAME_S, QUIET_FRACTION = 0.032, 0.1  # the blind noise floor: the quietest tenth of 32 ms frames
BLIND_SPLIT_DB = 15.0  # blind: under this the quiet-frame estimate defers to WADA (see speech_snr)


@lru_cache(maxsize=1)
def _wada_table() -> tuple[np.ndarray, np.ndarray]:
    """G(SNR) = log E|z| - E log|z| for z = speech + noise, speech Gamma-distributed with shape 0.4
    (Kim & Stern 2008) and Gaussian noise, on a 1 dB grid from -20 to 100 dB. Computed once, seeded,
    by Monte Carlo (the paper's table was built the same way)."""
    rng = np.random.default_rng(1234)
    n = 200_000
    speech = rng.gamma(0.4, 1.0, n) * rng.choice([-1.0, 1.0], n)
    speech /= np.sqrt(np.mean(speech ** 2))
    noise = rng.standard_normal(n)
    grid = np.arange(SNR_FLOOR_DB, SNR_CEIL_DB + 1, 1.0)
    g = []
    for snr in grid:
        z = speech + noise * 10 ** (-snr / 20)
        az = np.maximum(np.abs(z), 1e-20)
        g.append(np.log(az.mean()) - np.log(az).mean())
    return grid, np.maximum.accumulate(np.asarray(g))  # monotone despite sampling noise


def wada_snr(audio: np.ndarray) -> float:
    """Estimated SNR in dB of (speech) `audio`. Digital silence is dropped first (zeros, and the faint
    ringing a resampler leaves around them): it reads as 100 dB."""
    a = np.asarray(audio, dtype=np.float64)
    a = a[np.abs(a) >= DIGITAL_SILENCE]
    if a.size < 1600:
        return math.nan
    a = a / np.max(np.abs(a))
    az = np.maximum(np.abs(a), 1e-20)
    g = float(np.log(az.mean()) - np.log(az).mean())
    grid, table = _wada_table()
    # G rises with SNR (Gaussian noise ~0.41, heavy-tailed speech higher).
    if g <= table[0]:
        return SNR_FLOOR_DB
    if g >= table[-1]:
        return SNR_CEIL_DB
    return float(np.interp(g, table, grid))


def speech_snr(audio: np.ndarray, sr: int, regions: list[tuple[float, float]],
               span: tuple[float, float] | None = None, context_s: float = NOISE_CONTEXT_S) -> tuple[float, str]:
    """(SNR in dB, method) of the speech inside `span` (seconds; default the whole of `audio`).
    Speech power is the mean power on the speech `regions` within the span; noise power is the mean
    power of the non-speech within `context_s` of the span, `regions` widened by a guard ("vad").
    With less than MIN_NOISE_S of non-speech the noise is estimated from the speech itself
    ("blind": WADA-SNR, or where the quietest frames stand well over the rest, the larger of the two).
    Babble the VAD takes at a region's edges is trimmed off before the speech power is measured."""
    n = len(audio)
    total = n / sr
    lo, hi = span if span is not None else (0.0, total)
    speech = [(max(s, lo), min(e, hi)) for s, e in regions if e > lo and s < hi]
    speech_sum, speech_n = _power(audio, sr, speech)
    if speech_n < int(0.1 * sr):
        return math.nan, "none"
    noise_sum, noise_n = _power(audio, sr, _gaps(regions, max(0.0, lo - context_s), min(total, hi + context_s)))
    if noise_n >= MIN_NOISE_S * sr:
        noise_power = noise_sum / noise_n
        # noise the VAD took in at a region's edges (babble, a cough) would dilute the speech power
        trimmed = [t for t in (_trim_edges(audio, sr, r, noise_power) for r in speech) if t is not None]
        speech_sum, speech_n = _power(audio, sr, trimmed) if trimmed else (speech_sum, speech_n)
        return _ratio_db(speech_sum / speech_n, noise_power), "vad"
    voiced = speech_only(audio, sr, speech)
    wada, quiet = _wada_or_floor(voiced), _quiet_frame_snr(voiced, sr)
    # WADA holds at low SNR but saturates near 15 dB on voices unlike its Gamma model; the quiet
    # frames hold at high SNR but read fluctuating noise (babble) low, so high SNR, at low SNR.
    return (wada if quiet < BLIND_SPLIT_DB else max(wada, quiet)), "blind"


def _gaps(regions: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    """The stretches of [lo, hi] at least NOISE_GUARD_S away from every region."""
    out, cursor = [], lo
    for s, e in sorted(regions):
        if s - NOISE_GUARD_S > cursor:
            out.append((cursor, min(s - NOISE_GUARD_S, hi)))
        cursor = max(cursor, e + NOISE_GUARD_S)
        if cursor >= hi:
            break
    if cursor < hi:
        out.append((cursor, hi))
    return [(a, b) for a, b in out if b > a]


def _trim_edges(audio: np.ndarray, sr: int, region: tuple[float, float], noise_power: float):
    """`region` without its leading and trailing 32 ms frames that hold no more power than twice
    the noise (no speech over the noise floor), each frame smoothed with its neighbours; None if
    nothing is left."""
    size = max(1, int(QUIET_FRAME_S * sr))
    start = max(0, int(region[0] * sr))
    part = audio[start:max(start, int(region[1] * sr))]
    frames = part.size // size
    if frames < 3:
        return region
    power = np.square(part[:frames * size].reshape(frames, size), dtype=np.float64).mean(axis=1)
    power = np.convolve(power, np.ones(3) / 3, "same")
    loud = np.flatnonzero(power > 2 * noise_power)
    if not loud.size:
        return None
    return (start + loud[0] * size) / sr, (start + (loud[-1] + 1) * size) / sr if loud[-1] < frames - 1 else region[1]


def _power(audio: np.ndarray, sr: int, spans: list[tuple[float, float]]) -> tuple[float, int]:
    """(sum of squares, samples) over the spans, in float64 one span at a time (no full-length copy)."""
    total, count = 0.0, 0
    for s, e in spans:
        part = audio[max(0, int(s * sr)):max(0, int(e * sr))]
        total += float(np.square(part, dtype=np.float64).sum())
        count += part.size
    return total, count


def _ratio_db(speech_power: float, noise_power: float) -> float:
    if noise_power <= 0:
        return SNR_CEIL_DB  # digital silence between the words: no noise at all
    clean = speech_power - noise_power
    if clean <= 0:
        return SNR_FLOOR_DB
    return float(np.clip(10 * math.log10(clean / noise_power), SNR_FLOOR_DB, SNR_CEIL_DB))


def _wada_or_floor(voiced: np.ndarray) -> float:
    snr = wada_snr(voiced)
    return SNR_FLOOR_DB if math.isnan(snr) else snr


def _quiet_frame_snr(voiced: np.ndarray, sr: int) -> float:
    """SNR against the mean power of the quietest tenth of 32 ms frames (the pauses between words),
    over the frames that are not digital silence."""
    size = max(1, int(QUIET_FRAME_S * sr))
    frames = voiced.size // size
    if frames < 10:
        return SNR_FLOOR_DB
    power = np.square(voiced[:frames * size].reshape(frames, size), dtype=np.float64).mean(axis=1)
    sounding = np.sort(power[power >= DIGITAL_SILENCE ** 2])  # digital silence is no measure of the noise
    if sounding.size < 10:
        return SNR_FLOOR_DB
    quiet = sounding[:max(1, int(sounding.size * QUIET_FRACTION))].mean()
    return _ratio_db(float(sounding.mean()), float(quiet))


def speech_only(audio: np.ndarray, sr: int, regions: list[tuple[float, float]]) -> np.ndarray:
    parts = [audio[int(s * sr):int(e * sr)] for s, e in regions]
    parts = [p for p in parts if p.size]
    return np.concatenate(parts) if parts else audio[:0]


def clipping(audio: np.ndarray, level: float = 0.999, min_run: int = 3) -> dict:
    """Runs of at least `min_run` consecutive samples at full scale: the sign of a clipped recording."""
    a = np.abs(np.asarray(audio, dtype=np.float32)) >= level
    if not a.any():
        return {"clipped_samples": 0, "clipped_runs": 0, "clipped_fraction": 0.0}
    edges = np.diff(np.concatenate([[0], a.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    long = lengths >= min_run
    clipped = int(lengths[long].sum())
    return {"clipped_samples": clipped, "clipped_runs": int(long.sum()),
            "clipped_fraction": clipped / max(1, a.size)}
