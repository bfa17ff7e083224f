"""Experiments, their sweeps (and evals) with every output, and the emergent-behaviour log.

References into other rooms' tables (a dataset, a voice-side generation, a listening session)
are plain integers or names, not foreign keys: an experiment outlives what it points at, and
the experiments migration depends on no other room's."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from studio.db import Base, utcnow

ARM_KINDS = ("base", "voice_prompt", "finetune", "adapter_scale", "adapter_mix")
SWEEP_MODES = ("grid", "random", "eval")
EMERGENT_SOURCES = ("auto", "manual")


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    hypothesis: Mapped[str] = mapped_column(Text, default="")
    dataset: Mapped[str | None] = mapped_column(String(200))  # dataset name or id in the curation room
    # [{name, kind (ARM_KINDS), model, voice, adapters: [{path, scale}], notes}]
    arms: Mapped[list] = mapped_column(JSON, default=list)
    prompts: Mapped[list] = mapped_column(JSON, default=list)  # test prompts (strings)
    listening_sessions: Mapped[list] = mapped_column(JSON, default=list)  # ids of listening sessions
    conclusion: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | concluded
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    concluded_at: Mapped[datetime | None] = mapped_column(DateTime)


class Sweep(Base):
    """A grid or random sweep over generation parameters, or an eval of given audio (mode eval)."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="SET NULL"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    mode: Mapped[str] = mapped_column(String(16))  # SWEEP_MODES
    space: Mapped[dict] = mapped_column(JSON, default=dict)  # the request: axes, fixed params, metric options
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    summary: Mapped[dict | None] = mapped_column(JSON)  # per-metric summaries, per arm, floors
    plots: Mapped[list] = mapped_column(JSON, default=list)  # workspace-relative PNG paths
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class SweepOutput(Base):
    """One generated (or evaluated) clip, with everything needed to make it again."""

    __tablename__ = "sweep_outputs"
    __table_args__ = (UniqueConstraint("sweep_id", "index", name="uq_sweep_outputs_sweep_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)  # position in the grid
    arm: Mapped[str] = mapped_column(String(200), default="")
    params: Mapped[dict] = mapped_column(JSON, default=dict)  # model, text, seed, temperatures, voice, adapters
    audio_path: Mapped[str | None] = mapped_column(String(500))  # workspace-relative
    audio_sha256: Mapped[str | None] = mapped_column(String(64))
    duration_s: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    descriptors: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)  # why this one output failed (the rest go on)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EmergentEntry(Base):
    """An output worth a second listen: flagged automatically as an outlier, or added by hand."""

    __tablename__ = "emergent_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    output_id: Mapped[int | None] = mapped_column(ForeignKey("sweep_outputs.id", ondelete="SET NULL"), index=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="SET NULL"), index=True)
    generation_id: Mapped[int | None] = mapped_column(Integer)  # a row of the voices room's generations
    audio_path: Mapped[str | None] = mapped_column(String(500))  # workspace-relative
    params: Mapped[dict] = mapped_column(JSON, default=dict)  # what reproduces it
    source: Mapped[str] = mapped_column(String(16))  # EMERGENT_SOURCES
    flag_reason: Mapped[str | None] = mapped_column(Text)  # auto: which descriptors, z, arm median
    tags: Mapped[list] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    stars: Mapped[int] = mapped_column(Integer, default=0)  # 0..5
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
