"""Word error rate through an ASR model: Whisper's English normaliser on both sides, Bark's
markers ([laughs], ♪, ...) stripped first, jiwer 4 `process_words` per utterance, and the
mean of per-utterance WER (not corpus WER: one long line must not outweigh ten short ones).

The ASR call goes through models/asr.py; anything with `.name` and `.transcribe(paths)` works,
which is what tests use to pin a transcript."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

import jiwer

# Bark's non-verbal cues: [laughs], [music], (sighs), ♪ around lyrics, — and ... for hesitation.
_MARKERS = re.compile(r"\[[^\]]*\]|\([^)]*\)|[♪♫♬]|—|\.\.\.|…")


class Transcriber(Protocol):
    name: str

    def transcribe(self, paths: Sequence[str | Path]) -> list[str]: ...


@lru_cache(maxsize=1)
def _normalizer():
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Bark markers out, then Whisper's English normaliser (spelling, numbers, punctuation, case)."""
    return _normalizer()(_MARKERS.sub(" ", text or "")).strip()


def utterance_wer(reference: str, hypothesis: str) -> dict:
    """WER of one utterance after normalisation. A reference with no words scores 0 when the
    hypothesis is empty too, else 1 (jiwer refuses an empty reference)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return {"wer": 0.0 if not hyp else 1.0, "ref_words": 0, "errors": len(hyp.split()),
                "reference": ref, "hypothesis": hyp}
    out = jiwer.process_words(ref, hyp)
    errors = out.substitutions + out.deletions + out.insertions
    return {"wer": float(out.wer), "ref_words": len(ref.split()), "errors": errors,
            "reference": ref, "hypothesis": hyp}


def mean_wer(references: Sequence[str], hypotheses: Sequence[str]) -> dict:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference texts but {len(hypotheses)} transcripts")
    rows = [utterance_wer(r, h) for r, h in zip(references, hypotheses)]
    mean = sum(r["wer"] for r in rows) / len(rows) if rows else None
    return {"mean_wer": mean, "per_utterance": rows}


class WhisperASR:
    """Whisper through models/asr.py; `test-random` is the random-weight test model (tests, offline trials)."""

    def __init__(self, size: str = "base", device: str | None = None):
        from models import asr

        self._asr = asr
        self.model = asr.load_model(size, device=device)
        self.size = size
        self.name = "whisper test-random (random weights, test model)" if size == asr.RANDOM_PRESET \
            else f"openai-whisper {size}"

    def transcribe(self, paths: Sequence[str | Path]) -> list[str]:
        return [self._asr.transcribe(str(p), self.model, word_timestamps=False)["text"] for p in paths]


def evaluate(asr: Transcriber, audio: Sequence[str | Path], texts: Sequence[str],
             real_audio: Sequence[str | Path] = (), real_texts: Sequence[str] = ()) -> dict:
    """WER of `audio` against `texts`, and of real recordings through the same ASR as the floor."""
    if len(audio) != len(texts):
        raise ValueError(f"{len(audio)} audio files but {len(texts)} texts")
    out = mean_wer(texts, asr.transcribe(list(audio)))
    out["asr_model"] = asr.name
    out["floor_wer"] = None
    if real_audio:
        floor = mean_wer(real_texts, asr.transcribe(list(real_audio)))
        out["floor_wer"] = floor["mean_wer"]
        out["floor_per_utterance"] = floor["per_utterance"]
    return out
