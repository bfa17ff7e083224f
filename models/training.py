"""The fine-tuning recipe for Bark's stages. Reads top to bottom: config, presets, data, then
`TrainingRecipe` = checks in __init__, setup(), train(), with saving and resuming beside it.

    recipe = TrainingRecipe(TrainConfig(stages=("coarse",), max_steps=200), bark, items, run_dir)
    result = recipe.train()          # or TrainingRecipe(..., resume_from=run_dir).train()

One optimizer step trains every chosen stage at once: each stage draws its own micro-batches
(its own shuffled order), the summed stage losses are backpropagated (stages share no weights),
and one AdamW step follows. Examples come from models.layouts, built exactly as `generate` builds
its inputs; a test may pass other objectives with the same three methods.

Exact resume: a checkpoint carries the trained weights, optimizer, scheduler, grad scaler, torch
RNG states, every stage's data position (epoch, index; orders are re-derived from the seed), the
early-stopping counters and the step. Resuming from step k replays the uninterrupted run.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch

from models import adapters as A
from models import checkpoints as ckpt
from models.errors import ModelInputError
from models.lora import (STAGE_ATTRS, STAGES, TARGET_PRESETS, LoraSettings, count_parameters, parse_stages,
                         prepare_for_training, stage_module, trainable_parameters)

SCHEDULES = ("cosine", "linear", "constant")


# --- config --------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """Every knob of a run. Defaults follow the research on Bark/LLM LoRA fine-tunes."""
    stages: tuple = STAGES          # which of semantic, coarse, fine to train
    method: str = "lora"            # "lora": small adapters; "full": every weight (AdamW keeps ~3x the stage in memory)
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
    max_steps: int | None = None    # optimizer steps; None = max_epochs over the largest stage
    max_epochs: float = 10.0        # upper bound when max_steps is None; early stopping usually ends sooner
    val_fraction: float = 0.1       # clips held out for validation (split by clip, so windows never leak)
    eval_every: int = 25            # steps between validation passes (each costs one pass over the val set)
    patience: int = 5               # validation passes without improvement before stopping early (0 = never)
    min_delta: float = 1e-4         # improvement smaller than this does not reset patience
    save_every: int = 50            # steps between checkpoints (each writes the trained weights + optimizer)
    keep_last: int = 2              # checkpoints kept besides the best
    precision: str = "auto"         # fp32, bf16, fp16 (CUDA) or auto (bf16 where the device has it)
    attention: str = "sdpa"         # "sdpa" (fused kernels) or "eager" (transformers' own path)
    activation_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    seed: int = 0                   # weights init of the adapter, dropout and data order
    device: str = "auto"            # "auto" = cuda when present, else cpu

    def __post_init__(self):
        self.stages = parse_stages(self.stages)
        checks = [
            (self.method in ("lora", "full"), f"method must be lora or full, got {self.method!r}"),
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


# --- data ----------------------------------------------------------------------------------------

class LayoutObjective:
    """A stage's examples, batches and loss from models.layouts (the inference-identical layouts)."""

    def __init__(self, stage: str):
        from models import layouts

        self.stage, self._layouts = stage, layouts

    def examples(self, items: list) -> list:
        return [ex for item in items for ex in self._layouts.build_examples(self.stage, item)]

    def collate(self, examples: list):
        return self._layouts.collate(self.stage, examples)

    def loss(self, module, batch) -> tuple[torch.Tensor, int]:
        logits = self._layouts.stage_forward(self.stage, module, batch)
        return self._layouts.stage_loss(self.stage, logits, batch)


def split_items(items: list, val_fraction: float, seed: int) -> tuple[list, list]:
    """Hold out a seeded share of clips (at least one when there are two or more)."""
    n = len(items)
    n_val = 0 if n < 2 or val_fraction <= 0 else max(1, round(n * val_fraction))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    val_idx = set(order[:n_val])
    return [x for i, x in enumerate(items) if i not in val_idx], [x for i, x in enumerate(items) if i in val_idx]


class StageSampler:
    """Endless shuffled order over one stage's examples; the state is (epoch, position), and each
    epoch's order is derived from (seed, stage, epoch), so a restored state replays exactly."""

    def __init__(self, n: int, seed: int, stage_index: int):
        self.n, self.seed, self.stage_index = n, seed, stage_index
        self.epoch = self.pos = 0
        self._order_epoch, self._order = -1, []

    def _order_for(self, epoch: int) -> list[int]:
        if self._order_epoch != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.stage_index * 7919 + epoch)
            self._order, self._order_epoch = torch.randperm(self.n, generator=g).tolist(), epoch
        return self._order

    def take(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            order = self._order_for(self.epoch)
            grab = order[self.pos:self.pos + k - len(out)]
            out += grab
            self.pos += len(grab)
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    @property
    def epochs_done(self) -> float:
        return self.epoch + self.pos / self.n

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])


