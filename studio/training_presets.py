"""What the Train tab offers, without importing torch (the web process loads no model): the three
presets (models.training_config's, torch-free), the advanced fields with a one-line explanation of
each one's cost, base models and stages. tests/test_tabs_train.py keeps every field name a
TrainConfig field and every default TrainConfig's."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import gradio as gr

from models.names import METHODS, STAGES  # noqa: F401  (the Train tab reads STAGES here)
from models.training_config import PRESETS, SCHEDULES, TARGET_PRESETS, TrainConfig
from studio.inference import DEFAULT_MODEL, TEST_MODEL, TEST_MODEL_LABEL

# (label, what the train job's `model` takes): presets, or type a hub id / local folder.
# The first is the default choice (studio.inference.DEFAULT_MODEL); tiny is last and labelled a test model.
BASE_MODELS = [("suno/bark-small (small)", DEFAULT_MODEL), ("suno/bark (large)", "large"), (TEST_MODEL_LABEL, TEST_MODEL)]
EVAL_SENTENCES = ("The quick brown fox jumps over the lazy dog.", "Well, I didn't expect that! [laughs]")
EVAL_SEED = 1234  # fixed, so every checkpoint is heard on the same sentences with the same seed
RECIPE_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
PRESET_LABELS = {"Quick LoRA": "quick", "Quality LoRA": "quality", "Full fine-tune": "full"}


@dataclass(frozen=True)
class Field:
    name: str  # the TrainConfig field it sets (its default is TrainConfig's)
    label: str
    info: str  # one line: what it does and what it costs
    kind: str = "float"  # float | int | optional_int | choice
    choices: tuple = ()

    @property
    def default(self) -> Any:
        value = RECIPE_DEFAULTS[self.name]
        return 0 if value is None and self.kind == "optional_int" else value  # 0 reads "not set" in the form

    def component(self, preset: str | None = None):
        """Its input, showing the preset's value (or the recipe default the preset keeps)."""
        value = PRESETS[preset].get(self.name, self.default) if preset else self.default
        common = dict(label=self.label, info=self.info, value=value, elem_id=f"train-adv-{self.name}")
        if self.kind == "choice":
            return gr.Dropdown(choices=list(self.choices), **common)
        if self.kind in ("int", "optional_int"):
            return gr.Number(precision=0, **common)
        return gr.Number(**common)

    def parse(self, value):
        if self.kind == "choice":
            return value
        if value in (None, ""):
            return None if self.kind == "optional_int" else self.default
        if self.kind in ("int", "optional_int"):
            v = int(value)
            return None if self.kind == "optional_int" and v <= 0 else v
        return float(value)


ADVANCED: list[Field] = [
    Field("method", "Method", "lora trains small adapters; full trains every weight (AdamW keeps ~3x the stage in memory).",
          "choice", METHODS),
    Field("r", "LoRA rank", "Adapter capacity; adapter size and its memory grow linearly with it.", "int"),
    Field("alpha", "LoRA alpha", "Scales the adapter's update by alpha / rank."),
    Field("dropout", "LoRA dropout", "Drops adapter inputs while training; guards small datasets against overfitting."),
    Field("targets", "LoRA targets", "attention only, or attention and MLP (about twice the adapter, more capacity).",
          "choice", tuple(TARGET_PRESETS)),
    Field("lr", "Learning rate", "Peak learning rate after warmup; too high diverges, too low barely moves."),
    Field("batch_size", "Batch size", "Examples per stage per micro-batch; memory grows linearly.", "int"),
    Field("grad_accum", "Gradient accumulation", "Micro-batches per optimizer step: a larger effective batch, same memory.",
          "int"),
    Field("max_steps", "Max steps", "Optimizer steps (0 = run max epochs); sets the run's time directly.",
          "optional_int"),
    Field("max_epochs", "Max epochs", "Passes over the data when max steps is 0; early stopping usually ends sooner."),
    Field("warmup_ratio", "Warmup ratio", "Share of steps with the learning rate rising from 0."),
    Field("schedule", "Schedule", "How the learning rate decays after warmup.", "choice", SCHEDULES),
    Field("weight_decay", "Weight decay", "AdamW decay on matrices; a mild guard against overfitting."),
    Field("max_grad_norm", "Max grad norm", "Clips the global gradient norm (0 = off); steadies early training."),
    Field("val_fraction", "Validation fraction", "Clips held out to measure validation loss (split by clip)."),
    Field("eval_every", "Evaluate every", "Steps between validation passes; each costs one pass over the held-out clips.",
          "int"),
    Field("save_every", "Save every", "Steps between checkpoints; each writes the trained weights and optimizer.",
          "int"),
    Field("patience", "Patience", "Validation passes without improvement before stopping early (0 = never).", "int"),
    Field("keep_last", "Keep last", "Checkpoints kept besides the best; each costs disk.", "int"),
    Field("precision", "Precision", "bf16/fp16 halve memory on a GPU; auto picks bf16 where the GPU has it.",
          "choice", ("auto", "fp32", "bf16", "fp16")),
    Field("seed", "Seed", "Adapter init, dropout and data order: the same seed repeats the run.", "int"),
]
