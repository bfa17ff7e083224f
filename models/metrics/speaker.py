"""Speaker similarity: cosine of speaker embeddings against reference clips, with the
real-vs-real same-speaker value beside it so a number has a ceiling to be read against.

Default encoder: resemblyzer's VoiceEncoder (256-d; its weights ship inside the package, so it
works offline). It reads high: ~0.85+ for the same voice, ~0.5-0.7 for different voices.
Optional: a WavLM x-vector model (e.g. microsoft/wavlm-base-plus-sv), only when its weights are
already on disk; nothing downloads here."""
from __future__ import annotations

import itertools
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from models.metrics.audio import MetricInputError, as_wave

SR = 16_000
MIN_SECONDS = 0.5  # shorter clips give unstable embeddings
ENCODERS = ("resemblyzer", "wavlm")
DEFAULT_WAVLM = "microsoft/wavlm-base-plus-sv"


class ResemblyzerEncoder:
    name = "resemblyzer-ge2e"

    def __init__(self, device: str = "cpu"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources deprecation from webrtcvad
            from resemblyzer import VoiceEncoder
        self.model = VoiceEncoder(device, verbose=False)

    def embed(self, wave: np.ndarray) -> np.ndarray:
        from resemblyzer import preprocess_wav

        trimmed = preprocess_wav(wave, source_sr=SR)  # normalise volume, trim long silences
        if len(trimmed) < MIN_SECONDS * SR:
            trimmed = wave  # mostly silence: embed what there is rather than nothing
        emb = self.model.embed_utterance(trimmed)
        return emb / (np.linalg.norm(emb) + 1e-9)


class WavLMEncoder:
    def __init__(self, model_id: str = DEFAULT_WAVLM, device: str = "cpu"):
        from transformers import AutoFeatureExtractor, WavLMForXVector

        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(model_id, local_files_only=True)
            self.model = WavLMForXVector.from_pretrained(model_id, local_files_only=True).to(device).eval()
        except OSError:
            raise MetricInputError(
                f"WavLM speaker model {model_id!r} is not on this machine; download it where there is "
                f"internet (huggingface-cli download {model_id}) or use the resemblyzer encoder") from None
        self.name, self.device = model_id, device

    def embed(self, wave: np.ndarray) -> np.ndarray:
        import torch

        inputs = self.extractor(wave, sampling_rate=SR, return_tensors="pt").to(self.device)
        with torch.no_grad():
            emb = self.model(**inputs).embeddings[0].cpu().numpy()
        return emb / (np.linalg.norm(emb) + 1e-9)


@lru_cache(maxsize=2)
def get_encoder(kind: str = "resemblyzer", model_id: str | None = None):
    if kind == "resemblyzer":
        return ResemblyzerEncoder()
    if kind == "wavlm":
        return WavLMEncoder(model_id or DEFAULT_WAVLM)
    raise MetricInputError(f"unknown speaker encoder {kind!r}; choose one of {', '.join(ENCODERS)}")


def _check(wave: np.ndarray, label: str) -> np.ndarray:
    if len(wave) < MIN_SECONDS * SR:
        raise MetricInputError(f"{label}: {len(wave) / SR:.2f} s is too short for a speaker embedding "
                               f"(needs {MIN_SECONDS} s)")
    return wave


def embed(items: Sequence, encoder=None) -> np.ndarray:
    """(n, d) unit embeddings of paths or 16 kHz arrays."""
    encoder = encoder or get_encoder()
    return np.stack([encoder.embed(_check(as_wave(it, SR), str(it) if isinstance(it, (str, Path)) else f"clip {i}"))
                     for i, it in enumerate(items)])


def real_vs_real(ref_embs: np.ndarray, ref_waves: Sequence[np.ndarray] | None = None, encoder=None) -> float | None:
    """The same-speaker ceiling: mean pairwise cosine between reference clips; with one clip,
    the cosine between its two halves (each must be long enough to embed)."""
    if len(ref_embs) >= 2:
        pairs = [float(a @ b) for a, b in itertools.combinations(ref_embs, 2)]
        return float(np.mean(pairs))
    if ref_waves and len(ref_waves[0]) >= 2 * MIN_SECONDS * SR:
        encoder = encoder or get_encoder()
        half = len(ref_waves[0]) // 2
        return float(encoder.embed(ref_waves[0][:half]) @ encoder.embed(ref_waves[0][half:]))
    return None


def similarity(generated: Sequence, references: Sequence, encoder=None) -> dict:
    """Cosine of each generated clip against the centroid of the reference clips."""
    if not references:
        raise MetricInputError("speaker similarity needs at least one reference clip")
    encoder = encoder or get_encoder()
    ref_waves = [_check(as_wave(r, SR), str(r)) for r in references]
    ref_embs = np.stack([encoder.embed(w) for w in ref_waves])
    centroid = ref_embs.mean(axis=0)
    centroid /= np.linalg.norm(centroid) + 1e-9
    gen_embs = embed(generated, encoder) if len(generated) else np.zeros((0, centroid.size))
    per = [float(e @ centroid) for e in gen_embs]
    return {
        "encoder": encoder.name,
        "per_clip": per,
        "mean": float(np.mean(per)) if per else None,
        "real_vs_real": real_vs_real(ref_embs, ref_waves, encoder),
        "consistency": consistency(per),
    }


def consistency(per_clip: Sequence[float]) -> dict | None:
    """Spread of speaker similarity over N generations of one line (lower std = steadier voice)."""
    if len(per_clip) < 2:
        return None
    v = np.asarray(per_clip, dtype=np.float64)
    return {"n": int(v.size), "std": float(v.std(ddof=1)), "range": float(v.max() - v.min()),
            "min": float(v.min())}
