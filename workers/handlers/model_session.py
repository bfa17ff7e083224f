"""A Bark model session for jobs that generate many takes (a sweep, a rerun of a stored output):
the model readied once per (model, adapters with their scales, precision, engine) through
workers.handlers.generate.InferenceModels, voice prompts loaded once each, and takes generated in
batches through models/generation.py from the parameters a sweep stores with each output."""
from __future__ import annotations

from pathlib import Path

from studio import conditioning
from studio.experiments import grid
from studio.inference import stored_inference


def adapter_key(params: dict) -> tuple:
    return tuple((a["path"], float(a["scale"])) for a in params["adapters"])


def batch_key(params: dict) -> tuple:
    """Outputs that share a model, adapters, sampling settings, engine and precision generate in one batch."""
    temps = tuple(params[t] for t in grid.TEMPERATURES)
    return params["model"], adapter_key(params), temps, params.get("max_new_semantic"), *stored_inference(params)


def batches(params: list[dict], indexes: list[int], batch_size: int) -> list[list[int]]:
    """`indexes` into `params`, grouped by batch_key (one model readying a group), batch_size at a time."""
    groups: dict[tuple, list[int]] = {}
    for i in indexes:
        groups.setdefault(batch_key(params[i]), []).append(i)
    return [group[start: start + batch_size] for group in groups.values() for start in range(0, len(group), batch_size)]


class ModelSession:
    """Generates with a Bark model readied per group: loaded once per (model, adapters with their
    scales, precision, engine) through InferenceModels, which merges the adapters into the fp32
    weights and then casts (models.fast_generation.prepare_for_inference), so a sweep's takes with
    one adapter merge it once and run at the base model's speed.
    Adapter and voice paths may be workspace-relative (what the CLI stores for files inside it)."""

    def __init__(self, root: Path | None = None, device: str = "cpu"):
        from workers.handlers.generate import InferenceModels

        self.models = InferenceModels(device, root)
        self.voices: dict = {}
        self.root = root
        self.device = device

    @property
    def bark(self):
        return self.models.bark

    @property
    def form(self) -> tuple[str, str] | None:
        """(precision, engine) the current model is prepared for."""
        key = self.models.key
        return (key[2], key[3]) if key else None

    def _path(self, path: str) -> str:
        p = Path(path)
        return str(p if p.is_absolute() or self.root is None else self.root / p)

    def ready(self, model: str, adapters: tuple, precision: str = "fp32", engine: str = "reference"):
        """(bark, text tokenizer) for this group: cached while the key stays the same."""
        return self.models.get(model, adapters, precision, engine)

    def voice(self, path: str | None):
        from models import voice_prompt

        if not path:
            return None
        if path not in self.voices:
            self.voices[path] = voice_prompt.load(self._path(path))
        return self.voices[path]

    def batch(self, params_list: list[dict], batch_size: int) -> list:
        """Generate outputs that share a batch_key, with the model in the form their params name."""
        from models.generation import BarkStages, Request, Sampling, generate

        first = params_list[0]
        engine, precision = stored_inference(first)
        bark, tokenizer = self.ready(first["model"], adapter_key(first), precision, engine)
        cap = first.get("max_new_semantic")
        sampling = Sampling(semantic_temperature=first["semantic_temperature"],
                            coarse_temperature=first["coarse_temperature"],
                            fine_temperature=first["fine_temperature"],
                            **({"semantic_max_new_tokens": int(cap)} if cap else {}))
        requests = [Request(p["text"], self.voice(p.get("voice")), int(p["seed"]), conditioning.condition(p))
                    for p in params_list]  # a speaker mix or label values ride per take: one batch mixes them
        return generate(BarkStages.from_bark(bark), tokenizer, requests, sampling, batch_size=batch_size,
                        fast=engine == "fast")
