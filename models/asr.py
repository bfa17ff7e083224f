"""Whisper for transcription (dataset curation) and for WER (experiments).

    model = load_model("base")                # openai-whisper by size name (downloads on first use)
    model = load_model("tiny")                # random weights, a tiny Whisper shape, seeded: offline
    out = transcribe("clip.wav", model)       # {"text", "language", "words": [{word, start, end}]}

`tiny` follows the studio's preset convention: random-init and Bark-shaped (here Whisper-shaped),
for tests and offline trials. It exercises the real decoding and word-timestamp code paths and
transcribes nothing meaningful. The real tiny checkpoint is `whisper-tiny`.
faster-whisper is an optional backend, used only when it is importable."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
RANDOM_PRESET = "tiny"
# Names openai-whisper knows, plus `whisper-tiny` for the real tiny checkpoint.
REAL_SIZES = ("whisper-tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
              "large-v1", "large-v2", "large-v3", "large", "turbo", "large-v3-turbo")
MODEL_SIZES = (RANDOM_PRESET, *REAL_SIZES)


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
    if size not in REAL_SIZES:
        raise ASRUnavailable(f"unknown Whisper size {size!r}; choose one of {', '.join(MODEL_SIZES)}")
    name = "tiny" if size == "whisper-tiny" else size
    if backend == "faster-whisper":
        return _load_faster_whisper(name, device, download_root)
    if backend != "openai-whisper":
        raise ASRUnavailable(f"unknown ASR backend {backend!r}; use openai-whisper or faster-whisper")
    import whisper

    root = str(download_root) if download_root else None
    try:
        model = whisper.load_model(name, device=device, download_root=root)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError: no network and no cached file
        where = root or os.path.join(os.path.expanduser("~"), ".cache", "whisper")
        raise ASRUnavailable(f"Whisper {name!r} weights are not in {where} and could not be downloaded "
                             f"({type(exc).__name__}: {exc}); fetch them on a machine with internet, "
                             f"or use the offline test preset 'tiny'") from exc
    model.name = size
    model.backend = "openai-whisper"
    return model


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

    extra = getattr(model, "decode_overrides", None) or {}
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
