"""Descriptors of every generated output, for spotting emergent behaviour: music-likeness
(harmonicity and pitch stability), non-speech share (VAD, and ASR when a transcript is given),
loudness and dynamic range, duration anomaly, silence, repetition. Each is one number; the
outlier rules in models/metrics/outliers.py say which direction of each is interesting."""
from __future__ import annotations

from functools import lru_cache
import numpy as np

from models.metrics.audio import as_wave
from models.metrics.pitch import SR, track

FRAME, HOP = 400, 160  # 25 ms frames, 10 ms hop at 16 kHz
SILENCE_FLOOR_DB = -60.0  # absolute floor; also anything 40 dB under the loudest frame
STABLE_WINDOW = 25  # frames (250 ms) a note must hold to count as sustained
STABLE_CENTS = 25.0  # std of pitch within the window below which it is a held note
CHARS_PER_SECOND = 14.0  # English read speech, spaces included; Bark lands near this

NAMES = ("duration_s", "silence_share", "loudness_lufs", "dynamic_range_db", "voiced_share",
         "harmonicity", "pitch_stability", "music_likeness", "vad_speech_share", "nonspeech_share",
         "speaking_rate_wps", "duration_log_ratio", "repetition", "asr_words_per_s")


def frame_db(wave: np.ndarray) -> np.ndarray:
    """(frames,) RMS level in dBFS of 25 ms frames every 10 ms."""
    if len(wave) < FRAME:
        wave = np.pad(wave, (0, FRAME - len(wave)))
    frames = np.lib.stride_tricks.sliding_window_view(wave, FRAME)[::HOP]  # (frames, FRAME)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    return 20 * np.log10(rms + 1e-10)


def harmonicity(wave: np.ndarray, active: np.ndarray) -> float:
    """Mean peak of the normalised autocorrelation (lags 1.25-20 ms, i.e. 50-800 Hz) over
    non-silent 40 ms frames: ~1 for steady tones, lower for speech with its noisy consonants."""
    n = 640  # 40 ms: two periods of 50 Hz
    if len(wave) < n:
        wave = np.pad(wave, (0, n - len(wave)))
    frames = np.lib.stride_tricks.sliding_window_view(wave, n)[::HOP].astype(np.float64)  # (frames, n)
    frames = frames[: len(active)][active[: len(frames)]] if active.any() else frames
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, 2 * n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, : n // 2 + 1]  # (frames, lags)
    ac = ac / (ac[:, :1] + 1e-12) * (n / (n - np.arange(ac.shape[1])))  # unbiased: fewer products at long lags
    peaks = ac[:, SR // 800: SR // 50 + 1].max(axis=1)
    return float(np.clip(peaks, 0.0, 1.0).mean()) if len(peaks) else 0.0


def loudness_lufs(wave: np.ndarray) -> float | None:
    """ITU-R BS.1770 integrated loudness; None under 0.4 s or for digital silence."""
    import pyloudnorm

    if len(wave) < 0.4 * SR:
        return None
    value = pyloudnorm.Meter(SR).integrated_loudness(wave.astype(np.float64))
    return float(value) if np.isfinite(value) else None


def pitch_stability(f0: np.ndarray) -> float:
    """Share of voiced frames inside a held note: a 250 ms window, all voiced, whose pitch
    varies by under 25 cents (std). Speech glides (~0-0.2); singing and chords hold (~0.6-1)."""
    voiced = np.isfinite(f0)
    if voiced.sum() < STABLE_WINDOW:
        return 0.0
    cents = 1200 * np.log2(np.where(voiced, f0, 1.0))
    held = np.zeros(len(f0), dtype=bool)
    for start in range(0, len(f0) - STABLE_WINDOW + 1):
        window = slice(start, start + STABLE_WINDOW)
        if voiced[window].all() and cents[window].std() < STABLE_CENTS:
            held[window] = True
    return float(held.sum() / voiced.sum())


def repetition(wave: np.ndarray) -> float:
    """Highest mean cosine similarity between the MFCC frames and themselves shifted by a lag of
    0.4 s up to half the clip: loops and stuck syllables score near 1, speech ~0.2-0.6."""
    import librosa

    mf = librosa.feature.mfcc(y=wave, sr=SR, n_mfcc=13, n_fft=1024, hop_length=HOP)[1:]  # (12, frames)
    mf = mf - mf.mean(axis=1, keepdims=True)
    mf /= np.linalg.norm(mf, axis=0, keepdims=True) + 1e-9
    n = mf.shape[1]
    best = 0.0
    for lag in range(40, n // 2 + 1):
        best = max(best, float(np.mean(np.sum(mf[:, :-lag] * mf[:, lag:], axis=0))))
    return best


@lru_cache(maxsize=1)
def _vad_model():
    from silero_vad import load_silero_vad

    return load_silero_vad()


def vad_speech_seconds(wave: np.ndarray) -> float:
    """Speech seconds by silero VAD at 16 kHz (threshold 0.5, min speech 250 ms, min silence 100 ms)."""
    import torch
    from silero_vad import get_speech_timestamps

    stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), _vad_model(),
                                   sampling_rate=SR, threshold=0.5, min_speech_duration_ms=250,
                                   min_silence_duration_ms=100, speech_pad_ms=30)
    return sum(s["end"] - s["start"] for s in stamps) / SR


def describe(audio, text: str | None = None, transcript: str | None = None, f0_method: str = "pyin") -> dict:
    """All descriptors of one clip (a path, or a mono 16 kHz array)."""
    wave = as_wave(audio, SR)
    duration = len(wave) / SR
    db = frame_db(wave)
    silent = db < max(SILENCE_FLOOR_DB, db.max() - 40.0)
    active = db[~silent]
    out: dict = {"duration_s": duration, "silence_share": float(silent.mean())}
    out["loudness_lufs"] = loudness_lufs(wave)
    out["dynamic_range_db"] = float(np.percentile(active, 95) - np.percentile(active, 10)) if active.size >= 10 else 0.0

    f0 = track(wave, f0_method)
    voiced = f0.voiced
    out["voiced_share"] = float(voiced.mean()) if len(voiced) else 0.0
    out["harmonicity"] = harmonicity(wave, ~silent)
    out["pitch_stability"] = pitch_stability(f0.f0)
    out["music_likeness"] = out["harmonicity"] * out["pitch_stability"]

    speech_s = vad_speech_seconds(wave)
    active_s = max(float((~silent).sum()) * HOP / SR, 1e-6)
    out["vad_speech_share"] = speech_s / duration if duration else 0.0
    out["nonspeech_share"] = float(np.clip(1.0 - speech_s / active_s, 0.0, 1.0)) if active.size else 0.0

    words = len(text.split()) if text else 0
    out["speaking_rate_wps"] = words / speech_s if words and speech_s > 0 else None
    if text and text.strip():
        expected = max(len(text.strip()) / CHARS_PER_SECOND, 0.5)
        out["duration_log_ratio"] = float(np.log2(duration / expected))
    else:
        out["duration_log_ratio"] = None
    out["repetition"] = repetition(wave) if duration >= 1.0 else 0.0
    out["asr_words_per_s"] = len(transcript.split()) / duration if transcript is not None and duration else None
    return out


def describe_many(items, texts=None, transcripts=None, f0_method: str = "pyin") -> list[dict]:
    texts = texts or [None] * len(items)
    transcripts = transcripts or [None] * len(items)
    return [describe(it, t, tr, f0_method) for it, t, tr in zip(items, texts, transcripts)]
