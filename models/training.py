"""The fine-tuning recipe for Bark's stages. Reads top to bottom: config, presets, data, then
`TrainingRecipe` = checks in __init__, setup(), train(), with saving and resuming beside it.

    recipe = TrainingRecipe(TrainConfig(stages=("coarse",), max_steps=200), bark, items, run_dir)
    result = recipe.train()          # or TrainingRecipe(..., resume_from=run_dir).train()

The stages are trained side by side but balanced: they share no weights, so each has its own
AdamW, schedule (steps, warmup, decay) and early stopping. An epoch of a stage is one pass over
that stage's own examples (a 10 s clip gives ~1 semantic, ~25 coarse and ~6 fine examples), and
a stage's steps come from its own data size, so every stage sees each example about max_epochs
times. A step trains every stage still training; a stage ends at the end of its own schedule or
when its own validation loss stops improving. Each checkpoint records which stages it is the
best of; the adapter a job installs takes each stage from that stage's best checkpoint.
Examples come from models.layouts, built exactly as `generate` builds its inputs; a test may
pass other objectives with the same three methods.

Exact resume: a checkpoint carries the trained weights, optimizers, schedulers, grad scaler,
torch RNG states, every stage's data position (epoch, index; orders are re-derived from the
seed), its early-stopping counters and status, and the step. Resuming from step k replays the
uninterrupted run.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from models import adapters as A
from models import checkpoints as ckpt
from models.rank_group import SingleProcess
from models.errors import ModelInputError
from models.lora import STAGE_ATTRS, count_parameters, prepare_for_training, stage_module, trainable_parameters
from models.training_config import (PRESETS, SCHEDULES, VOICE_PROMPT_MODES, TrainConfig,  # noqa: F401  (re-exported)
                                    config_from_preset)

STATE_VERSION = 2  # 2: per-stage optimizers, schedules, early stopping and best checkpoints


# --- data ----------------------------------------------------------------------------------------

class LayoutObjective:
    """A stage's examples, batches and loss from models.layouts (the inference-identical layouts)."""

    def __init__(self, stage: str, conditioning=None):
        from models import layouts

        self.stage, self._layouts = stage, layouts
        self.conditioning = conditioning  # models.conditioning.Conditioning, or None

    def examples(self, items: list) -> list:
        if self.conditioning is None:
            return [ex for item in items for ex in self._layouts.build_examples(self.stage, item)]
        out = []
        for item in items:  # each example carries its clip's label weights
            weights = self.conditioning.weights(item.labels, source=item.key or "clip")
            for ex in self._layouts.build_examples(self.stage, item):
                ex.tensors["cond"] = weights
                out.append(ex)
        return out

    def skipped(self, items: list) -> list[str]:
        """Why clips give no example in this stage (one line per clip)."""
        if self.stage != "semantic":
            return []
        return [r for r in (self._layouts.semantic_skip_reason(item) for item in items) if r]

    def collate(self, examples: list):
        return self._layouts.collate(self.stage, examples)

    def loss(self, module, batch) -> tuple[torch.Tensor, int]:
        cond = (self.conditioning.vectors(self.stage, batch["cond"])
                if self.conditioning is not None and "cond" in batch else None)
        logits = self._layouts.stage_forward(self.stage, module, batch, cond)
        return self._layouts.stage_loss(self.stage, logits, batch)


def attach_voice_prompts(items: list, speaker_of: dict, pool: list, seed: int) -> list:
    """Copies of `items`, each conditioned on a voice prompt made from another clip of the same
    speaker in `pool` (by models.voice_prompt, as `voice create` makes one from a clip: its first
    12 s; clips under 5 s cannot be prompts). The partner is a seeded choice per clip; a clip with
    no eligible partner stays without a prompt. `speaker_of` maps id(item) -> speaker."""
    from dataclasses import replace

    from models.voice_prompt import from_clip_tokens

    prompts = {}
    for item in pool:
        try:
            prompts[id(item)] = from_clip_tokens(item.semantic, item.codes, item.key or "clip")
        except ModelInputError:
            continue  # too short to be a voice prompt
    out = []
    for i, item in enumerate(items):
        partners = [p for p in pool if p is not item and id(p) in prompts
                    and speaker_of.get(id(p)) is not None and speaker_of.get(id(p)) == speaker_of.get(id(item))]
        if not partners:
            out.append(item)
            continue
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        partner = partners[int(torch.randint(len(partners), (1,), generator=g))]
        out.append(replace(item, history=prompts[id(partner)]))
    return out


