"""Stimulus audio: decode, resample to one rate, match loudness, write metadata-free WAVs.

Everything a rater could use to tell systems apart other than how they sound is removed: every
stimulus has the same sample rate, channel count, sample format and integrated loudness (ITU-R
BS.1770, studio.audio.loudness's meter), and the WAV holds only its `fmt ` and `data` chunks under a
random name. Decoding, resampling and metering are studio.audio's; what is here is the listening
test's own part: one common level for every stimulus, trap stimuli and the stimulus files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.names import AUDIO_SUFFIXES
from studio.audio.decode import decode_file, printable
from studio.audio.loudness import measure_lufs
from studio.audio.resample import TARGET_RATE, resample
from studio.errors import UserError

DEFAULT_SAMPLE_RATE = TARGET_RATE  # Bark's rate; real recordings are resampled to it too
DEFAULT_TARGET_LUFS = -23.0  # EBU R128 programme loudness
PEAK_CEILING_DBFS = -1.0  # the common target is lowered until no stimulus clips
LOUDNESS_BLOCK_S = 0.4  # BS.1770 gating block; shorter clips are measured tiled to this length


def load_mono(path: Path, sample_rate: int) -> np.ndarray:
    """Decode `path` to mono float32 at `sample_rate`. A bad file (undecodable, empty, non-finite,
    silent) raises studio.audio's one-line AudioError naming the file by its full path (systems'
    folders share file names). Short clips are kept: a short generation is still a stimulus."""
    decoded = decode_file(path, label=printable(str(path)), min_seconds=0.0)
    return resample(decoded.mono(), decoded.sample_rate, sample_rate)


def loudness_lufs(x: np.ndarray, sample_rate: int, name: str = "audio") -> float:
    need = int(LOUDNESS_BLOCK_S * sample_rate) + 1
    if len(x) < need:  # too short for one gating block: measure the clip repeated
        x = np.tile(x, int(np.ceil(need / len(x))))
    lufs = measure_lufs(x, sample_rate)
    if not np.isfinite(lufs):
        raise UserError(f"{name}: the audio is silent (no measurable loudness)")
    return lufs


def common_target(measured: list[tuple[float, float]], target_lufs: float) -> float:
    """The loudness every stimulus is set to: `target_lufs`, lowered if needed so that no stimulus
    peaks above PEAK_CEILING_DBFS after its gain. `measured` holds (lufs, peak_dbfs) per clip."""
    target = target_lufs
    for lufs, peak in measured:
        target = min(target, lufs + (PEAK_CEILING_DBFS - peak))
    return target


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
