"""LoRA (through PEFT) and full fine-tuning on Bark's three transformer stages.

Bark has no q/k/v projections: attention is one fused `att_proj` (h -> 3h) plus `out_proj`, and the
MLP is `in_proj` (h -> 4h) plus another `out_proj`. The bare name `out_proj` matches both, so the
presets are regexes PEFT matches against the full module path. The LoraConfig carries NO task type:
PEFT's CAUSAL_LM wrapper passes `labels`/`inputs_embeds`, which Bark's forward refuses.

PEFT injects its LoRA layers into the stage module in place, so `bark.semantic.generate(...)` and
`BarkModel.generate` run through the adapters without knowing about them; the PeftModel wrappers are
kept beside the model (see `peft_models`) for saving and scaling.
"""
from __future__ import annotations

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from models.errors import ModelInputError
from models.names import METHODS, STAGES, parse_stages  # noqa: F401  (re-exported: callers read them here)
from models.training_config import LoraSettings

STAGE_ATTRS = {"semantic": "semantic", "coarse": "coarse_acoustics", "fine": "fine_acoustics"}

_PEFT_ATTR = "_studio_peft"  # bark.__dict__ entry: {stage: PeftModel}; not a registered submodule


def stage_module(bark, stage: str) -> torch.nn.Module:
    """The stage's submodule of a BarkModel (the original module, LoRA layers injected or not)."""
    return getattr(bark, STAGE_ATTRS[parse_stages([stage])[0]])


def lora_config(settings: LoraSettings) -> LoraConfig:
    """A plain LoraConfig (no task_type) on Bark's real module names."""
    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=settings.target_regex, bias="none")


def peft_models(bark) -> dict[str, PeftModel]:
    """The PeftModel wrapper of each stage that carries adapters (empty when none)."""
    return bark.__dict__.setdefault(_PEFT_ATTR, {})


def freeze(module: torch.nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def add_lora(bark, stages, settings: LoraSettings, adapter_name: str = "default") -> dict[str, PeftModel]:
    """Freeze all of `bark` and add a fresh, trainable LoRA adapter to each chosen stage."""
    freeze(bark)
    wrapped = peft_models(bark)
    for stage in parse_stages(stages):
        module = stage_module(bark, stage)
        if stage in wrapped:
            wrapped[stage].add_adapter(adapter_name, lora_config(settings))
            wrapped[stage].base_model.set_adapter(adapter_name)
        else:
            try:
                wrapped[stage] = get_peft_model(module, lora_config(settings), adapter_name=adapter_name)
            except ValueError as exc:  # no module matched the target regex
                raise ModelInputError(f"LoRA targets {settings.targets!r} match nothing in the {stage} stage: {exc}") from exc
    return {s: wrapped[s] for s in parse_stages(stages)}


def enable_full_finetune(bark, stages) -> dict[str, torch.nn.Module]:
    """Freeze all of `bark`, then make every weight of the chosen stages trainable."""
    freeze(bark)
    out = {}
    for stage in parse_stages(stages):
        module = stage_module(bark, stage)
        for p in module.parameters():
            p.requires_grad_(True)
        out[stage] = module
    return out


def prepare_for_training(bark, stages, method: str, settings: LoraSettings | None = None) -> dict[str, torch.nn.Module]:
    """LoRA or full fine-tuning on `stages`; returns {stage: module whose forward the loss calls}."""
    if method == "lora":
        return add_lora(bark, stages, settings or LoraSettings())
    if method == "full":
        return enable_full_finetune(bark, stages)
    raise ModelInputError(f"unknown training method {method!r}; choose from {', '.join(METHODS)}")


def trainable_parameters(bark) -> dict[str, torch.nn.Parameter]:
    """Name -> parameter for every trainable weight (names as in bark.named_parameters())."""
    return {n: p for n, p in bark.named_parameters() if p.requires_grad}


def count_parameters(bark) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = trainable = 0
    for p in bark.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total