def voice_prompts_wanted(mode: str, speakers: list) -> bool:
    """"auto": on when some speaker has two or more clips (a prompt can come from another clip)."""
    if mode != "auto":
        return mode == "on"
    named = [s for s in speakers if s is not None]
    return len(set(named)) < len(named)


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
    """Multiplier of the peak lr at scheduler step s (0-based, the step's own rate): linear warmup,
    then the decay from the peak, which ends just after the last step so that step still learns."""

    def f(s: int) -> float:
        if warmup and s < warmup:
            return (s + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (s - warmup) / max(1, total - warmup))
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
    status: str                       # completed | stopped | early_stopped (every stage stopped early)
    step: int
    max_steps: int
    last_checkpoint: str | None
    best_checkpoint: str | None       # lowest mean validation loss over the stages
    best_val_loss: float | None
    history: list = field(default_factory=list)   # one dict per step (the progress payloads)
    forgetting: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)    # per stage: status, epochs, steps, best step / loss / checkpoint

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
                 speakers: list | None = None,
                 dataset: dict | None = None, resume_from=None,
                 on_progress: Callable[[dict], None] | None = None,
                 on_checkpoint: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, dist=None):
        self.cfg = config
        self.dist = dist or SingleProcess()  # a models.distributed.Group when this is one rank of several
        self.bark = bark
        self.items, self.val_items = list(items), val_items
        # speaker of each clip (items, then val_items), for voice-prompted training
        self.speaker_of = {id(x): s for x, s in zip(self.items + list(val_items or []), speakers or [])}
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
        self.dist.wrap(self.bark, self.modules, self.objectives, cfg.method)  # DDP / FSDP across ranks
        self.params = trainable_parameters(self.bark)
        self.n_trainable, self.n_total = count_parameters(self.bark)
        self.conditioning = None
        if cfg.condition:
            self._setup_conditioning()

        # data: split by clip, then each stage's examples
        if self.val_items is None:
            self.train_items, self.val_items = split_items(self.items, cfg.val_fraction, cfg.seed)
        else:
            self.train_items = self.items
        self.with_voice_prompts = voice_prompts_wanted(cfg.voice_prompts, list(self.speaker_of.values()))
        if self.with_voice_prompts:  # prompts come from training clips only (no validation audio leaks in)
            pool = self.train_items
            self.train_items = attach_voice_prompts(self.train_items, self.speaker_of, pool, cfg.seed)
            self.val_items = attach_voice_prompts(self.val_items, self.speaker_of, pool, cfg.seed + 1)
        self.train_ex = {s: self.objectives[s].examples(self.train_items) for s in cfg.stages}
        self.val_ex = {s: self.objectives[s].examples(self.val_items) for s in cfg.stages}
        self.guard_ex = {s: self.objectives[s].examples(self.guard_items) for s in cfg.stages} if self.guard_items else {}
        empty = [s for s in cfg.stages if not self.train_ex[s]]
        if empty:
            raise ModelInputError(f"no training examples for stage(s) {', '.join(empty)} (clips too short?)")
        self.samplers = {s: StageSampler(len(self.train_ex[s]), cfg.seed, i) for i, s in enumerate(cfg.stages)}
        # each stage its own schedule: one epoch is one pass over that stage's own examples
        per_step = cfg.batch_size * cfg.grad_accum * self.dist.world  # the global batch
        self.steps_per_epoch = {s: len(v) / per_step for s, v in self.train_ex.items()}
        self.stage_steps = {s: cfg.max_steps or max(1, math.ceil(cfg.max_epochs * n))
                            for s, n in self.steps_per_epoch.items()}
        self.max_steps = max(self.stage_steps.values())

        # optimizer and schedule per stage (stages share no weights); weight decay on matrices only
        self.stage_params = {s: [p for n, p in self.params.items() if n.startswith(STAGE_ATTRS[s] + ".")]
                             for s in cfg.stages}
        self.step_lrs: dict[str, float] = {}  # the rate each active stage used at the latest step
        self.optimizers, self.schedulers = {}, {}
        for s in cfg.stages:
            params = self.stage_params[s]
            if not params:
                raise ModelInputError(f"the {s} stage has no trainable weights (LoRA targets matched nothing?)")
            decay = [p for p in params if p.ndim >= 2]
            no_decay = [p for p in params if p.ndim < 2]
            groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
            self.optimizers[s] = torch.optim.AdamW(groups, lr=cfg.lr)
            warmup = int(round(cfg.warmup_ratio * self.stage_steps[s]))
            self.schedulers[s] = torch.optim.lr_scheduler.LambdaLR(
                self.optimizers[s], lr_lambda(self.stage_steps[s], warmup, cfg.schedule))
        self.scaler = make_grad_scaler(self.precision, self.device)

        # loop state; per stage: status (training, completed, early_stopped), the last step it trained,
        # its latest validation loss and step, early-stopping counters
        self.step = 0
        self.stage_state = {s: {"status": "training", "last_step": 0, "val_loss": None, "val_step": -1,
                                "best_eval": None, "bad_evals": 0} for s in cfg.stages}
        self.stage_best: dict[str, dict] = {}  # stage -> {"step", "val_loss", "path"}: its best checkpoint
        self.best_val: float | None = None    # lowest mean validation loss among saved checkpoints
        self.best_path: str | None = None
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

    def _setup_conditioning(self) -> None:
        """One Conditioning for the run: its labels read from every clip, a zero table per stage
        (trained by that stage's optimizer, saved in checkpoints and in the adapter)."""
        from models import conditioning as K

        items = self.items + list(self.val_items or [])
        specs = K.label_specs(self.cfg.condition, [getattr(x, "labels", None) or {} for x in items])
        hidden = {s: int(stage_module(self.bark, s).config.hidden_size) for s in self.cfg.stages}
        self.conditioning = K.Conditioning(specs, hidden).to(self.device)
        K.attach(self.bark, self.conditioning)
        for s in self.cfg.stages:
            self.params[f"{STAGE_ATTRS[s]}.studio_conditioning"] = self.conditioning.tables[s]
            if isinstance(self.objectives[s], LayoutObjective):
                self.objectives[s].conditioning = self.conditioning
        self.n_trainable += sum(t.numel() for t in self.conditioning.tables.values())

    # train ---------------------------------------------------------------------------------------
    def active_stages(self) -> list[str]:
        return [s for s in self.cfg.stages if self.stage_state[s]["status"] == "training"]

    def train(self) -> TrainResult:
        if not hasattr(self, "optimizers"):
            self.setup()
        cfg, stopped = self.cfg, False
        started, steps_run = time.monotonic(), 0
        while self.active_stages() and self.step < self.max_steps:
            t0 = time.monotonic()
            active = self.active_stages()
            loss, stage_losses, n_tokens, grad_norm = self._train_step(active)
            self.step += 1
            steps_run += 1
            dt = time.monotonic() - t0
            for s in active:
                self.stage_state[s]["last_step"] = self.step
            ended = [s for s in active if self.step >= self.stage_steps[s]]
            val = None
            if self.step % cfg.eval_every == 0 or self.step % cfg.save_every == 0 or ended:
                val = self._validate()
            fresh_val = {s: self.last_val_stages[s] for s in active
                         if val is not None and s in self.last_val_stages}
            for s in ended:
                self.stage_state[s]["status"] = "completed"
            early = [s for s in active if s not in ended and s in fresh_val and self._early_stop_update(s, fresh_val[s])]
            for s in early:
                self.stage_state[s]["status"] = "early_stopped"
            elapsed = time.monotonic() - started
            remaining = max((self.stage_steps[s] - self.step for s in self.active_stages()), default=0)
            info = {"step": self.step, "total_steps": self.max_steps, "epoch": self._job_epoch(),
                    "epochs": {s: round(smp.epochs_done, 4) for s, smp in self.samplers.items()},
                    "loss": loss, "val_loss": val, "lr": self.step_lrs[active[0]],
                    "grad_norm": grad_norm, "tokens_per_s": n_tokens / dt if dt > 0 else None,
                    "eta_s": elapsed / steps_run * remaining, "stages": self.stage_status(),
                    **{f"loss_{s}": v for s, v in stage_losses.items()},
                    **{f"val_loss_{s}": v for s, v in fresh_val.items()},
                    **{f"lr_{s}": self.step_lrs[s] for s in active}}
            self.history.append(info)
            self.on_progress(info)
            improved = [s for s, v in fresh_val.items()
                        if s not in self.stage_best or v < self.stage_best[s]["val_loss"]]
            if self.step % cfg.save_every == 0 or ended or early or improved or not self.active_stages():
                self.save_checkpoint()  # a stage's new best is saved at once: its adapter comes from there
            if self.active_stages() and self.should_stop():
                if self.last_saved_step != self.step:
                    self.save_checkpoint()
                stopped = True
                break
        if self.last_saved_step != self.step:
            self.save_checkpoint()
        statuses = self.stage_status()
        status = ("stopped" if stopped else "early_stopped" if all(v == "early_stopped" for v in statuses.values())
                  else "completed")
        last = ckpt.read_pointer(self.run_dir)
        return TrainResult(status=status, step=self.step, max_steps=self.max_steps,
                           last_checkpoint=str(last) if last else None, best_checkpoint=self.best_path,
                           best_val_loss=self.best_val, history=self.history, forgetting=self._forgetting(),
                           stages=self.stage_summary())

    def stage_status(self) -> dict[str, str]:
        return {s: st["status"] for s, st in self.stage_state.items()}

    def stage_summary(self) -> dict[str, dict]:
        """Per stage: status, epochs seen, steps trained of its schedule, and its best checkpoint."""
        out = {}
        for s, st in self.stage_state.items():
            best = self.stage_best.get(s) or {}
            out[s] = {"status": st["status"], "epochs": round(self.samplers[s].epochs_done, 4),
                      "steps": st["last_step"], "scheduled_steps": self.stage_steps[s],
                      "best_step": best.get("step"), "best_val_loss": best.get("val_loss"),
                      "best_checkpoint": best.get("path")}
        return out

    def _job_epoch(self) -> float:
        """The epochs every stage still training has completed (all stages once none is)."""
        stages = self.active_stages() or list(self.cfg.stages)
        return round(min(self.samplers[s].epochs_done for s in stages), 4)

    def _train_step(self, active: list[str]) -> tuple[float, dict, int, float]:
        cfg = self.cfg
        self.bark.train()
        for stage in active:
            self.optimizers[stage].zero_grad(set_to_none=True)
        stage_losses = {s: 0.0 for s in active}
        n_tokens = 0
        for micro in range(cfg.grad_accum):
            for stage in active:
                # every rank draws the global micro-batch and keeps its slice (the whole in one process)
                idx = self.dist.share(self.samplers[stage].take(cfg.batch_size * self.dist.world))
                batch = _to_device(self.objectives[stage].collate([self.train_ex[stage][i] for i in idx]), self.device)
                with self.dist.grad_sync(stage, last=micro == cfg.grad_accum - 1):
                    with self._autocast():
                        loss, n = self.dist.loss(stage, batch)
                    weight, n = self.dist.token_share(n)  # ranks weighted by their share of the tokens
                    self.scaler.scale(loss.float() * weight / cfg.grad_accum).backward()
                stage_losses[stage] += self.dist.global_loss(loss.detach(), weight) / cfg.grad_accum
                n_tokens += int(n)
        norms = []
        for stage in active:  # each stage clipped on its own: they are separate models
            self.scaler.unscale_(self.optimizers[stage])
            params = self.stage_params[stage]
            if cfg.max_grad_norm > 0:
                norms.append(self.dist.to_float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)))
            else:
                grads = [p.grad.norm() for p in params if p.grad is not None]
                norms.append(float(torch.norm(torch.stack(grads))) if grads else 0.0)
        for stage in active:
            self.scaler.step(self.optimizers[stage])
        self.scaler.update()
        self.step_lrs = {s: self.schedulers[s].get_last_lr()[0] for s in active}  # the rates this step used
        for stage in active:
            self.schedulers[stage].step()
        grad_norm = math.sqrt(sum(n * n for n in norms))
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
                    loss, n = self.dist.loss(stage, batch)
                total += float(loss) * int(n)
                count += int(n)
            if count:
                out[stage] = total / count
        self.bark.train(was_training)
        return self.dist.agree(out)  # every rank acts on rank 0's numbers

    def _validate(self) -> float | None:
        """Validation loss per stage (a stage whose weights have not changed since its last pass
        keeps its value) and their mean."""
        stale = {s: v for s, v in self.val_ex.items() if v and (self.stage_state[s]["val_loss"] is None
                                                             or self.stage_state[s]["val_step"] < self.stage_state[s]["last_step"])}
        for s, value in self._mean_nll(stale).items():
            self.stage_state[s].update(val_loss=value, val_step=self.step)
        per_stage = {s: st["val_loss"] for s, st in self.stage_state.items() if st["val_loss"] is not None}
        self.last_val_stages, self.last_val_step = per_stage, self.step
        self.last_val = sum(per_stage.values()) / len(per_stage) if per_stage else None
        return self.last_val

    def _early_stop_update(self, stage: str, val: float) -> bool:
        """Track the stage's best validation loss; True when its patience has run out."""
        st = self.stage_state[stage]
        if st["best_eval"] is None or val < st["best_eval"] - self.cfg.min_delta:
            st["best_eval"], st["bad_evals"] = val, 0
        else:
            st["bad_evals"] += 1
        return self.cfg.patience > 0 and st["bad_evals"] >= self.cfg.patience

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
        """Write a checkpoint of the current step atomically and report it. It is the `best` of
        each stage whose validation loss it lowers (and `best` overall for the lowest mean)."""
        cfg = self.cfg
        val = self.last_val if self.last_val_step == self.step else self._validate()
        val_stages = dict(self.last_val_stages)
        final = self.run_dir / ckpt.checkpoint_name(self.step)
        is_best = val is not None and (self.best_val is None or val < self.best_val)
        best_val, best_path = (val, str(final)) if is_best else (self.best_val, self.best_path)
        best_for = [s for s in cfg.stages if s in val_stages
                    and (s not in self.stage_best or val_stages[s] < self.stage_best[s]["val_loss"])]
        stage_best = {**self.stage_best,
                      **{s: {"step": self.step, "val_loss": val_stages[s], "path": str(final)} for s in best_for}}
        forgetting = self._forgetting()
        metrics = {"step": self.step, "val_loss": val, "loss": self.history[-1]["loss"] if self.history else None,
                   "val_loss_stages": val_stages, "best_stages": best_for, "stage_status": self.stage_status(),
                   "forgetting": forgetting}
        manifest = {"method": cfg.method, "stages": list(cfg.stages), "base_model": self.base_model,
                    "base_signature": self.base_signature, "dataset": self.dataset,
                    "hyperparameters": cfg.to_dict(), "metrics": metrics, "parent_checkpoint": str(final)}

        optimizer_states = self.dist.optimizer_states(self.optimizers)  # collective under FSDP: every rank
        rng = self.dist.rng_states(rng_state(self.device))

        def write_files(folder: Path) -> None:
            from safetensors.torch import save_file

            if cfg.method == "lora":  # the full method's weights live in adapter/<stage>/ only
                save_file({n: p.detach().contiguous().cpu() for n, p in self.params.items()},
                          folder / "trainable.safetensors")
            torch.save({"optimizers": optimizer_states,
                        "schedulers": {s: sch.state_dict() for s, sch in self.schedulers.items()},
                        "scaler": self.scaler.state_dict()}, folder / "optimizer.pt")
            torch.save(rng, folder / "rng.pt")
            A.write_adapter(self.bark, folder / "adapter", manifest)

        state = {"state_version": STATE_VERSION, "config": cfg.to_dict(), "max_steps": self.max_steps,
                 "stage_steps": self.stage_steps, "stage_state": self.stage_state, "stage_best": stage_best,
                 "samplers": {s: smp.state() for s, smp in self.samplers.items()},
                 "train_examples": {s: len(v) for s, v in self.train_ex.items()},
                 "best_val": best_val, "best_path": best_path,
                 "val_loss": val, "metrics": metrics, "guard_base": self.guard_base,
                 "history": self.history, "base_model": self.base_model, "dataset": self.dataset}
        before = set(ckpt.list_checkpoints(self.run_dir))
        with self.dist.full_weights():  # rank 0 writes, once; FSDP gathers the full weights first
            path = self.dist.main_only(lambda: ckpt.write_checkpoint(
                self.run_dir, self.step, write_files, state, is_best=is_best, best_stages=best_for,
                keep_last=cfg.keep_last), default=final)
        self.best_val, self.best_path, self.stage_best = best_val, best_path, stage_best
        self.last_saved_step = self.step
        deleted = sorted(str(p) for p in before - set(ckpt.list_checkpoints(self.run_dir)) if p != path)
        self.on_checkpoint({"step": self.step, "path": str(path), "val_loss": val, "is_best": is_best,
                            "val_loss_stages": val_stages, "best_stages": best_for,
                            "deleted": deleted, "forgetting": forgetting})
        return path

    def _restore(self, state: dict) -> None:
        """Put weights, optimizer, scheduler, scaler, RNG, data positions and counters back."""
        folder = Path(state["path"])
        if state.get("state_version") != STATE_VERSION:
            raise ckpt.CheckpointError(
                f"checkpoint {str(folder)!r} was written before stages had their own schedules, so it cannot be "
                f"resumed exactly; its adapter folder still loads and generates (start a new training job to "
                f"train on)")
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
                self.dist.load_param(p, weights[n])
        for s in self.cfg.stages:
            self.dist.load_optimizer(self.optimizers[s], opt["optimizers"][s])
            self.schedulers[s].load_state_dict(opt["schedulers"][s])
        self.scaler.load_state_dict(opt["scaler"])
        set_rng_state(self.dist.my_rng(rng), self.device)
        for s, smp in self.samplers.items():
            smp.load(state["samplers"][s])
        self.step = int(state["step"])
        self.stage_steps = {s: int(v) for s, v in state["stage_steps"].items()}
        self.max_steps = int(state["max_steps"])
        self.stage_state = {s: dict(v) for s, v in state["stage_state"].items()}
        self.stage_best = {s: dict(v) for s, v in (state.get("stage_best") or {}).items()}
        self.best_val, self.best_path = state.get("best_val"), state.get("best_path")
        self.last_val, self.last_val_step = state.get("val_loss"), self.step
        self.last_val_stages = (state.get("metrics") or {}).get("val_loss_stages") or {}
        self.history = list(state.get("history") or [])
        self.guard_base = state.get("guard_base") or {}
        self.last_saved_step = self.step


