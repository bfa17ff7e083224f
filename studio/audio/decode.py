"""Decoding untrusted audio with libsndfile (WAV, FLAC, OGG/Vorbis/Opus, MP3; any rate; any
channel count), and the checks every imported file passes. Each failure is an AudioError whose
message names the file and the reason.

Compressed audio can expand ~400x (an hour of 48 kHz stereo silence is under 1 MB of FLAC and
1.4 GB as float32), so files are read as streams of blocks: import probes a file without holding
it (probe_file), prepare and transcribe take mono at the rates they need, resampled block by block
(decode_mono), and every reader stops at the duration cap, whatever the header claims. Only
decode_file holds a whole file, for short audio, under a memory cap."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.names import AUDIO_SUFFIXES as AUDIO_EXTENSIONS  # noqa: F401  (importers read it here)
from studio.errors import UserError

MIN_SECONDS = 0.4  # BS.1770 needs a 400 ms gating block; shorter clips cannot be measured or used
SILENCE_DBFS = -60.0  # a file (or prepared segment) whose loudest sample is below this holds no speech
SILENCE_PEAK = 10 ** (SILENCE_DBFS / 20)
DEFAULT_MAX_FILE_MB = 200
MAX_FILE_MB_ENV = "BARK_STUDIO_MAX_AUDIO_MB"
DEFAULT_MAX_MINUTES = 30.0  # per file; longer recordings are cut into files first
MAX_MINUTES_ENV = "BARK_STUDIO_MAX_AUDIO_MINUTES"
DEFAULT_MAX_DECODED_MB = 512  # decoding a file whole (voices, listening) stops past this
MAX_DECODED_MB_ENV = "BARK_STUDIO_MAX_DECODED_MB"
MAX_CHANNELS = 8
BLOCK_FRAMES = 1 << 16  # frames decoded at a time (1.4 s at 48 kHz)
PEAK_POINTS = 800  # waveform envelope drawn by the UI without decoding audio in the web process


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


def max_seconds() -> float:
    """The longest audio a file may hold (BARK_STUDIO_MAX_AUDIO_MINUTES, default 30 min)."""
    return float(os.environ.get(MAX_MINUTES_ENV, DEFAULT_MAX_MINUTES)) * 60


def max_decoded_bytes() -> int:
    """The most memory one file may take decoded whole (BARK_STUDIO_MAX_DECODED_MB, default 512 MB).
    Import and prepare never decode a file whole: they stream it block by block."""
    return int(float(os.environ.get(MAX_DECODED_MB_ENV, DEFAULT_MAX_DECODED_MB)) * 1024 * 1024)


def duration_text(seconds: float) -> str:
    """3 h 2 min, 10 h, 41 min 7 s, 30 min, 12.3 s."""
    if seconds >= 3600:
        minutes = int(seconds % 3600 // 60)
        return f"{int(seconds // 3600)} h" + (f" {minutes} min" if minutes else "")
    if seconds >= 60:
        rest = int(seconds % 60)
        return f"{int(seconds // 60)} min" + (f" {rest} s" if rest else "")
    return f"{seconds:.1f} s"


class AudioStream:
    """One checked file, read block by block: a compressed file never expands whole in memory, and
    reading stops (AudioError) once it passes the duration cap, whatever its header says."""

    def __init__(self, path: Path | str, *, label: str | None = None, max_bytes: int | None = None,
                 max_s: float | None = None):
        import soundfile as sf

        self.path = Path(path)
        self.who = label or display_name(self.path)
        self.max_s = max_seconds() if max_s is None else max_s
        limit = max_bytes if max_bytes is not None else max_file_bytes()
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            raise AudioError(f"{self.who}: cannot be read ({exc.strerror or exc})") from None
        if not self.path.is_file():
            raise AudioError(f"{self.who}: is not a regular file")
        if size == 0:
            raise AudioError(f"{self.who}: the file is empty (0 bytes)")
        if size > limit:
            raise AudioError(f"{self.who}: {size / 1e6:.1f} MB is over the {limit / 1e6:.0f} MB limit per file")
        try:
            self._file = sf.SoundFile(str(self.path))
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as exc:
            raise self._unreadable(exc) from None
        f = self._file
        self.format, self.subtype, self.sample_rate, self.channels = f.format, f.subtype, int(f.samplerate), f.channels
        if self.channels < 1 or self.channels > MAX_CHANNELS:
            self.close()
            raise AudioError(f"{self.who}: {self.channels} channels; only 1 to {MAX_CHANNELS} are read")
        if self.sample_rate < 4000 or self.sample_rate > 384_000:
            self.close()
            raise AudioError(f"{self.who}: sample rate {self.sample_rate} Hz is out of range (4 kHz to 384 kHz)")
        self.header_frames = f.frames if 0 < f.frames < 1 << 62 else 0  # 0: the header gives no length
        if self.header_frames / self.sample_rate > self.max_s:
            self.close()
            raise self._too_long(f"{duration_text(self.header_frames / self.sample_rate)} of audio is over")
        self.frames = 0  # frames read so far

    def _unreadable(self, exc: Exception) -> AudioError:
        kind = sniff(self.path)
        if kind is None:
            return AudioError(f"{self.who}: not an audio file (its content is not WAV, FLAC, OGG or MP3, "
                              f"whatever its extension says)")
        return AudioError(f"{self.who}: corrupt or unreadable {kind} audio ({_one_line(exc)})")

    def _too_long(self, what: str) -> AudioError:
        return AudioError(f"{self.who}: {what} the {duration_text(self.max_s)} limit per file "
                          f"(set {MAX_MINUTES_ENV} to allow longer files)")

    def blocks(self, block_frames: int = BLOCK_FRAMES):
        """(n, channels) float32 blocks in [-1, 1], checked finite, to the end of the file."""
        import soundfile as sf

        cap = int(self.max_s * self.sample_rate)
        while True:
            try:
                block = self._file.read(block_frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as exc:
                raise self._unreadable(exc) from None
            if not block.shape[0]:
                return
            self.frames += block.shape[0]
            if self.frames > cap:
                raise self._too_long("its audio runs past")  # a header that hid its length
            if not np.isfinite(block).all():
                raise AudioError(f"{self.who}: holds NaN or infinite samples (corrupt float data)")
            yield np.clip(block, -1.0, 1.0, out=block)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "AudioStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Probe:
    """What import learns from a file, read as a stream: its facts and a waveform envelope."""
    sample_rate: int
    format: str
    subtype: str
    channels: int
    duration: float
    peaks: list[float]  # PEAK_POINTS maxima of |mono|, drawn by the UI without decoding


def probe_file(path: Path | str, *, max_bytes: int | None = None, label: str | None = None,
               min_seconds: float = MIN_SECONDS, points: int = PEAK_POINTS) -> Probe:
    """Validate one file as decode_file does, streaming: memory stays a few blocks whatever its size."""
    with AudioStream(path, label=label, max_bytes=max_bytes) as stream:
        bin_frames = max(1, stream.sample_rate // 100)  # 10 ms maxima, reduced to `points` at the end
        bins, peak, tail = [], 0.0, np.zeros(0, np.float32)
        for block in stream.blocks():
            peak = max(peak, float(np.abs(block).max()))
            mono = np.concatenate([tail, np.abs(block.mean(axis=1))])
            whole = mono.size // bin_frames * bin_frames
            bins.append(mono[:whole].reshape(-1, bin_frames).max(axis=1))
            tail = mono[whole:]
        if tail.size:
            bins.append(tail.max(keepdims=True))
        frames, sr = stream.frames, stream.sample_rate
        probe = Probe(sr, stream.format, stream.subtype, stream.channels, frames / sr, [])
    who = label or display_name(path)
    if frames == 0:
        raise AudioError(f"{who}: holds no audio samples")
    if probe.duration < min_seconds:
        raise AudioError(f"{who}: {probe.duration:.2f} s is shorter than the {min_seconds} s minimum")
    if peak < SILENCE_PEAK:
        raise AudioError(f"{who}: silent (no sample above -60 dBFS)")
    env = np.concatenate(bins)
    n = max(1, min(points, env.size))
    edges = np.linspace(0, env.size, n + 1).astype(int)
    probe.peaks = [round(float(env[a:b].max()) if b > a else 0.0, 4) for a, b in zip(edges, edges[1:])]
    return probe


def decode_file(path: Path | str, *, max_bytes: int | None = None, label: str | None = None,
                min_seconds: float = MIN_SECONDS) -> Decoded:
    """Decode and validate one file whole (short audio: voices, listening). `label` is the name used
    in messages (the uploaded name); `min_seconds` is the shortest clip accepted. Refused past the
    duration cap or when the decoded samples would pass the memory cap."""
    with AudioStream(path, label=label, max_bytes=max_bytes) as stream:
        who, budget = stream.who, max_decoded_bytes()
        too_large = AudioError(f"{who}: over {budget / 2 ** 20:.0f} MB decoded ({stream.channels} channels at "
                               f"{stream.sample_rate} Hz); too large to open whole")
        if stream.header_frames * stream.channels * 4 > budget:
            raise too_large  # told by the header, before decoding anything
        parts, used = [], 0
        for block in stream.blocks():
            used += block.nbytes
            if used > budget:
                raise too_large
            parts.append(block)
        if not parts:
            raise AudioError(f"{who}: holds no audio samples")
        decoded = Decoded(np.concatenate(parts), stream.sample_rate, stream.format, stream.subtype)
    if decoded.duration < min_seconds:
        raise AudioError(f"{who}: {decoded.duration:.2f} s is shorter than the {min_seconds} s minimum")
    if float(np.abs(decoded.audio).max()) < SILENCE_PEAK:
        raise AudioError(f"{who}: silent (no sample above -60 dBFS)")
    return decoded


@dataclass
class MonoAudio:
    """A stretch of one file as mono, resampled while streaming, with where it clipped."""
    source_rate: int
    audio: dict[int, np.ndarray]  # rate -> mono float32 at that rate
    clipped_runs: list[tuple[int, int]]  # (start, length) at the source rate: runs of >= 3 samples at full scale
    duration: float  # seconds of the stretch

    def clipped_fraction(self, start_s: float, end_s: float) -> float:
        lo, hi = int(start_s * self.source_rate), int(end_s * self.source_rate)
        clipped = sum(max(0, min(s + n, hi) - max(s, lo)) for s, n in self.clipped_runs)
        return clipped / max(1, hi - lo)


def decode_mono(path: Path | str, rates: tuple[int, ...], *, start_s: float = 0.0, end_s: float | None = None,
                label: str | None = None) -> MonoAudio:
    """Mono audio of [start_s, end_s) at each of `rates`, streamed: the source-rate, multi-channel
    signal is never held whole (memory: the outputs plus a block), and past the cap it stops."""
    import soxr

    with AudioStream(path, label=label, max_bytes=1 << 62) as stream:  # size checked at import
        sr = stream.sample_rate
        lo = int(round(start_s * sr))
        hi = int(round(end_s * sr)) if end_s is not None else None
        resamplers = {r: None if r == sr else soxr.ResampleStream(sr, r, 1, dtype="float32", quality="HQ")
                      for r in rates}
        outs: dict[int, list[np.ndarray]] = {r: [] for r in rates}
        runs = _ClipRuns()
        pos = taken = 0
        for block in stream.blocks():
            a, b = max(lo - pos, 0), block.shape[0] if hi is None else min(hi - pos, block.shape[0])
            pos += block.shape[0]
            if b <= a:
                if hi is not None and pos >= hi:
                    break
                continue
            mono = block[a:b].mean(axis=1, dtype=np.float32)
            runs.feed(mono, taken)
            taken += mono.size
            for r, rs in resamplers.items():
                outs[r].append(mono.copy() if rs is None else rs.resample_chunk(mono))
        for r, rs in resamplers.items():
            if rs is not None:
                outs[r].append(rs.resample_chunk(np.zeros(0, np.float32), last=True))
        return MonoAudio(sr, {r: np.concatenate(parts) if parts else np.zeros(0, np.float32)
                              for r, parts in outs.items()}, runs.done(taken), taken / sr)


class _ClipRuns:
    """Runs of consecutive samples at full scale (|x| >= 0.999), found block by block."""

    def __init__(self, level: float = 0.999, min_run: int = 3):
        self.level, self.min_run = level, min_run
        self.runs: list[tuple[int, int]] = []
        self.open_start: int | None = None  # a run reaching the end of the last block

    def feed(self, mono: np.ndarray, offset: int) -> None:
        if not mono.size:
            return
        hot = np.abs(mono) >= self.level
        edges = np.diff(np.concatenate([[0], hot.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
        if self.open_start is not None:
            if starts and starts[0] == 0:
                starts[0] = self.open_start - offset  # the run goes on from the last block
            else:
                self._close(self.open_start, offset)
            self.open_start = None
        if ends and ends[-1] == mono.size:
            self.open_start = offset + starts.pop()
            ends.pop()
        for s, e in zip(starts, ends):
            self._close(offset + s, offset + e)

    def _close(self, start: int, end: int) -> None:
        if end - start >= self.min_run:
            self.runs.append((start, end - start))

    def done(self, total: int) -> list[tuple[int, int]]:
        if self.open_start is not None:
            self._close(self.open_start, total)
            self.open_start = None
        return self.runs


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


def _one_line(exc: Exception) -> str:
    # libsndfile's messages start with "Error opening '<full path>': "; the path is ours, not the user's
    text = re.sub(r"^Error opening .*?': ", "", " ".join(str(exc).split()))
    return text[:200] or type(exc).__name__


