"""Tokens from audio: semantic tokens (HuBERT base layer-9 features at 16 kHz -> LSTM quantizer
-> argmax over Bark's 10000) and EnCodec 6 kbps codes (8 x T at 75 Hz) from 24 kHz audio.

The quantizer loads the released `quantifier_hubert_base_ls960_14.pth` format (a torch state
dict: `lstm.*` 2-layer LSTM 768->1024, optional `intermediate` Linear 1024->4096 in the v1 layout,
`fc` Linear -> 10000; an optional `.info` JSON inside the zip). `tiny` uses a small random HuBERT
and quantizer, seeded, so runs repeat offline.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models import constants as C
from models.errors import MissingWeightsError, ModelInputError
from models.catalog import hub_cache
from models.presets import PRESETS, Preset, is_tiny, preset_for, require_local

TINY_HUBERT_SEED = 4321


class Quantizer(nn.Module):
    """HuBERT features (B, T, D) -> log-probabilities over semantic tokens (B, T, 10000)."""

    def __init__(self, input_size: int = C.HUBERT_DIM, hidden_size: int = C.QUANTIZER_HIDDEN,
                 output_size: int = C.SEMANTIC_VOCAB_SIZE, intermediate: int | None = None):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, 2, batch_first=True)
        self.intermediate = nn.Linear(hidden_size, intermediate) if intermediate else None
        self.fc = nn.Linear(intermediate or hidden_size, output_size)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x, _ = self.lstm(feats)
        if self.intermediate is not None:
            x = self.intermediate(x)
        return torch.log_softmax(self.fc(x), dim=-1)

    @classmethod
    def from_state_dict(cls, state: dict, source: str = "quantizer") -> "Quantizer":
        """Sizes and layout (v0 without, v1 with `intermediate`) are read from the weights."""
        try:
            input_size = state["lstm.weight_ih_l0"].shape[1]
            hidden = state["lstm.weight_hh_l0"].shape[1]
            inter = state["intermediate.weight"].shape[0] if "intermediate.weight" in state else None
            out = state["fc.weight"].shape[0]
        except (KeyError, AttributeError, IndexError) as exc:
            raise ModelInputError(f"{source}: not a HuBERT quantizer checkpoint (missing {exc})") from exc
        model = cls(input_size, hidden, out, inter)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelInputError(f"{source}: weights do not fit the quantizer: {str(exc).splitlines()[0]}") from exc
        return model.eval()


def load_quantizer(path: str | Path) -> Quantizer:
    path = Path(path)
    if not path.is_file():
        raise ModelInputError(f"quantizer checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is one clear error
        raise ModelInputError(f"quantizer checkpoint {path.name}: unreadable ({exc})".splitlines()[0]) from exc
    if not isinstance(state, dict):
        raise ModelInputError(f"quantizer checkpoint {path.name}: expected a state dict, got {type(state).__name__}")
    return Quantizer.from_state_dict(state, source=f"quantizer checkpoint {path.name}")


# --- tiny parts ------------------------------------------------------------------------------------

def tiny_hubert_config():
    """HuBERT-shaped (hop 320 at 16 kHz, >= 9 layers), tiny widths."""
    from transformers import HubertConfig

    return HubertConfig(hidden_size=32, num_hidden_layers=C.HUBERT_LAYER, num_attention_heads=2,
                        intermediate_size=64, conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2),
                        conv_kernel=(10, 3, 3, 3, 3, 2, 2), num_conv_pos_embeddings=16,
                        num_conv_pos_embedding_groups=4, feat_extract_norm="group", do_stable_layer_norm=False)


@functools.lru_cache(maxsize=1)
def _tiny_parts():
    from transformers import HubertModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_HUBERT_SEED)
        hubert = HubertModel(tiny_hubert_config()).eval()
        quantizer = Quantizer(input_size=32, hidden_size=64).eval()
    return hubert, quantizer


# --- semantic tokens ---------------------------------------------------------------------------------

@dataclass
class SemanticTokenizer:
    hubert: nn.Module
    quantizer: Quantizer
    model_id: str               # names the pair in caches: "<hubert>+<quantizer file>"

    @property
    def device(self) -> torch.device:
        return next(self.hubert.parameters()).device

    @torch.no_grad()
    def __call__(self, wav_16k: np.ndarray) -> np.ndarray:
        """(samples,) float mono at 16 kHz -> (S,) int64 semantic tokens (~50 per second)."""
        wav = torch.as_tensor(np.asarray(wav_16k, dtype=np.float32)).reshape(1, -1).to(self.device)
        if wav.shape[1] < 400:
            raise ModelInputError(f"audio is {wav.shape[1] / C.HUBERT_SAMPLE_RATE:.3f} s; too short for HuBERT")
        hidden = self.hubert(wav, output_hidden_states=True).hidden_states[C.HUBERT_LAYER]  # (1, T, D)
        return self.quantizer(hidden).argmax(-1)[0].cpu().numpy().astype(np.int64)


def load_semantic_tokenizer(model: str = "tiny", device="cpu") -> SemanticTokenizer:
    """HuBERT + quantizer for the preset that goes with `model` (tiny, small, large, hub id)."""
    if is_tiny(model):
        hubert, quantizer = _tiny_parts()
        return SemanticTokenizer(hubert.to(device), quantizer.to(device), "tiny-hubert+tiny-quantizer")
    from transformers import HubertModel

    preset = preset_for(model)
    require_local(model, ("hubert", "quantizer"))
    try:
        hubert = HubertModel.from_pretrained(preset.hubert, cache_dir=str(hub_cache())).eval()
    except OSError as exc:
        raise MissingWeightsError(preset.hubert, preset.name if preset.name in PRESETS else None) from exc
    quantizer = load_quantizer(_hub_file(preset.quantizer_repo, preset.quantizer_file, preset))
    return SemanticTokenizer(hubert.to(device), quantizer.to(device),
                             f"{preset.hubert}+{preset.quantizer_repo}/{preset.quantizer_file}")


def _hub_file(repo: str, filename: str, preset: Preset) -> str:
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(repo, filename, cache_dir=str(hub_cache()))
    except Exception as exc:  # noqa: BLE001 - offline, missing, or network errors
        raise MissingWeightsError(f"{repo}/{filename}", preset.name if preset.name in PRESETS else None) from exc


def load_codec(model: str = "tiny", device="cpu"):
    """EnCodec 24 kHz for `model`: tiny's own random codec, else facebook/encodec_24khz (the same
    weights Bark's checkpoints carry as `codec_model`). Returns (codec, codec id)."""
    if is_tiny(model):
        import copy

        from models.presets import _tiny_template

        return copy.deepcopy(_tiny_template().codec_model).to(device), "tiny-codec"
    from transformers import EncodecModel

    preset = preset_for(model)
    require_local(model, ("codec",))
    try:
        codec = EncodecModel.from_pretrained(preset.codec, cache_dir=str(hub_cache())).eval()
    except OSError as exc:
        raise MissingWeightsError(preset.codec, preset.name if preset.name in PRESETS else None) from exc
    return codec.to(device), preset.codec


