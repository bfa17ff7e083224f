"""Whisper for transcription (dataset curation) and for WER (experiments).

    model = load_model("base")                # OpenAI's checkpoint (`tiny`, `base`, ... `large-v3`, `turbo`)
    model = load_model("test-random")         # random weights, a small Whisper shape, seeded: offline
    out = transcribe("clip.wav", model)       # {"text", "language", "words": [{word, start, end}]}

Real sizes are OpenAI's names and load from the whisper download root (models.catalog.whisper_root)
by path, through openai-whisper's public `load_model(path)`: its by-name loader insists on its URL
and checksum. `test-random` is for tests and offline trials: it exercises the real decoding and
word-timestamp code paths and transcribes nothing meaningful; no real size is called that.
faster-whisper is an optional backend, used only when it is importable."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from models.catalog import WHISPER_FILES, whisper_file, whisper_root

SAMPLE_RATE = 16_000
RANDOM_PRESET = "test-random"
# OpenAI's checkpoint names (openai-whisper's own list); `whisper-tiny` is an old alias of `tiny`.
REAL_SIZES = tuple(WHISPER_FILES)
ALIASES = {"whisper-tiny": "tiny"}
MODEL_SIZES = (*REAL_SIZES, RANDOM_PRESET)


class ASRUnavailable(RuntimeError):
    """The requested Whisper weights or backend are not on this machine."""


RANDOM_SEED = 2  # a seed whose random decoder emits separate words with timestamps (seed 0 glues one long word)
# The random preset never says end-of-text on its own: cap its tokens per window, and switch off the
# quality fallbacks (no-speech, log-prob, compression) that a random model always trips.
RANDOM_DECODE = {"sample_len": 32, "no_speech_threshold": None, "logprob_threshold": None,
                 "compression_ratio_threshold": None}


def tiny_dims():
    """A Whisper smaller than whisper-tiny: the real multilingual vocabulary, 80 mel bins and 30 s
    windows (so the real tokenizer, features and timestamp rules apply), but 2 layers of width 64,
    so a CPU decodes a window in about a second."""
    from whisper.model import ModelDimensions

    return ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
                           n_vocab=51865, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=2)


def random_whisper(seed: int = RANDOM_SEED):
    """A Whisper with random weights, built from its dimensions; same seed, same weights."""
    import torch
    from whisper.model import Whisper

    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = Whisper(tiny_dims())
        # The decoder's positional embedding is torch.empty (Whisper expects a checkpoint): fill it,
        # or the "random" model reads uninitialised memory and differs run to run.
        torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    finally:
        torch.random.set_rng_state(gen_state)
    model.name = RANDOM_PRESET
    model.backend = "openai-whisper"
    model.decode_overrides = dict(RANDOM_DECODE)
    return model.eval()


def load_model(size: str = "base", *, device: str | None = None, download_root: str | os.PathLike | None = None,
               backend: str = "openai-whisper", seed: int = RANDOM_SEED):
    """Load Whisper by size name. Raises ASRUnavailable with a clear line when weights are missing."""
    if size == RANDOM_PRESET:
        model = random_whisper(seed)
        return model.to(device) if device else model
    name = ALIASES.get(size, size)
    if name not in REAL_SIZES:
        raise ASRUnavailable(f"unknown Whisper size {size!r}; choose one of {', '.join(MODEL_SIZES)}")
    if backend == "faster-whisper":
        return _load_faster_whisper(name, device, download_root)
    if backend != "openai-whisper":
        raise ASRUnavailable(f"unknown ASR backend {backend!r}; use openai-whisper or faster-whisper")
    import whisper

    path = local_checkpoint(name, download_root)
    try:
        if path is not None:
            model = whisper.load_model(str(path), device=device or "cpu")
            # By path, openai-whisper cannot know the size: give word timing its alignment heads.
            model.set_alignment_heads(whisper._ALIGNMENT_HEADS[name])
        elif _offline():
            raise ASRUnavailable(f"Whisper {name!r} is not downloaded ({WHISPER_FILES[name][0]} is not in "
                                 f"{whisper_root()}); run `bark-studio models download small` on a machine "
                                 f"with internet, or name the offline test model {RANDOM_PRESET!r}")
        else:
            model = whisper.load_model(name, device=device or "cpu", download_root=str(whisper_root()))
    except (OSError, RuntimeError, KeyError) as exc:  # URLError is an OSError: no network, no file
        raise ASRUnavailable(f"Whisper {name!r} could not load from {path or whisper_root()} "
                             f"({type(exc).__name__}: {exc})".splitlines()[0]) from exc
    model.name = name
    model.backend = "openai-whisper"
    return model


def local_checkpoint(size: str, download_root: str | os.PathLike | None = None) -> Path | None:
    """`<size>.pt` in `download_root` (a workspace's own copy) or the shared whisper root."""
    name = ALIASES.get(size, size)
    if name not in WHISPER_FILES:
        return None
    if download_root:
        path = Path(download_root) / WHISPER_FILES[name][0]
        if path.is_file():
            return path
    return whisper_file(name)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _load_faster_whisper(name: str, device: str | None, download_root) -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise ASRUnavailable("faster-whisper is not installed (pip install faster-whisper)") from exc
    try:
        model = WhisperModel(name, device=device or "auto", download_root=str(download_root) if download_root else None)
    except Exception as exc:  # noqa: BLE001 - its hub errors vary by version; name the cause in one line
        raise ASRUnavailable(f"faster-whisper {name!r} could not load: {type(exc).__name__}: {exc}") from exc
    model.name, model.backend = name, "faster-whisper"
    return model


def load_audio_16k(path: str | os.PathLike) -> np.ndarray:
    """Decode a file to 16 kHz mono float32 (soundfile + soxr; no ffmpeg needed)."""
    import soundfile as sf
    import soxr

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (T, C)
    mono = data.mean(axis=1)
    if sr != SAMPLE_RATE:
        mono = soxr.resample(mono, sr, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def transcribe(audio_16k_or_path: np.ndarray | str | os.PathLike, model, *, language: str | None = "en",
               word_timestamps: bool = True, temperature: float | tuple[float, ...] = 0.0) -> dict:
    """Transcribe 16 kHz mono audio (or a file). Returns {"text", "language", "words": [{word, start, end}]}.

    One temperature by default: no fallback ladder, so a run is deterministic and its time bounded."""
    audio = audio_16k_or_path
    if isinstance(audio, (str, Path)):
        audio = load_audio_16k(audio)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if getattr(model, "backend", "openai-whisper") == "faster-whisper":
        return _transcribe_faster(audio, model, language, word_timestamps)
    import torch
    import whisper

    extra = dict(getattr(model, "decode_overrides", None) or {})
    # A guard against Whisper's repetition loops (noise, music, an untrained checkpoint): no window
    # may decode more tokens than fast speech in that much audio needs (~8 a second, plus room).
    extra.setdefault("sample_len", min(model.dims.n_text_ctx // 2, 24 + 8 * math.ceil(len(audio) / SAMPLE_RATE)))
    with torch.inference_mode():
        out = whisper.transcribe(model, audio, language=language, word_timestamps=word_timestamps,
                                 temperature=temperature, condition_on_previous_text=False,
                                 fp16=next(model.parameters()).is_cuda, verbose=None, **extra)
    words = [{"word": w["word"].strip(), "start": round(float(w["start"]), 3), "end": round(float(w["end"]), 3)}
             for seg in out.get("segments", []) for w in seg.get("words", []) if w["word"].strip()]
    return {"text": out["text"].strip(), "language": out.get("language") or language, "words": words}


def _transcribe_faster(audio: np.ndarray, model, language: str | None, word_timestamps: bool) -> dict:
    segments, info = model.transcribe(audio, language=language, word_timestamps=word_timestamps)
    texts, words = [], []
    for seg in segments:
        texts.append(seg.text.strip())
        for w in seg.words or []:
            if w.word.strip():
                words.append({"word": w.word.strip(), "start": round(float(w.start), 3), "end": round(float(w.end), 3)})
    return {"text": " ".join(t for t in texts if t), "language": info.language, "words": words}
