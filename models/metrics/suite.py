"""Everything measured on one output, with the models loaded once for a whole eval or sweep:
metrics against references (WER, speaker similarity, prosody) and descriptors (always)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from models.metrics import descriptors, prosody, speaker, wer


class MetricSuite:
    """asr: a Whisper size for models/asr.py (None: no WER); speaker_refs: real clips of the
    target voice (None: no speaker similarity); prosody references are given per clip."""

    def __init__(self, *, asr: str | None = None, speaker_refs: Sequence[str | Path] = (),
                 encoder: str = "resemblyzer", encoder_model: str | None = None, f0_method: str = "pyin"):
        self.asr = wer.WhisperASR(asr) if asr else None
        self.f0_method = f0_method
        self.encoder = speaker.get_encoder(encoder, encoder_model) if speaker_refs else None
        self.centroid = None
        self.speaker_refs = [str(p) for p in speaker_refs]
        if speaker_refs:
            ref = speaker.similarity([], self.speaker_refs, self.encoder)
            self.real_vs_real = ref["real_vs_real"]
            embs = speaker.embed(self.speaker_refs, self.encoder)
            c = embs.mean(axis=0)
            self.centroid = c / (float((c ** 2).sum()) ** 0.5 + 1e-9)

    @property
    def names(self) -> dict:
        return {"asr_model": self.asr.name if self.asr else None,
                "speaker_encoder": self.encoder.name if self.encoder else None, "f0_method": self.f0_method}

    def measure(self, path: str | Path, text: str | None = None,
                prosody_ref: str | Path | None = None) -> tuple[dict, dict]:
        """(metrics, descriptors) of one clip."""
        metrics: dict = {}
        transcript = None
        if self.asr is not None:
            transcript = self.asr.transcribe([path])[0]
            metrics["transcript"] = transcript
            if text:
                metrics["wer"] = wer.utterance_wer(text, transcript)["wer"]
        if self.centroid is not None:
            metrics["speaker_similarity"] = float(speaker.embed([path], self.encoder)[0] @ self.centroid)
        if prosody_ref is not None:
            p = prosody.compare(path, prosody_ref, self.f0_method)
            metrics.update({k: p[k] for k in ("f0_rmse_cents", "f0_corr", "vuv_error")})
        desc = descriptors.describe(path, text, transcript, self.f0_method)
        metrics["duration_s"] = desc["duration_s"]
        if desc.get("speaking_rate_wps") is not None:
            metrics["speaking_rate_wps"] = desc["speaking_rate_wps"]
        return metrics, desc

    def floors(self, real_audio: Sequence[str | Path] = (), real_texts: Sequence[str] = ()) -> dict:
        """The ceilings and floors to read the numbers against: real recordings' WER through the
        same ASR, and the real-vs-real same-speaker similarity."""
        out = {**self.names, "wer_floor": None, "real_vs_real_similarity": getattr(self, "real_vs_real", None)}
        if self.asr is not None and real_audio:
            out["wer_floor"] = wer.mean_wer(list(real_texts), self.asr.transcribe(list(real_audio)))["mean_wer"]
        return out
