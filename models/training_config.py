"""The training recipe's settings, without torch: `TrainConfig`, the LoRA settings and the
presets. models.training runs them; the studio (Train tab, `bark-studio train`, the cost
estimate) reads the same definitions, so a preset or a default is written once."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from models.errors import ModelInputError
from models.names import DEFAULT_METHOD, METHODS, STAGES, parse_stages

SCHEDULES = ("cosine", "linear", "constant")
VOICE_PROMPT_MODES = ("auto", "on", "off")
TARGET_PRESETS = {
    "attention": r".*layers\.\d+\.attn\.(att_proj|out_proj)",
    "attention+mlp": r".*layers\.\d+\.(attn\.(att_proj|out_proj)|mlp\.(in_proj|out_proj))",
}


@dataclass
class LoraSettings:
    r: int = 16            # rank: adapter size and capacity grow linearly with it
    alpha: float = 32.0    # the update is scaled by alpha / r
    dropout: float = 0.05  # dropout on the adapter's input while training
    targets: str = "attention"  # a TARGET_PRESETS name or a regex over module paths

    def __post_init__(self):
        if int(self.r) < 1:
            raise ModelInputError(f"LoRA rank r must be >= 1, got {self.r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ModelInputError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        self.r, self.alpha, self.dropout = int(self.r), float(self.alpha), float(self.dropout)

    @property
    def target_regex(self) -> str:
        return TARGET_PRESETS.get(self.targets, self.targets)


@dataclass
class TrainConfig:
    """Every knob of a run. Defaults follow the research on Bark/LLM LoRA fine-tunes."""
    stages: tuple = STAGES          # which of semantic, coarse, fine to train
    method: str = DEFAULT_METHOD    # "lora": small adapters; "full": every weight (AdamW keeps ~3x the stage in memory)
    r: int = 16                     # LoRA rank: capacity and adapter size grow linearly
    alpha: float = 32.0             # LoRA update scale alpha / r
    dropout: float = 0.05           # LoRA input dropout while training
    targets: str = "attention"      # "attention" (att_proj, out_proj), "attention+mlp" (+ in_proj, mlp.out_proj), or a regex
    lr: float = 1e-4                # peak learning rate after warmup
    batch_size: int = 4             # examples per stage per micro-batch (memory grows linearly)
    grad_accum: int = 8             # micro-batches per optimizer step (effective batch = batch_size * grad_accum)
    warmup_ratio: float = 0.1       # share of steps with the lr rising linearly from 0
    schedule: str = "cosine"        # decay after warmup: cosine, linear or constant
    weight_decay: float = 0.01      # AdamW decoupled decay on matrices (not biases or norms)
    max_grad_norm: float = 1.0      # clip the global gradient norm (0 = off)
    max_steps: int | None = None    # optimizer steps of every stage; None = max_epochs over each stage's own examples
    max_epochs: float = 10.0        # passes over each stage's examples when max_steps is None; early stopping usually ends sooner
    val_fraction: float = 0.1       # clips held out for validation (split by clip, so windows never leak)
    eval_every: int = 25            # steps between validation passes (each costs one pass over the val set; a stage's new best is saved)
    patience: int = 5               # validation passes without improvement before a stage stops early (0 = never)
    min_delta: float = 1e-4         # improvement smaller than this does not reset patience
    save_every: int = 50            # steps between checkpoints (each writes the trained weights + optimizer)
    keep_last: int = 2              # checkpoints kept besides the best
    precision: str = "auto"         # fp32, bf16, fp16 (CUDA) or auto (bf16 where the device has it)
    attention: str = "sdpa"         # "sdpa" (fused kernels) or "eager" (transformers' own path)
    activation_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    seed: int = 0                   # weights init of the adapter, dropout and data order
    voice_prompts: str = "auto"     # condition each clip on a prompt from another clip of its speaker, as users
                                    # generate: "on", "off", or "auto" (on when a speaker has several clips)
    device: str = "auto"            # "auto" = cuda when present, else cpu

    def __post_init__(self):
        self.stages = parse_stages(self.stages)
        checks = [
            (self.method in METHODS, f"method must be lora or full, got {self.method!r}"),
            (self.voice_prompts in VOICE_PROMPT_MODES,
             f"voice_prompts must be one of {VOICE_PROMPT_MODES}, got {self.voice_prompts!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be >= 1"),
            (0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}"),
            (0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}"),
            (self.eval_every >= 1 and self.save_every >= 1, "eval_every and save_every must be >= 1"),
            (self.targets in TARGET_PRESETS or "(" in self.targets or "\\" in self.targets,
             f"targets must be one of {sorted(TARGET_PRESETS)} or a regex, got {self.targets!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ModelInputError(f"training config: {message}")

    def lora(self) -> LoraSettings:
        return LoraSettings(r=self.r, alpha=self.alpha, dropout=self.dropout, targets=self.targets)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stages"] = list(self.stages)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelInputError(f"training config: unknown setting(s) {', '.join(unknown)}")
        return cls(**d)


# Presets the Train tab and `bark-studio train --preset` offer; any field can still be overridden.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(method="lora", r=8, alpha=16, lr=2e-4, batch_size=4, grad_accum=2, max_epochs=5,
                  eval_every=10, save_every=25, patience=3),
    "quality": dict(method="lora", r=16, alpha=32, lr=1e-4, batch_size=4, grad_accum=8, max_epochs=20,
                    targets="attention+mlp", eval_every=25, save_every=50, patience=5),
    "full": dict(method="full", lr=1e-5, batch_size=4, grad_accum=8, max_epochs=10, weight_decay=0.01,
                 eval_every=25, save_every=50, patience=5, keep_last=1),
}


def config_from_preset(preset: str | None, **overrides) -> TrainConfig:
    if preset is not None and preset not in PRESETS:
        raise ModelInputError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    values = {**(PRESETS[preset] if preset else {}), **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig.from_dict(values)


def default_method(preset: str | None) -> str:
    """The method a run gets when none is named: its preset's, else LoRA."""
    return PRESETS.get(preset or "", {}).get("method", DEFAULT_METHOD)