# --- acoustic codes ----------------------------------------------------------------------------------

@torch.no_grad()
def encode_codes(codec, wav_24k: np.ndarray) -> np.ndarray:
    """(samples,) float mono at 24 kHz -> (8, T) int64 EnCodec codes at 6 kbps (75 Hz).
    Always bandwidth=6.0: transformers falls back to 1.5 kbps (2 codebooks) without it."""
    device = next(codec.parameters()).device
    wav = torch.as_tensor(np.asarray(wav_24k, dtype=np.float32)).reshape(1, 1, -1).to(device)  # (B, channels, N)
    if wav.shape[-1] < 320:
        raise ModelInputError(f"audio is {wav.shape[-1] / C.SAMPLE_RATE:.3f} s; too short for EnCodec")
    out = codec.encode(wav, bandwidth=C.CODEC_BANDWIDTH)
    codes = torch.cat(list(out.audio_codes[:, 0]), dim=-1)      # (chunks, B, n_q, T) -> (n_q, chunks * T)
    if codes.shape[0] != C.N_FINE_CODEBOOKS:
        raise ModelInputError(f"codec gave {codes.shape[0]} codebooks at 6 kbps, expected {C.N_FINE_CODEBOOKS}")
    return codes.cpu().numpy().astype(np.int64)


# --- audio files -------------------------------------------------------------------------------------

def read_audio(path: str | Path, sample_rate: int, start: float | None = None,
               end: float | None = None) -> np.ndarray:
    """Mono float32 at `sample_rate` (soxr HQ resampling), optionally a [start, end) span in seconds."""
    import soundfile as sf
    import soxr

    path = Path(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelInputError(f"{path.name}: cannot read audio ({exc})".splitlines()[0]) from exc
    wav = data.mean(axis=1)
    if start is not None or end is not None:
        a = int(round((start or 0.0) * sr))
        b = len(wav) if end is None else int(round(end * sr))
        wav = wav[a:b]
    if sr != sample_rate:
        wav = soxr.resample(wav, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(wav, dtype=np.float32)


def tokenize_audio(path: str | Path, semantic: SemanticTokenizer, codec, start: float | None = None,
                   end: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(semantic (S,), codes (8, T)) of a clip or a span of it."""
    sem = semantic(read_audio(path, C.HUBERT_SAMPLE_RATE, start, end))
    codes = encode_codes(codec, read_audio(path, C.SAMPLE_RATE, start, end))
    return sem, codes


def cache_key(clip_sha256: str, model_ids: str) -> str:
    """File stem for a clip's tokens under one pair of token models."""
    return f"{clip_sha256[:32]}-{hashlib.sha256(model_ids.encode()).hexdigest()[:12]}"


def save_tokens(path: str | Path, semantic: np.ndarray, codes: np.ndarray, meta: dict | None = None) -> Path:
    """Write atomically: a half-written cache file never looks finished."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, semantic=np.asarray(semantic, np.int64), codes=np.asarray(codes, np.int64),
             meta=np.array(json.dumps(meta or {})))
    os.replace(tmp, path)
    return path


def load_tokens(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            sem, codes = data["semantic"], data["codes"]
    except Exception as exc:  # noqa: BLE001
        raise ModelInputError(f"token file {path.name}: unreadable ({exc})".splitlines()[0]) from exc
    if sem.ndim != 1 or codes.ndim != 2 or codes.shape[0] != C.N_FINE_CODEBOOKS:
        raise ModelInputError(f"token file {path.name}: wrong shapes {sem.shape} / {codes.shape}")
    return sem.astype(np.int64), codes.astype(np.int64)
