"""Dataset throughput: prepare (audio seconds per wall second) and tokenize.

prepare = the curation room's real `studio.datasets.prepare.prepare_dataset` on a temporary
workspace (decode, silero VAD, segment planning, soxr resampling, WADA-SNR, BS.1770 loudness,
content-addressed writes, SQLite rows), over real speech from the shared fixtures.
tokenize = models.tokens' semantic tokenizer (HuBERT -> quantizer) and EnCodec at 6 kbps, with
random weights of the real shapes (HuBERT base, 2-layer 1024 LSTM quantizer, EnCodec 24 kHz).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.measure import Timer, load_average

SPEECH = Path(os.environ.get("BARK_STUDIO_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "fixtures" / "speech"


def _speech(seconds: float) -> tuple[np.ndarray, int]:
    """Real speech (the fixture clips, end to end, repeated) of about `seconds`."""
    clips = sorted(SPEECH.glob("*.wav"))
    if not clips:
        raise FileNotFoundError(f"no speech fixtures in {SPEECH}")
    parts, sr = [], None
    for p in clips:
        x, sr_p = sf.read(p, dtype="float32", always_2d=False)
        if sr is None:
            sr = sr_p
        if sr_p == sr:
            parts.append(x if x.ndim == 1 else x.mean(axis=1))
    one = np.concatenate(parts)
    reps = max(1, int(np.ceil(seconds * sr / one.size)))
    return np.tile(one, reps)[: int(seconds * sr)], sr


def prepare_throughput(audio_seconds: float = 60.0, clip_seconds: float = 12.0) -> dict:
    from studio.datasets import store
    from studio.datasets.importer import import_paths
    from studio.datasets.prepare import prepare_dataset
    from studio.workspace import Workspace

    x, sr = _speech(audio_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = []
        step = int(clip_seconds * sr)
        for i in range(0, x.size, step):
            f = tmp / "in" / f"clip{i // step:03d}.wav"
            f.parent.mkdir(parents=True, exist_ok=True)
            sf.write(f, x[i : i + step], sr)
            files.append(f)
        ws = Workspace.resolve(tmp / "home")
        store.create_dataset(ws.db, "bench")
        import_paths(ws, "bench", files)
        with Timer() as t:
            report = prepare_dataset(ws, "bench")
    return {"audio_seconds": x.size / sr, "wall_s": t.seconds, "x_real_time": (x.size / sr) / t.seconds,
            "segments": report.get("segments"), "clips": len(files), "load_average": load_average()}


def tokenize_throughput(audio_seconds: float = 20.0, real_shapes: bool = True) -> dict:
    import torch
    from transformers import EncodecConfig, EncodecModel, HubertConfig, HubertModel

    from models.tokens import Quantizer, SemanticTokenizer, encode_codes, load_codec, load_semantic_tokenizer

    x, sr = _speech(audio_seconds)
    import soxr

    x16 = soxr.resample(x, sr, 16_000, quality="HQ")
    x24 = soxr.resample(x, sr, 24_000, quality="HQ")
    if real_shapes:
        torch.manual_seed(0)
        tok = SemanticTokenizer(HubertModel(HubertConfig()).eval(), Quantizer().eval(), "bench-random-hubert-base")
        codec = EncodecModel(EncodecConfig()).eval()
    else:
        tok, (codec, _) = load_semantic_tokenizer("tiny"), load_codec("tiny")
    with Timer() as ts:
        sem = tok(x16)
    with Timer() as tc:
        codes = encode_codes(codec, x24)
    secs = x.size / sr
    return {"audio_seconds": secs, "semantic_wall_s": ts.seconds, "codec_wall_s": tc.seconds,
            "x_real_time": secs / (ts.seconds + tc.seconds), "semantic_tokens": int(sem.size),
            "codec_frames": int(codes.shape[1]), "shapes": "HuBERT base + EnCodec 24 kHz" if real_shapes else "tiny"}
