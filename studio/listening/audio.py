"""Stimulus audio: decode, resample to one rate, match loudness, write metadata-free WAVs.

Everything a rater could use to tell systems apart other than how they sound is removed: every
stimulus has the same sample rate, channel count, sample format and integrated loudness (ITU-R
BS.1770 via pyloudnorm), and the WAV holds only its `fmt ` and `data` chunks under a random name."""
from __future__ import annotations

import os
import tempfile
import wave
from pathlib import Path

import numpy as np

from studio.errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
DEFAULT_SAMPLE_RATE = 24_000  # Bark's rate; real recordings are resampled to it too
DEFAULT_TARGET_LUFS = -23.0  # EBU R128 programme loudness
PEAK_CEILING_DBFS = -1.0  # the common target is lowered until no stimulus clips
LOUDNESS_BLOCK_S = 0.4  # BS.1770 gating block; shorter clips are measured tiled to this length


def load_mono(path: Path, sample_rate: int) -> np.ndarray:
    """Decode `path` to mono float64 at `sample_rate`; a clear one-line error per bad file."""
    import soundfile as sf
    import soxr

    path = Path(path)
    try:
        data, sr = sf.read(str(path), dtype="float64", always_2d=True)  # (T, C)
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for bad files
        raise UserError(f"{path}: cannot decode audio ({str(exc).strip().splitlines()[0]})") from None
    if data.shape[0] == 0:
        raise UserError(f"{path}: the file holds no samples")
    x = data.mean(axis=1)  # (T,)
    if not np.all(np.isfinite(x)):
        raise UserError(f"{path}: the audio holds NaN or infinite samples")
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(x, dtype=np.float64)


def loudness_lufs(x: np.ndarray, sample_rate: int, name: str = "audio") -> float:
    import pyloudnorm

    need = int(LOUDNESS_BLOCK_S * sample_rate) + 1
    if len(x) < need:  # too short for one gating block: measure the clip repeated
        x = np.tile(x, int(np.ceil(need / len(x))))
    lufs = float(pyloudnorm.Meter(sample_rate).integrated_loudness(x))
    if not np.isfinite(lufs):
        raise UserError(f"{name}: the audio is silent (no measurable loudness)")
    return lufs


def peak_dbfs(x: np.ndarray) -> float:
    peak = float(np.max(np.abs(x)))
    return 20 * np.log10(peak) if peak > 0 else -np.inf


def common_target(measured: list[tuple[float, float]], target_lufs: float) -> float:
    """The loudness every stimulus is set to: `target_lufs`, lowered if needed so that no stimulus
    peaks above PEAK_CEILING_DBFS after its gain. `measured` holds (lufs, peak_dbfs) per clip."""
    target = target_lufs
    for lufs, peak in measured:
        target = min(target, lufs + (PEAK_CEILING_DBFS - peak))
    return target


def gain_to(x: np.ndarray, lufs: float, target: float) -> tuple[np.ndarray, float]:
    gain_db = target - lufs
    return x * 10 ** (gain_db / 20), gain_db


def degrade(x: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """An unmistakably worse copy for gold/trap trials: band-limited to 1 kHz, 8-bit quantised,
    and buried in white noise at 0 dB SNR."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(6, 1000, btype="low", fs=sample_rate, output="sos")
    y = sosfiltfilt(sos, x)
    y = np.round(y * 127) / 127
    rng = np.random.default_rng(seed)
    rms = np.sqrt(np.mean(y ** 2)) or 1e-3
    return y + rng.normal(0.0, rms, size=y.shape)


def write_wav(target: Path, x: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM mono WAV with only `fmt ` and `data` chunks, written atomically."""
    pcm = (np.clip(x, -1.0, 1.0) * 32767).round().astype("<i2")
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=".stim.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            with wave.open(f, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(sample_rate)
                w.writeframes(pcm.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def wav_chunks(data: bytes) -> list[str]:
    """The RIFF chunk ids of a WAV (what metadata it could carry)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    ids, pos = [], 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        ids.append(cid.decode("latin-1"))
        pos += 8 + size + (size & 1)
    return ids


def audio_files(folder: Path) -> dict[str, Path]:
    """Audio files of a folder by stem (the item key that matches stimuli across systems)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of audio files")
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()}
    if not files:
        raise UserError(f"{folder}: holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return files
