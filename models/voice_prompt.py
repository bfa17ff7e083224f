"""Voice prompts: the `.npz` BarkProcessor accepts (semantic_prompt 1-D, coarse_prompt 2 x T,
fine_prompt 8 x T, raw codes without offsets), made from a clip or a 5-12 s span of one.

A prompt conditions all three stages without training: the baseline a fine-tune must beat.
Bark's built-in voices (`v2/en_speaker_6`, ...) are the `.npy` prompts its hub repos ship, listed
in `speaker_embeddings_path.json`: `builtin(name)` reads them from the local hub cache.
Importing this module never loads torch (the studio reads prompts too).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import catalog
from models import constants as C
from models.errors import MissingWeightsError, ModelInputError

KEYS = ("semantic_prompt", "coarse_prompt", "fine_prompt")


@dataclass
class VoicePrompt:
    semantic: np.ndarray   # (S,) int64 in 0..9999
    fine: np.ndarray       # (8, T) int64 in 0..1023; coarse is its first two rows

    @property
    def coarse(self) -> np.ndarray:
        return self.fine[: C.N_COARSE_CODEBOOKS]

    @property
    def seconds(self) -> float:
        return self.fine.shape[1] / C.CODEC_FRAME_RATE

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {"semantic_prompt": self.semantic.astype(np.int64),
                "coarse_prompt": self.coarse.astype(np.int64),
                "fine_prompt": self.fine.astype(np.int64)}

    def as_history(self, device="cpu") -> dict:
        """The `history_prompt` dict transformers' Bark generate takes (torch tensors)."""
        import torch

        return {k: torch.from_numpy(v).to(device) for k, v in self.as_arrays().items()}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **self.as_arrays())
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)
        return path


