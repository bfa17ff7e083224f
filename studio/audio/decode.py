"""Decoding untrusted audio with libsndfile (WAV, FLAC, OGG/Vorbis/Opus, MP3; any rate; any
channel count), and the checks every imported file passes. Each failure is an AudioError whose
message names the file and the reason."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")
MIN_SECONDS = 0.4  # BS.1770 needs a 400 ms gating block; shorter clips cannot be measured or used
SILENCE_PEAK = 10 ** (-60 / 20)  # a file whose loudest sample is below -60 dBFS holds no speech
DEFAULT_MAX_FILE_MB = 200
MAX_FILE_MB_ENV = "BARK_STUDIO_MAX_AUDIO_MB"
MAX_CHANNELS = 8


class AudioError(UserError):
    """A file that cannot become a clip; the message names the file and why."""


@dataclass
class Decoded:
    audio: np.ndarray  # (T, C) float32 in [-1, 1]
    sample_rate: int
    format: str  # libsndfile's name: WAV, FLAC, OGG, MP3...
    subtype: str

    @property
    def channels(self) -> int:
        return int(self.audio.shape[1])

    @property
    def duration(self) -> float:
        return self.audio.shape[0] / self.sample_rate

    def mono(self) -> np.ndarray:
        return self.audio.mean(axis=1).astype(np.float32)


def max_file_bytes() -> int:
    return int(float(os.environ.get(MAX_FILE_MB_ENV, DEFAULT_MAX_FILE_MB)) * 1024 * 1024)


def printable(text: str, limit: int = 200) -> str:
    """Text safe to print on one line: control characters escaped, long text shortened."""
    safe = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return safe if len(safe) <= limit else safe[:limit - 40] + "…" + safe[-30:]


def display_name(path: Path | str) -> str:
    """A file name safe to print (see printable)."""
    return printable(Path(path).name, 120)


def decode_file(path: Path | str, *, max_bytes: int | None = None, label: str | None = None,
                min_seconds: float = MIN_SECONDS) -> Decoded:
    """Decode and validate one file. `label` is the name used in messages (the uploaded name);
    `min_seconds` is the shortest clip accepted."""
    import soundfile as sf

    path = Path(path)
    who = label or display_name(path)
    limit = max_bytes if max_bytes is not None else max_file_bytes()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError(f"{who}: cannot be read ({exc.strerror or exc})") from None
    if not path.is_file():
        raise AudioError(f"{who}: is not a regular file")
    if size == 0:
        raise AudioError(f"{who}: the file is empty (0 bytes)")
    if size > limit:
        raise AudioError(f"{who}: {size / 1e6:.1f} MB is over the {limit / 1e6:.0f} MB limit per file")
    try:
        with sf.SoundFile(str(path)) as f:
            fmt, subtype, sr, channels = f.format, f.subtype, f.samplerate, f.channels
            if channels < 1 or channels > MAX_CHANNELS:
                raise AudioError(f"{who}: {channels} channels; only 1 to {MAX_CHANNELS} are read")
            if sr < 4000 or sr > 384_000:
                raise AudioError(f"{who}: sample rate {sr} Hz is out of range (4 kHz to 384 kHz)")
            # libsndfile reports frames from the header; a lying header cannot make us allocate more
            # than the file could hold decoded at 32 bits per sample, times a generous codec ratio.
            audio = f.read(dtype="float32", always_2d=True, frames=_frame_cap(size, channels))
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as exc:
        kind = sniff(path)
        if kind is None:
            raise AudioError(f"{who}: not an audio file (its content is not WAV, FLAC, OGG or MP3, "
                             f"whatever its extension says)") from None
        raise AudioError(f"{who}: corrupt or unreadable {kind} audio ({_one_line(exc)})") from None
    if audio.shape[0] == 0:
        raise AudioError(f"{who}: holds no audio samples")
    if not np.isfinite(audio).all():
        raise AudioError(f"{who}: holds NaN or infinite samples (corrupt float data)")
    decoded = Decoded(np.clip(audio, -1.0, 1.0), int(sr), fmt, subtype)
    if decoded.duration < min_seconds:
        raise AudioError(f"{who}: {decoded.duration:.2f} s is shorter than the {min_seconds} s minimum")
    if float(np.abs(decoded.audio).max()) < SILENCE_PEAK:
        raise AudioError(f"{who}: silent (no sample above -60 dBFS)")
    return decoded


def sniff(path: Path) -> str | None:
    """The container its first bytes announce (WAV, FLAC, OGG, MP3, AIFF...), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    if head[:4] == b"FORM":
        return "AIFF"
    return None


def _frame_cap(size_bytes: int, channels: int) -> int:
    # MP3/OGG compress ~10-20x; allow 64x over 16-bit PCM, which still bounds memory by the file size.
    return max(1, size_bytes * 64 // (2 * channels))


def _one_line(exc: Exception) -> str:
    # libsndfile's messages start with "Error opening '<full path>': "; the path is ours, not the user's
    text = re.sub(r"^Error opening .*?': ", "", " ".join(str(exc).split()))
    return text[:200] or type(exc).__name__


def write_wav(path: Path | str, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV (what LJSpeech-style exports and training readers expect)."""
    import soundfile as sf

    sf.write(str(path), audio, sample_rate, subtype="PCM_16", format="WAV")


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()
