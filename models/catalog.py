"""What each model preset downloads, and whether it is on this machine. Never imports torch.

    components("small")      # [Component(bark), Component(voices), hubert, quantizer, codec, whisper]
    state("small")           # per component: present, missing files, bytes on disk, where it lives
    missing_line("small")    # None, or one line: what is missing and `bark-studio models download small`
    builtin_voices("small")  # ["v2/en_speaker_0", ...] from the cached speaker_embeddings_path.json

The studio (which never loads torch) calls these at submit time and in its model-status view;
models/presets.py reads its Preset table from here, so each hub id is written down once.
Hub files live in the Hugging Face cache (HF_HUB_CACHE / HF_HOME); Whisper's `.pt` checkpoints
live in openai-whisper's download root (BARK_STUDIO_WHISPER_ROOT, else XDG_CACHE_HOME/whisper).
Sizes are the hub's listed sizes, for the README and the UI; they are approximate.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

TINY = "tiny"
DOWNLOAD_HINT = "bark-studio models download {preset}"

# --- the presets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """Everything one preset needs, by hub id (the `models download` list)."""
    name: str
    bark: str                        # Bark checkpoint (also holds the text tokenizer and built-in voices)
    hubert: str                      # HuBERT base for semantic tokens from audio
    quantizer_repo: str              # hub repo holding the 10k-cluster quantizer
    quantizer_file: str              # file name inside it
    codec: str                       # EnCodec 24 kHz (Bark's own codec_model is the same weights)
    whisper: str = "base"            # openai-whisper size for transcripts and WER


_HELPERS = dict(hubert="facebook/hubert-base-ls960", quantizer_repo="GitMylo/bark-voice-cloning",
                quantizer_file="quantifier_hubert_base_ls960_14.pth", codec="facebook/encodec_24khz",
                whisper="base")

PRESETS: dict[str, Preset] = {
    TINY: Preset(TINY, TINY, TINY, TINY, TINY, TINY, "test-random"),
    "small": Preset("small", "suno/bark-small", **_HELPERS),
    "large": Preset("large", "suno/bark", **_HELPERS),
}
REAL_PRESETS = ("small", "large")


def looks_like_path(name: str) -> bool:
    """Hub ids are `owner/name`; anything else with a slash, or that exists on disk, is a folder."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or Path(name).expanduser().exists()


def preset_for(name_or_path: str) -> Preset:
    """The preset whose helper models (HuBERT, quantizer, codec, Whisper) go with this Bark model.

    Any model other than `tiny` uses the real English HuBERT + quantizer, EnCodec and Whisper base."""
    name = str(name_or_path).strip()
    if name in PRESETS:
        return PRESETS[name]
    for p in PRESETS.values():
        if p.bark == name:
            return p
    return Preset(name, name, **_HELPERS)


# --- the files of each component -------------------------------------------------------------

# A requirement is a tuple of alternative file names: any one of them present satisfies it
# (a repo may serve its weights as safetensors, as a pickle, or both).
BARK_FILES = (("config.json",), ("generation_config.json",), ("pytorch_model.bin", "model.safetensors"),
              ("tokenizer.json",), ("tokenizer_config.json",), ("special_tokens_map.json",), ("vocab.txt",))
VOICES_INDEX = "speaker_embeddings_path.json"
HUBERT_FILES = (("config.json",), ("pytorch_model.bin", "model.safetensors"))
CODEC_FILES = (("config.json",), ("model.safetensors", "pytorch_model.bin"))
PROMPT_PARTS = ("semantic_prompt", "coarse_prompt", "fine_prompt")