def from_arrays(arrays: dict, source: str = "voice prompt") -> VoicePrompt:
    """Validate shapes and ranges; every error names `source` and what is wrong."""
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise ModelInputError(f"{source}: missing {', '.join(missing)} (a Bark voice prompt has {', '.join(KEYS)})")
    sem, coarse, fine = (np.asarray(arrays[k]) for k in KEYS)
    for key, arr in zip(KEYS, (sem, coarse, fine)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ModelInputError(f"{source}: {key} must hold integer codes, got {arr.dtype}")
    if sem.ndim != 1 or sem.size == 0:
        raise ModelInputError(f"{source}: semantic_prompt must be 1-D and non-empty, got shape {sem.shape}")
    if coarse.ndim != 2 or coarse.shape[0] != C.N_COARSE_CODEBOOKS:
        raise ModelInputError(f"{source}: coarse_prompt must be {C.N_COARSE_CODEBOOKS} x T, got shape {coarse.shape}")
    if fine.ndim != 2 or fine.shape[0] != C.N_FINE_CODEBOOKS:
        raise ModelInputError(f"{source}: fine_prompt must be {C.N_FINE_CODEBOOKS} x T, got shape {fine.shape}")
    if fine.shape[1] == 0 or coarse.shape[1] != fine.shape[1]:
        raise ModelInputError(f"{source}: coarse_prompt has {coarse.shape[1]} frames and fine_prompt "
                              f"{fine.shape[1]}; they must match and be non-empty")
    if not np.array_equal(coarse, fine[: C.N_COARSE_CODEBOOKS]):
        raise ModelInputError(f"{source}: coarse_prompt must equal the first two rows of fine_prompt")
    if sem.min() < 0 or sem.max() >= C.SEMANTIC_VOCAB_SIZE:
        raise ModelInputError(f"{source}: semantic_prompt values must lie in 0..{C.SEMANTIC_VOCAB_SIZE - 1}")
    if fine.min() < 0 or fine.max() >= C.CODEBOOK_SIZE:
        raise ModelInputError(f"{source}: fine_prompt codes must lie in 0..{C.CODEBOOK_SIZE - 1} (raw, no offsets)")
    return VoicePrompt(semantic=sem.astype(np.int64), fine=fine.astype(np.int64))


def load(path: str | Path) -> VoicePrompt:
    path = Path(path)
    if not path.is_file():
        raise ModelInputError(f"voice prompt {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear error
        raise ModelInputError(f"voice prompt {path.name}: not a readable .npz ({exc})".splitlines()[0]) from exc
    return from_arrays(arrays, source=f"voice prompt {path.name}")


def from_tokens(semantic: np.ndarray, codes: np.ndarray, source: str = "voice prompt") -> VoicePrompt:
    """A prompt from a clip's semantic tokens (S,) and EnCodec codes (8, T)."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] != C.N_FINE_CODEBOOKS:
        raise ModelInputError(f"{source}: codes must be {C.N_FINE_CODEBOOKS} x T, got shape {codes.shape}")
    return from_arrays({"semantic_prompt": np.asarray(semantic), "coarse_prompt": codes[: C.N_COARSE_CODEBOOKS],
                        "fine_prompt": codes}, source)


def from_clip_tokens(semantic: np.ndarray, codes: np.ndarray, source: str = "clip") -> VoicePrompt:
    """A prompt from a whole tokenized clip, the span `voice create` takes when none is given (the
    first 12 s; a clip under 5 s is refused the same way)."""
    codes = np.asarray(codes)
    _, end = check_span(codes.shape[-1] / C.CODEC_FRAME_RATE, None, None, source)
    n_frames = int(round(end * C.CODEC_FRAME_RATE))
    n_semantic = int(round(end * C.SEMANTIC_RATE_HZ))
    return from_tokens(np.asarray(semantic)[:n_semantic], codes[:, :n_frames], source)


def check_span(duration: float, start: float | None, end: float | None, source: str = "clip") -> tuple[float, float]:
    """The (start, end) seconds of a voice span: whole clip by default; must be 5-12 s and inside."""
    s = 0.0 if start is None else float(start)
    e = duration if end is None else float(end)
    if s < 0 or e > duration + 1e-6 or e <= s:
        raise ModelInputError(f"{source}: span {s:.2f}-{e:.2f} s is outside the clip (0-{duration:.2f} s)")
    if start is None and end is None and e - s > C.VOICE_MAX_SECONDS:
        e = s + C.VOICE_MAX_SECONDS  # a long clip: its first 12 s
    length = e - s
    if length < C.VOICE_MIN_SECONDS - 1e-6 or length > C.VOICE_MAX_SECONDS + 1e-6:
        raise ModelInputError(f"{source}: a voice prompt needs {C.VOICE_MIN_SECONDS:g}-{C.VOICE_MAX_SECONDS:g} s "
                              f"of speech, the span is {length:.2f} s")
    return s, e


# --- Bark's built-in voices ----------------------------------------------------------------------

def builtin(name: str, model: str = "small") -> VoicePrompt:
    """A built-in voice (`v2/en_speaker_6`, `announcer`, ...) from the Bark repo in the hub cache.
    Both Bark repos ship the same prompts: `model`'s repo is read first, then the other preset's."""
    name = str(name).strip()
    repos = [catalog.preset_for(model).bark] + [catalog.PRESETS[p].bark for p in catalog.REAL_PRESETS]
    for repo in dict.fromkeys(r for r in repos if r != catalog.TINY and not catalog.looks_like_path(r)):
        index, folder = catalog.voice_index(repo), catalog.voices_folder(repo)
        if index is None or name not in index:
            continue
        paths = {k: folder / index[name][k] for k in KEYS}
        if not all(p.is_file() for p in paths.values()):
            continue
        try:
            arrays = {k: np.load(p, allow_pickle=False) for k, p in paths.items()}
        except (OSError, ValueError) as exc:
            raise ModelInputError(f"built-in voice {name!r}: unreadable prompt file ({exc})".splitlines()[0]) from exc
        return from_arrays(arrays, source=f"built-in voice {name!r}")
    known = catalog.builtin_voices(model)
    if known:
        raise ModelInputError(f"no built-in voice named {name!r} (Bark ships {known[0]} ... {known[-1]}, "
                              f"e.g. v2/en_speaker_6)")
    target = model if model in catalog.PRESETS and model != catalog.TINY else "small"
    raise MissingWeightsError(catalog.preset_for(target).bark, target, message=(
        f"built-in voice {name!r} is not downloaded: Bark's speaker prompts are not in {catalog.hub_cache()}; "
        f"run `{catalog.DOWNLOAD_HINT.format(preset=target)}`"))