def assemble_best_adapter(result: TrainResult, folder) -> tuple[dict, dict[str, Path]]:
    """Fill `folder` with the adapter that takes each stage from its own best checkpoint (from the
    last checkpoint for a stage without validation data). Returns (manifest, {stage: checkpoint})."""
    sources = {}
    for stage, info in result.stages.items():
        best = Path(info["best_checkpoint"]) if info.get("best_checkpoint") else None
        sources[stage] = best if best is not None and (best / "adapter").is_dir() else Path(result.last_checkpoint)
    record = {s: {"checkpoint": str(f), **{k: result.stages[s].get(k) for k in ("best_step", "best_val_loss", "epochs",
                                                                                  "steps", "status")}}
              for s, f in sources.items()}
    manifest = A.assemble_adapter({s: f / "adapter" for s, f in sources.items()}, folder,
                                  {"stage_checkpoints": record})
    return manifest, sources


def describe(recipe: TrainingRecipe) -> dict:
    """What a run will do (after setup): for logs and the cost estimate."""
    return {"stages": list(recipe.cfg.stages), "method": recipe.cfg.method, "max_steps": recipe.max_steps,
            "stage_steps": dict(recipe.stage_steps),
            "steps_per_epoch": {s: round(v, 4) for s, v in recipe.steps_per_epoch.items()},
            "trainable_params": recipe.n_trainable,
            "total_params": recipe.n_total, "device": str(recipe.device), "precision": recipe.precision,
            "train_examples": {s: len(v) for s, v in recipe.train_ex.items()},
            "val_examples": {s: len(v) for s, v in recipe.val_ex.items()},
            "train_clips": len(recipe.train_items), "val_clips": len(recipe.val_items),
            "voice_prompted_clips": sum(x.history is not None for x in recipe.train_items + recipe.val_items),
            "skipped": [reason for s in recipe.cfg.stages if hasattr(recipe.objectives[s], "skipped")
                        for reason in recipe.objectives[s].skipped(recipe.train_items + recipe.val_items)]}


def dump_config(cfg: TrainConfig) -> str:
    return json.dumps(cfg.to_dict(), indent=2)