MB = 1_000_000
# Sizes as the hub lists them (bytes, approximate).
_BARK_BYTES = {"suno/bark-small": 1_680 * MB + 4 * MB, "suno/bark": 4_490 * MB + 4 * MB}
_VOICES_BYTES = 11 * MB          # 783 small .npy prompt files (261 voices) + the 61 kB index
_HUBERT_BYTES = 378 * MB
_QUANTIZER_BYTES = 104 * MB      # 2-layer LSTM 768->1024 + Linear 1024->10000, fp32
_CODEC_BYTES = 93 * MB
# openai-whisper sizes: checkpoint file name in the download root, and its size.
WHISPER_FILES = {
    "tiny.en": ("tiny.en.pt", 75 * MB), "tiny": ("tiny.pt", 75 * MB),
    "base.en": ("base.en.pt", 145 * MB), "base": ("base.pt", 145 * MB),
    "small.en": ("small.en.pt", 483 * MB), "small": ("small.pt", 483 * MB),
    "medium.en": ("medium.en.pt", 1_530 * MB), "medium": ("medium.pt", 1_530 * MB),
    "large-v1": ("large-v1.pt", 3_090 * MB), "large-v2": ("large-v2.pt", 3_090 * MB),
    "large-v3": ("large-v3.pt", 3_090 * MB), "large": ("large-v3.pt", 3_090 * MB),
    "large-v3-turbo": ("large-v3-turbo.pt", 1_620 * MB), "turbo": ("large-v3-turbo.pt", 1_620 * MB),
}


@dataclass(frozen=True)
class Component:
    key: str                                   # bark, voices, hubert, quantizer, codec, whisper
    label: str                                 # what a user reads
    repo: str                                  # hub repo id, or the Whisper size
    files: tuple[tuple[str, ...], ...]         # requirements (alternatives); voices add their index's files
    approx_bytes: int
    source: str = "hf"                         # "hf" (the hub cache) or "whisper" (openai's download root)
    patterns: tuple[str, ...] = field(default=())   # snapshot_download allow_patterns (voices)

    @property
    def what(self) -> str:
        return f"{self.label} ({self.repo})"


def components(preset: str) -> list[Component]:
    """Every component a preset uses, in download order. `tiny` (and folders) need nothing."""
    name = str(preset).strip()
    if name == TINY:
        return []
    p = preset_for(name)
    out = []
    if not looks_like_path(p.bark):
        out += [Component("bark", "Bark", p.bark, BARK_FILES, _BARK_BYTES.get(p.bark, _BARK_BYTES["suno/bark"])),
                Component("voices", "Bark built-in voices", p.bark, ((VOICES_INDEX,),), _VOICES_BYTES,
                          patterns=(VOICES_INDEX, "speaker_embeddings/*"))]
    wfile, wbytes = WHISPER_FILES[p.whisper]
    out += [Component("hubert", "HuBERT base", p.hubert, HUBERT_FILES, _HUBERT_BYTES),
            Component("quantizer", "semantic quantizer", p.quantizer_repo, ((p.quantizer_file,),), _QUANTIZER_BYTES),
            Component("codec", "EnCodec 24 kHz", p.codec, CODEC_FILES, _CODEC_BYTES),
            Component("whisper", "Whisper", p.whisper, ((wfile,),), wbytes, source="whisper")]
    return out


# --- where things live ------------------------------------------------------------------------

