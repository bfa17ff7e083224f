"""Fetch and check a preset's weights: `bark-studio models download|verify PRESET`.

    download("small", progress)   # every component into the HF cache / the whisper root
    verify("small")               # offline: each component present and loadable, one row each

What a preset uses is models/catalog.py's list; this module adds the network and the loaders
(torch is imported inside the functions, never at import).
"""
from __future__ import annotations

from typing import Callable

from models import catalog
from models.errors import MissingWeightsError, ModelInputError

Progress = Callable[[int, int, str], None]


# --- download ------------------------------------------------------------------------------------

def _pick_files(repo: str, requirements: tuple[tuple[str, ...], ...]) -> list[str]:
    """For each requirement, the first alternative the repo serves (safetensors or pickle weights)."""
    from huggingface_hub import HfApi

    served = set(HfApi().list_repo_files(repo))
    picked = []
    for alternatives in requirements:
        hit = next((f for f in alternatives if f in served), None)
        if hit is None:
            raise MissingWeightsError(repo, message=f"{repo} serves none of {', '.join(alternatives)}")
        picked.append(hit)
    return picked


def download_component(c: catalog.Component) -> str:
    """Fetch one component; returns where it now lives."""
    from huggingface_hub import hf_hub_download, snapshot_download

    cache = str(catalog.hub_cache())
    if c.source == "whisper":
        import whisper

        root = catalog.whisper_root()
        whisper.load_model(c.repo, device="cpu", download_root=str(root))   # checks openai's sha256
        return str(root / catalog.WHISPER_FILES[c.repo][0])
    if c.key == "voices":
        return snapshot_download(c.repo, allow_patterns=list(c.patterns), cache_dir=cache)
    if c.key == "quantizer":
        return hf_hub_download(c.repo, c.files[0][0], cache_dir=cache)
    extra = ["preprocessor_config.json"] if c.key in ("hubert", "codec") else []
    return snapshot_download(c.repo, allow_patterns=_pick_files(c.repo, c.files) + extra, cache_dir=cache)


def download(preset: str, progress: Progress | None = None) -> list[dict]:
    """Fetch everything `preset` uses (skipping what is already complete); one row per component."""
    parts = catalog.components(preset)
    rows = []
    for i, c in enumerate(parts):
        if progress:
            progress(i, len(parts), f"{c.label} {c.repo} (about {catalog.human_bytes(c.approx_bytes)})")
        state = catalog.component_state(c)
        if not state["present"]:
            try:
                download_component(c)
            except MissingWeightsError:
                raise
            except Exception as exc:  # noqa: BLE001 - hub and network errors vary; one line names the part
                raise MissingWeightsError(c.repo, preset, message=(
                    f"download of {c.label} {c.repo} failed: {type(exc).__name__}: {exc}".splitlines()[0])) from exc
            state = catalog.component_state(c)
        rows.append(state)
    if progress:
        progress(len(parts), len(parts), "done")
    return rows


# --- verify --------------------------------------------------------------------------------------

def _load(preset: str, key: str) -> str:
    """Load one component with the studio's own loaders; returns a short note of what loaded."""
    if key == "bark":
        from models.presets import load_bark, load_text_tokenizer

        bark = load_bark(preset)
        tokenizer = load_text_tokenizer(preset)
        return f"{sum(p.numel() for p in bark.parameters()) / 1e6:.0f}M parameters, {len(tokenizer)} text tokens"
    if key == "voices":
        from models import voice_prompt

        names = catalog.builtin_voices(preset)
        for name in names:
            voice_prompt.builtin(name, preset)
        return f"{len(names)} voices"
    if key in ("hubert", "quantizer"):
        from models.tokens import load_semantic_tokenizer

        semantic = load_semantic_tokenizer(preset)
        return f"{semantic.quantizer.fc.out_features} semantic tokens"
    if key == "codec":
        from models.tokens import load_codec

        codec, _ = load_codec(preset)
        return f"{codec.config.sampling_rate} Hz, {codec.config.codebook_size} codes"
    if key == "whisper":
        from models import asr

        model = asr.load_model(catalog.preset_for(preset).whisper, device="cpu")
        return f"{model.dims.n_text_layer} decoder layers"
    raise ModelInputError(f"unknown component {key!r}")


def verify(preset: str, load: bool = True) -> list[dict]:
    """Per component: the catalog's state plus `loadable` and a note (or the error, one line)."""
    if load:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()   # one line per component, not a bar per loader
    rows = []
    loaded: dict[str, str] = {}
    for state in catalog.state(preset):
        row = {**state, "loadable": False, "note": ""}
        if state["present"] and load:
            group = "hubert" if state["key"] in ("hubert", "quantizer") else state["key"]
            try:
                if group not in loaded:
                    loaded[group] = _load(preset, state["key"])
                row["loadable"], row["note"] = True, loaded[group]
            except Exception as exc:  # noqa: BLE001 - any failure to load is this component's verdict
                row["note"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        elif state["present"]:
            row["loadable"] = None
        rows.append(row)
    return rows