def lr_lambda(total: int, warmup: int, schedule: str) -> Callable[[int], float]:
    """Multiplier of the peak lr at scheduler step s (0-based): linear warmup, then the decay."""

    def f(s: int) -> float:
        if warmup and s < warmup:
            return (s + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (s - warmup + 1) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress

    return f


def rng_state(device: torch.device) -> dict:
    """CPU, Python and, when training on a GPU, that card's RNG state (dropout there draws from the
    card's own generator). Only the training card: asking every visible card would start CUDA on each."""
    return {"torch": torch.get_rng_state(),
            "cuda": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else [],
            "python": random.getstate()}


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"][0], device)
    if state.get("python") is not None:
        random.setstate(state["python"])


def _to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


@dataclass
class TrainResult:
    status: str                       # completed | stopped | early_stopped
    step: int
    max_steps: int
    last_checkpoint: str | None
    best_checkpoint: str | None
    best_val_loss: float | None
    history: list = field(default_factory=list)   # one dict per step (the progress payloads)
    forgetting: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# --- the recipe ----------------------------------------------------------------------------------

class TrainingRecipe:
    """Checks in __init__; setup() builds model wrappers, data, optimizer and restores a checkpoint;
    train() runs the loop; save_checkpoint() writes one. Callbacks:
      on_progress(dict): step, total_steps, epoch, loss, val_loss, lr, grad_norm, tokens_per_s, eta_s
      on_checkpoint(dict): step, path, val_loss, is_best, deleted (paths pruned)
      should_stop() -> bool: checked after every step; True saves a checkpoint and returns."""

    def __init__(self, config: TrainConfig, bark, items: list, run_dir, *, val_items: list | None = None,
                 objectives: dict | None = None, guard_items: list | None = None, base_model: str = "tiny",
                 dataset: dict | None = None, resume_from=None,
                 on_progress: Callable[[dict], None] | None = None,
                 on_checkpoint: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        self.cfg = config
        self.bark = bark
        self.items, self.val_items = list(items), val_items
        self.run_dir = Path(run_dir)
        self.objectives = objectives or {s: LayoutObjective(s) for s in config.stages}
        missing = [s for s in config.stages if s not in self.objectives]
        if missing:
            raise ModelInputError(f"no training objective for stage(s) {', '.join(missing)}")
        self.guard_items = guard_items or []
        self.base_model, self.dataset = base_model, dataset or {}
        self.resume_from = resume_from
        self.on_progress = on_progress or (lambda info: None)
        self.on_checkpoint = on_checkpoint or (lambda info: None)
        self.should_stop = should_stop or (lambda: False)
        if not self.items:
            raise ModelInputError("no training data: the dataset has no tokenized clips")

    # setup -------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        from models.attention import autocast, make_grad_scaler, resolve_device, resolve_precision, set_attention

        self.device = resolve_device(cfg.device)

        self.precision = resolve_precision(cfg.precision, self.device)
        self._autocast = lambda: autocast(self.device, self.precision)
        resume_state = ckpt.read_state(self.resume_from) if self.resume_from is not None else None

        # model: signature of the untouched base first, then adapters / trainable stages
        self.base_signature = A.base_signature(self.bark, cfg.stages)
        torch.manual_seed(cfg.seed)  # LoRA A init
        self.modules = prepare_for_training(self.bark, cfg.stages, cfg.method, cfg.lora())
        for stage in cfg.stages:
            set_attention(stage_module(self.bark, stage), cfg.attention)
            if cfg.activation_checkpointing:
                from models.attention import enable_activation_checkpointing

                enable_activation_checkpointing(stage_module(self.bark, stage))
        self.bark.to(self.device)
        self.params = trainable_parameters(self.bark)
        self.n_trainable, self.n_total = count_parameters(self.bark)

        # data: split by clip, then each stage's examples
        if self.val_items is None:
            self.train_items, self.val_items = split_items(self.items, cfg.val_fraction, cfg.seed)
        else:
            self.train_items = self.items
        self.train_ex = {s: self.objectives[s].examples(self.train_items) for s in cfg.stages}
        self.val_ex = {s: self.objectives[s].examples(self.val_items) for s in cfg.stages}
        self.guard_ex = {s: self.objectives[s].examples(self.guard_items) for s in cfg.stages} if self.guard_items else {}
        empty = [s for s in cfg.stages if not self.train_ex[s]]
        if empty:
            raise ModelInputError(f"no training examples for stage(s) {', '.join(empty)} (clips too short?)")
        self.samplers = {s: StageSampler(len(self.train_ex[s]), cfg.seed, i) for i, s in enumerate(cfg.stages)}
        per_step = cfg.batch_size * cfg.grad_accum
        self.steps_per_epoch = max(1, math.ceil(max(len(v) for v in self.train_ex.values()) / per_step))
        self.max_steps = cfg.max_steps or max(1, math.ceil(cfg.max_epochs * self.steps_per_epoch))

        # optimizer and schedule: weight decay on matrices only
        decay = [p for p in self.params.values() if p.ndim >= 2]
        no_decay = [p for p in self.params.values() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        warmup = int(round(cfg.warmup_ratio * self.max_steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           lr_lambda(self.max_steps, warmup, cfg.schedule))
        self.scaler = make_grad_scaler(self.precision, self.device)

        # loop state
        self.step = 0
        self.best_val: float | None = None    # best validation loss among saved checkpoints
        self.best_path: str | None = None
        self.best_eval: float | None = None   # best validation loss seen (early stopping)
        self.bad_evals = 0
        self.last_val: float | None = None
        self.last_val_step = -1
        self.last_val_stages: dict = {}
        self.history: list[dict] = []
        self.last_saved_step = -1
        if resume_state is not None:
            self.guard_base = {}
            self._restore(resume_state)  # the guard's base scores come back from the checkpoint
        else:
            self.guard_base = self._guard_nll()  # fresh LoRA (B = 0) or untouched weights: the base model

    # train ---------------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        if not hasattr(self, "optimizer"):
            self.setup()
        cfg, status = self.cfg, "completed"
        started, steps_run = time.monotonic(), 0
        while self.step < self.max_steps:
            t0 = time.monotonic()
            loss, stage_losses, n_tokens, grad_norm = self._train_step()
            self.step += 1
            steps_run += 1
            dt = time.monotonic() - t0
            val = None
            if self.step % cfg.eval_every == 0 or self.step % cfg.save_every == 0 or self.step == self.max_steps:
                val = self._validate()
            elapsed = time.monotonic() - started
            info = {"step": self.step, "total_steps": self.max_steps,
                    "epoch": round(min(s.epochs_done for s in self.samplers.values()), 4),
                    "loss": loss, "val_loss": val, "lr": self.scheduler.get_last_lr()[0],
                    "grad_norm": grad_norm, "tokens_per_s": n_tokens / dt if dt > 0 else None,
                    "eta_s": elapsed / steps_run * (self.max_steps - self.step),
                    **{f"loss_{s}": v for s, v in stage_losses.items()}}
            self.history.append(info)
            self.on_progress(info)
            early = val is not None and self._early_stop_update(val)
            if self.step % cfg.save_every == 0 or early or self.step == self.max_steps:
                self.save_checkpoint()
            if early:
                status = "early_stopped"
                break
            if self.step < self.max_steps and self.should_stop():
                if self.last_saved_step != self.step:
                    self.save_checkpoint()
                status = "stopped"
                break
        if self.last_saved_step != self.step:
            self.save_checkpoint()
        last = ckpt.read_pointer(self.run_dir)
        return TrainResult(status=status, step=self.step, max_steps=self.max_steps,
                           last_checkpoint=str(last) if last else None, best_checkpoint=self.best_path,
                           best_val_loss=self.best_val, history=self.history, forgetting=self._forgetting())

    def _train_step(self) -> tuple[float, dict, int, float]:
        cfg = self.cfg
        self.bark.train()
        self.optimizer.zero_grad(set_to_none=True)
        stage_losses = {s: 0.0 for s in cfg.stages}
        n_tokens = 0
        for _ in range(cfg.grad_accum):
            for stage in cfg.stages:
                idx = self.samplers[stage].take(cfg.batch_size)
                batch = _to_device(self.objectives[stage].collate([self.train_ex[stage][i] for i in idx]), self.device)
                with self._autocast():
                    loss, n = self.objectives[stage].loss(self.modules[stage], batch)
                self.scaler.scale(loss.float() / cfg.grad_accum).backward()
                stage_losses[stage] += float(loss.detach()) / cfg.grad_accum
                n_tokens += int(n)
        self.scaler.unscale_(self.optimizer)
        params = list(self.params.values())
        if cfg.max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        else:
            grad_norm = float(torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return sum(stage_losses.values()) / len(stage_losses), stage_losses, n_tokens, grad_norm

    @torch.no_grad()
    def _mean_nll(self, examples: dict) -> dict[str, float]:
        """Token-weighted mean NLL per stage over `examples` (eval mode; no RNG consumed)."""
        was_training = self.bark.training
        self.bark.eval()
        out = {}
        for stage, exs in examples.items():
            total, count = 0.0, 0
            for i in range(0, len(exs), self.cfg.batch_size):
                batch = _to_device(self.objectives[stage].collate(exs[i:i + self.cfg.batch_size]), self.device)
                with self._autocast():
                    loss, n = self.objectives[stage].loss(self.modules[stage], batch)
                total += float(loss) * int(n)
                count += int(n)
            if count:
                out[stage] = total / count
        self.bark.train(was_training)
        return out

    def _validate(self) -> float | None:
        per_stage = self._mean_nll({s: v for s, v in self.val_ex.items() if v})
        self.last_val_stages, self.last_val_step = per_stage, self.step
        self.last_val = sum(per_stage.values()) / len(per_stage) if per_stage else None
        return self.last_val

    def _early_stop_update(self, val: float) -> bool:
        """Track the best validation loss; True when patience has run out."""
        if self.best_eval is None or val < self.best_eval - self.cfg.min_delta:
            self.best_eval, self.bad_evals = val, 0
        else:
            self.bad_evals += 1
        return self.cfg.patience > 0 and self.bad_evals >= self.cfg.patience

    def _guard_nll(self) -> dict[str, float]:
        return self._mean_nll(self.guard_ex) if self.guard_ex else {}

    def _forgetting(self) -> dict:
        """Forgetting guard: NLL of the base model's own outputs on generic prompts, before and now
        (computed once per step: the checkpoint and the final result share it)."""
        if not self.guard_ex:
            return {}
        if getattr(self, "_forgetting_at", (None,))[0] != self.step:
            now = self._guard_nll()
            self._forgetting_at = (self.step, {
                "base": self.guard_base, "current": now,
                "increase": {s: now[s] - self.guard_base[s] for s in now if s in self.guard_base}})
        return self._forgetting_at[1]

    # save / restore ------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current step atomically and report it."""
        cfg = self.cfg
        val = self.last_val if self.last_val_step == self.step else self._validate()
        is_best = val is not None and (self.best_val is None or val < self.best_val)
        best_val, best_path = (val, str(self.run_dir / ckpt.checkpoint_name(self.step))) if is_best \
            else (self.best_val, self.best_path)
        final = self.run_dir / ckpt.checkpoint_name(self.step)
        forgetting = self._forgetting()
        metrics = {"step": self.step, "val_loss": val, "loss": self.history[-1]["loss"] if self.history else None,
                   "val_loss_stages": self.last_val_stages, "forgetting": forgetting}
        manifest = {"method": cfg.method, "stages": list(cfg.stages), "base_model": self.base_model,
                    "base_signature": self.base_signature, "dataset": self.dataset,
                    "hyperparameters": cfg.to_dict(), "metrics": metrics, "parent_checkpoint": str(final)}

        def write_files(folder: Path) -> None:
            from safetensors.torch import save_file

            if cfg.method == "lora":  # the full method's weights live in adapter/<stage>/ only
                save_file({n: p.detach().contiguous().cpu() for n, p in self.params.items()},
                          folder / "trainable.safetensors")
            torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                        "scaler": self.scaler.state_dict()}, folder / "optimizer.pt")
            torch.save(rng_state(self.device), folder / "rng.pt")
            A.write_adapter(self.bark, folder / "adapter", manifest)

        state = {"config": cfg.to_dict(), "max_steps": self.max_steps,
                 "samplers": {s: smp.state() for s, smp in self.samplers.items()},
                 "train_examples": {s: len(v) for s, v in self.train_ex.items()},
                 "best_val": best_val, "best_path": best_path, "best_eval": self.best_eval,
                 "bad_evals": self.bad_evals,
                 "val_loss": val, "metrics": metrics, "guard_base": self.guard_base,
                 "history": self.history, "base_model": self.base_model, "dataset": self.dataset}
        before = set(ckpt.list_checkpoints(self.run_dir))
        path = ckpt.write_checkpoint(self.run_dir, self.step, write_files, state,
                                     is_best=is_best, keep_last=cfg.keep_last)
        self.best_val, self.best_path = best_val, best_path
        self.last_saved_step = self.step
        deleted = sorted(str(p) for p in before - set(ckpt.list_checkpoints(self.run_dir)) if p != path)
        self.on_checkpoint({"step": self.step, "path": str(path), "val_loss": val, "is_best": is_best,
                            "deleted": deleted, "forgetting": forgetting})
        return path

    def _restore(self, state: dict) -> None:
        """Put weights, optimizer, scheduler, scaler, RNG, data positions and counters back."""
        folder = Path(state["path"])
        if list(state["config"]["stages"]) != list(self.cfg.stages) or state["config"]["method"] != self.cfg.method:
            raise ckpt.CheckpointError(
                f"checkpoint {str(folder)!r} trained {state['config']['method']} on {state['config']['stages']}, "
                f"not {self.cfg.method} on {list(self.cfg.stages)}")
        then, now = (state.get("dataset") or {}).get("hash"), self.dataset.get("hash")
        sizes = state.get("train_examples") or {}
        if (then and now and then != now) or any(sizes.get(s, len(v)) != len(v) for s, v in self.train_ex.items()):
            raise ckpt.CheckpointError(
                f"checkpoint {str(folder)!r} was trained on other data than the dataset has now; an exact resume "
                f"needs the same data (start a new training job instead)")
        from safetensors.torch import load_file

        try:
            if self.cfg.method == "lora":
                weights = load_file(str(folder / "trainable.safetensors"))
            else:
                weights = {}
                for stage in self.cfg.stages:
                    prefix = STAGE_ATTRS[stage]
                    for n, t in load_file(str(folder / "adapter" / stage / A.FULL_WEIGHTS)).items():
                        weights[f"{prefix}.{n}"] = t
            # on the CPU, as a fresh optimizer keeps its step counts: load_state_dict moves the
            # moments to their parameters' device and leaves `step` where it is
            opt = torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
            rng = torch.load(folder / "rng.pt", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch/safetensors raise many kinds
            raise ckpt.CheckpointError(f"checkpoint {str(folder)!r} cannot be read: {exc}") from exc
        missing = sorted(set(self.params) - set(weights))
        if missing:
            raise ckpt.CheckpointError(f"checkpoint {str(folder)!r} lacks trained weight {missing[0]} "
                                       f"(different LoRA settings?)")
        with torch.no_grad():
            for n, p in self.params.items():
                if weights[n].shape != p.shape:
                    raise ckpt.CheckpointError(f"checkpoint {str(folder)!r}: weight {n} has shape "
                                               f"{tuple(weights[n].shape)}, the model expects {tuple(p.shape)}")
                p.copy_(weights[n].to(p.device, p.dtype))
        self.optimizer.load_state_dict(opt["optimizer"])
        self.scheduler.load_state_dict(opt["scheduler"])
        self.scaler.load_state_dict(opt["scaler"])
        set_rng_state(rng, self.device)
        for s, smp in self.samplers.items():
            smp.load(state["samplers"][s])
        self.step = int(state["step"])
        self.best_val, self.best_path = state.get("best_val"), state.get("best_path")
        self.best_eval = state.get("best_eval")
        self.last_val, self.last_val_step = state.get("val_loss"), self.step
        self.last_val_stages = (state.get("metrics") or {}).get("val_loss_stages") or {}
        self.bad_evals = int(state.get("bad_evals", 0))
        self.history = list(state.get("history") or [])
        self.guard_base = state.get("guard_base") or {}
        self.last_saved_step = self.step


def describe(recipe: TrainingRecipe) -> dict:
    """What a run will do (after setup): for logs and the cost estimate."""
    return {"stages": list(recipe.cfg.stages), "method": recipe.cfg.method, "max_steps": recipe.max_steps,
            "steps_per_epoch": recipe.steps_per_epoch, "trainable_params": recipe.n_trainable,
            "total_params": recipe.n_total, "device": str(recipe.device), "precision": recipe.precision,
            "train_examples": {s: len(v) for s, v in recipe.train_ex.items()},
            "val_examples": {s: len(v) for s, v in recipe.val_ex.items()},
            "train_clips": len(recipe.train_items), "val_clips": len(recipe.val_items)}


def dump_config(cfg: TrainConfig) -> str:
    return json.dumps(cfg.to_dict(), indent=2)