def hub_cache() -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                     os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def whisper_root() -> Path:
    """Where openai-whisper keeps `<size>.pt` (its own default unless BARK_STUDIO_WHISPER_ROOT is set)."""
    if os.environ.get("BARK_STUDIO_WHISPER_ROOT"):
        return Path(os.environ["BARK_STUDIO_WHISPER_ROOT"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "whisper"


def whisper_file(size: str) -> Path | None:
    """The local checkpoint of a real Whisper size, or None when it is not downloaded."""
    if size not in WHISPER_FILES:
        return None
    path = whisper_root() / WHISPER_FILES[size][0]
    return path if path.is_file() else None


def cached_file(repo: str, filename: str) -> Path | None:
    """A file of a hub repo in the local cache (main's snapshot), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=str(hub_cache()))
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def _voice_files(repo: str) -> list[str] | None:
    """Every prompt file the repo's speaker_embeddings_path.json names (None: no index cached)."""
    index = voice_index(repo)
    if index is None:
        return None
    return [entry[k] for entry in index.values() for k in PROMPT_PARTS]


def voices_folder(repo: str) -> Path | None:
    """The snapshot folder holding the repo's cached speaker index: prompt paths are relative to it
    (one hub-cache lookup instead of one per prompt file)."""
    index = cached_file(repo, VOICES_INDEX)
    return None if index is None else index.parent


def voice_index(repo: str) -> dict[str, dict[str, str]] | None:
    """{voice name: {semantic_prompt: path, coarse_prompt: path, fine_prompt: path}} of a Bark repo."""
    path = cached_file(repo, VOICES_INDEX)
    if path is None:
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {name: entry for name, entry in raw.items()
            if isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in PROMPT_PARTS)}


def builtin_voices(model: str = "small") -> list[str]:
    """Bark's built-in voice names (`v2/en_speaker_6`, ...) whose prompt files are all cached, sorted."""
    p = preset_for(model)
    if p.bark == TINY or looks_like_path(p.bark):
        return []
    index, folder = voice_index(p.bark) or {}, voices_folder(p.bark)
    return sorted(name for name, entry in index.items()
                  if all((folder / entry[k]).is_file() for k in PROMPT_PARTS))


def is_builtin_voice_name(name: str) -> bool:
    """Names Bark ships (`v2/en_speaker_6`, `announcer`, `de_speaker_0`): never a user's voice name."""
    import re

    return bool(re.fullmatch(r"(v2/)?([a-z]{2}_speaker_\d+|announcer)", str(name).strip()))


# --- state -------------------------------------------------------------------------------------

def component_state(c: Component) -> dict:
    """{key, label, repo, present, missing, bytes, approx_bytes, where} for one component."""
    missing: list[str] = []
    found: list[Path] = []
    if c.source == "whisper":
        path = whisper_file(c.repo)
        where = str(whisper_root())
        (found.append(path) if path else missing.append(WHISPER_FILES[c.repo][0]))
    else:
        where = str(hub_cache() / ("models--" + c.repo.replace("/", "--")))
        for alternatives in c.files:
            hit = next((p for p in (cached_file(c.repo, f) for f in alternatives) if p is not None), None)
            (found.append(hit) if hit else missing.append(alternatives[0]))
        if c.key == "voices" and not missing:
            files, folder = _voice_files(c.repo) or [], voices_folder(c.repo)
            found += [folder / f for f in files if (folder / f).is_file()]
            absent = [f for f in files if not (folder / f).is_file()]
            if absent:
                missing.append(f"{len(absent)} of {len(files)} prompt files")
    return {"key": c.key, "label": c.label, "repo": c.repo, "present": not missing, "missing": missing,
            "bytes": sum(p.stat().st_size for p in found), "approx_bytes": c.approx_bytes, "where": where}


def state(preset: str) -> list[dict]:
    """Per component of `preset`: present or missing (and which files), size on disk, where it lives."""
    return [component_state(c) for c in components(preset)]


# Which components each kind of work reads (so a submit checks only what its job will load).
JOB_NEEDS: dict[str, tuple[str, ...]] = {
    "generate": ("bark",), "train": ("bark",), "sweep": ("bark",), "listening": ("bark",),
    "tokenize": ("hubert", "quantizer", "codec"), "voice": ("hubert", "quantizer", "codec"),
    "transcribe": ("whisper",), "eval": ("bark", "whisper"), "builtin-voice": ("voices",),
}


def missing_line(preset: str, only: tuple[str, ...] | None = None) -> str | None:
    """None when everything `preset` uses is local; else one line naming what is missing and the
    command that fetches it. `only` limits the check to some component keys (e.g. ("bark",))."""
    name = str(preset).strip()
    gaps = [s for s in state(name) if not s["present"] and (only is None or s["key"] in only)]
    if not gaps:
        return None
    what = "; ".join(f"{s['label']} {s['repo']}" + ("" if s["bytes"] == 0 else f" ({', '.join(s['missing'])})")
                     for s in gaps)
    target = name if name in PRESETS else preset_for(name).bark
    return f"model {name!r} is not downloaded: missing {what}; run `{DOWNLOAD_HINT.format(preset=target)}`"


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if n < 10 * size else f"{n / size:.0f} {unit}"
    return f"{n} B"


def total_bytes(preset: str) -> int:
    return sum(c.approx_bytes for c in components(preset))
