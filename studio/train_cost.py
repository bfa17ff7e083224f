"""The Train tab's cost estimate before launch: optimizer steps, tokens, time and memory.

Steps and tokens follow from the dataset (clip count and seconds) and the settings, the way the
training recipe counts them: each stage has its own schedule, max_steps or else max_epochs over that
stage's own examples (one semantic example per clip, a coarse one per 60-token sliding window, a fine
one per 1024-frame window and predicted codebook), and the run lasts as long as its longest stage. Time divides the
tokens by the newest throughput measured on this workspace (the `tokens_per_s` metric a training
job records), so it is honest about where the number comes from; with no measurement it says so.
Memory is a rough upper bound from parameter counts (weights, gradients, AdamW state) plus
activations. No torch here: this runs in the web process."""
from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select

from models.names import DEFAULT_METHOD
from studio import jobs
from studio.db import Database

SEMANTIC_HZ, CODEC_HZ = 49.9, 75.0
# target tokens per second of audio, per stage: semantic tokens, 2 interleaved coarse codebooks,
# fine codebooks 2..7 (the ones the fine stage predicts)
TOKENS_PER_SECOND = {"semantic": SEMANTIC_HZ, "coarse": 2 * CODEC_HZ, "fine": 6 * CODEC_HZ}
SEMANTIC_MAX_TOKENS = 767   # a longer clip gives no semantic example (one Bark pass makes at most this)
COARSE_WINDOW = 60          # coarse tokens per sliding window: one example each
FINE_WINDOW, FINE_HOP, FINE_CODEBOOKS = 1024, 512, 6  # frames per fine window, its hop, codebooks predicted
# (layers, hidden) per stage of each base; tiny is the random test preset.
SHAPES = {"suno/bark-small": (12, 768), "small": (12, 768), "suno/bark": (24, 1024), "large": (24, 1024),
          "tiny": (2, 64)}


@dataclass
class Estimate:
    steps: int  # the longest stage's
    tokens: int
    seconds: float | None  # None: no throughput measured yet on this workspace
    tokens_per_s: float | None
    memory_gb: float
    basis: str  # where the time comes from
    stage_steps: dict[str, int]  # each stage's own schedule

    def markdown(self) -> str:
        time = (f"about **{duration_text(self.seconds)}** at {self.tokens_per_s:,.0f} tokens/s ({self.basis})"
                if self.seconds is not None else f"unknown until a first run measures throughput ({self.basis})")
        per_stage = ", ".join(f"{s} {n:,}" for s, n in self.stage_steps.items())
        return (f"**{self.steps:,}** optimizer steps ({per_stage}) · **{self.tokens:,}** tokens · time {time} · "
                f"memory about **{self.memory_gb:.1f} GB** (rough upper bound)")


def duration_text(seconds: float) -> str:
    """'40 s', '12 min', '3.5 h': an estimate's length as a person reads it."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def examples_per_clip(stage: str, seconds: float) -> int:
    """Training examples one clip of `seconds` gives a stage (models.layouts builds them)."""
    if stage == "semantic":
        return 1 if seconds * SEMANTIC_HZ <= SEMANTIC_MAX_TOKENS else 0
    if stage == "coarse":
        return max(1, math.ceil(seconds * TOKENS_PER_SECOND["coarse"] / COARSE_WINDOW))
    windows = 1 + max(0, math.ceil((seconds * CODEC_HZ - FINE_WINDOW) / FINE_HOP))
    return windows * FINE_CODEBOOKS


def train_clips(n_items: int, settings: dict) -> int:
    return max(1, round(n_items * (1 - float(settings.get("val_fraction", 0.1)))))


def stage_steps(n_items: int, seconds_per_item: float, stages: list[str], settings: dict) -> dict[str, int]:
    """Each stage's optimizer steps as the recipe counts them: max_steps, else max_epochs over that
    stage's own examples (clips taken at the dataset's mean length)."""
    if settings.get("max_steps"):
        return {s: int(settings["max_steps"]) for s in stages}
    per_step = int(settings.get("batch_size", 4)) * int(settings.get("grad_accum", 8))
    epochs = float(settings.get("max_epochs", 10))
    clips = train_clips(n_items, settings)
    return {s: max(1, math.ceil(epochs * clips * examples_per_clip(s, seconds_per_item) / per_step))
            for s in stages}


def last_throughput(db: Database, base_model: str | None = None) -> tuple[float | None, str]:
    """The newest `tokens_per_s` a training job recorded here (same base model when there is one)."""
    with db.read() as s:
        q = (select(jobs.JobMetric.value, jobs.Job.id, jobs.Job.params)
             .join(jobs.Job, jobs.Job.id == jobs.JobMetric.job_id)
             .where(jobs.JobMetric.name == "tokens_per_s", jobs.Job.kind == "train")
             .order_by(jobs.JobMetric.id.desc()).limit(200))
        rows = list(s.execute(q))
    same = [r for r in rows if base_model and (r.params or {}).get("base_model") == base_model]
    for pick in (same, rows):
        values = [r.value for r in pick[:20] if r.value and r.value > 0]
        if values:
            values.sort()
            return values[len(values) // 2], f"median of the last steps of job {pick[0].id}"
    return None, "no training measured on this worker yet"


def estimate(db: Database, *, n_items: int, audio_seconds: float, base_model: str, stages: list[str],
             settings: dict) -> Estimate:
    stages = list(stages) or ["semantic", "coarse", "fine"]
    per_item_s = audio_seconds / max(1, n_items)
    steps = stage_steps(n_items, per_item_s, stages, settings)
    per_step_items = int(settings.get("batch_size", 4)) * int(settings.get("grad_accum", 8))
    # every stage trains for its own steps; an example carries its clip's targets over its examples
    tokens = int(sum(steps[s] * per_step_items * per_item_s * TOKENS_PER_SECOND[s] / examples_per_clip(s, per_item_s)
                     for s in stages if examples_per_clip(s, per_item_s)))
    tps, basis = last_throughput(db, base_model)
    return Estimate(steps=max(steps.values()), tokens=tokens, seconds=tokens / tps if tps else None,
                    tokens_per_s=tps, memory_gb=memory_gb(base_model, stages, settings, per_item_s), basis=basis,
                    stage_steps=steps)


def memory_gb(base_model: str, stages: list[str], settings: dict, per_item_s: float) -> float:
    layers, hidden = SHAPES.get(base_model, SHAPES["suno/bark"])
    per_stage_params = 12 * layers * hidden * hidden + 2 * 10_000 * hidden  # blocks + embeddings/heads
    all_params = 3 * per_stage_params
    weights = all_params * 4  # fp32 copy of every stage (the codec is small beside them)
    trained = per_stage_params * len(stages)
    if settings.get("method", DEFAULT_METHOD) == "full":
        optimizer = trained * (4 + 8)  # gradients + AdamW's two moments, fp32
    else:
        r = int(settings.get("r", 16))
        lora = len(stages) * layers * 2 * r * (hidden + 3 * hidden)  # att_proj (h->3h) + out_proj
        optimizer = lora * (4 + 4 + 8)
    seq = min(1024, int(per_item_s * 2 * CODEC_HZ) + 256)
    activations = int(settings.get("batch_size", 4)) * seq * hidden * layers * 34  # per stage, in flight
    return round((weights + optimizer + activations) / 1e9 * 1.2, 2)  # +20% allocator slack
