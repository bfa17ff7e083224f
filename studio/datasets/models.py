"""Tables of the curation room. Originals are rows pointing at content-addressed blobs and are
never modified; trims are numbers with an undo stack; a prepared version records its settings,
and each of its segments records its parent clip, the parent's hash and where it was cut."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from studio import jobs as _jobs  # noqa: F401 - prepared_versions.job_id references jobs.id
from studio.db import Base, utcnow

PROVENANCE = ("human", "ai")  # AI-generated audio in training data collapses models: the report warns
TRANSCRIPT_SOURCES = ("machine", "human")


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Prepare defaults for this dataset (loudness target, keep_dynamics, segment bounds, SNR filter...).
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    allow_free_tags: Mapped[bool] = mapped_column(Boolean, default=False)  # [thunder] etc. for creative sets
    # The dataset's own tags, bracket-free ("thunder"): the linter accepts them, the palette offers them.
    tags: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Clip(Base):
    __tablename__ = "clips"
    __table_args__ = (UniqueConstraint("dataset_id", "sha256", name="uq_clips_dataset_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))  # the name it arrived with (display only)
    sha256: Mapped[str] = mapped_column(String(64))  # the original's bytes, stored by this hash
    blob: Mapped[str] = mapped_column(String(300))  # path of the original, relative to the workspace
    format: Mapped[str] = mapped_column(String(20))
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    duration: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(500), default="")  # where it came from
    licence: Mapped[str] = mapped_column(String(500), default="")  # licence / consent note
    speaker: Mapped[str] = mapped_column(String(100), default="")
    # Further labels, name -> float (numeric: accent=0.3) or str (categorical: emotion=angry);
    # studio.datasets.labels owns them (clip_labels() merges in the speaker).
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    provenance: Mapped[str] = mapped_column(String(8), default="human")  # human | ai
    trim_start: Mapped[float | None] = mapped_column(Float)  # seconds; None = from the start
    trim_end: Mapped[float | None] = mapped_column(Float)  # seconds; None = to the end
    trim_history: Mapped[list] = mapped_column(JSON, default=list)  # earlier [start, end] pairs (undo)
    peaks: Mapped[list] = mapped_column(JSON, default=list)  # waveform envelope drawn without decoding
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Left out of prepare, tokenize, training and the report while set; both are undoable. A deleted
    # clip is also hidden from the clip lists, its stored audio kept so undo can bring it back.
    excluded_at: Mapped[datetime | None] = mapped_column(DateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)

    @classmethod
    def in_use(cls):
        """SQL condition: the clip is neither excluded nor deleted."""
        return cls.excluded_at.is_(None) & cls.deleted_at.is_(None)


class Transcript(Base):
    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), unique=True)
    text: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(8), default="machine")  # machine | human (checked)
    asr_text: Mapped[str | None] = mapped_column(Text)  # what Whisper heard, kept for the linter
    words: Mapped[list] = mapped_column(JSON, default=list)  # [{word, start, end}] on the clip's timeline
    asr_model: Mapped[str | None] = mapped_column(String(60))
    language: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TranscriptEdit(Base):
    """One change to a clip's transcript; undo restores `before` and marks the edit undone."""

    __tablename__ = "transcript_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), index=True)
    before: Mapped[str | None] = mapped_column(Text)  # None: there was no transcript
    after: Mapped[str] = mapped_column(Text)
    source_before: Mapped[str | None] = mapped_column(String(8))
    source_after: Mapped[str] = mapped_column(String(8))
    by: Mapped[str] = mapped_column(String(20))  # user | asr | import
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PreparedVersion(Base):
    __tablename__ = "prepared_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version", name="uq_prepared_dataset_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict] = mapped_column(JSON)
    settings_hash: Mapped[str] = mapped_column(String(64))
    # running | ready | failed | cancelled | interrupted (its job died; stats["interrupted"] says how)
    status: Mapped[str] = mapped_column(String(16), default="running")
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    stats: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class Segment(Base):
    """A derived 24 kHz mono file: parent clip and hash, cut times, and the measures taken on it."""

    __tablename__ = "segments"
    __table_args__ = (Index("ix_segments_version_clip", "version_id", "clip_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("prepared_versions.id", ondelete="CASCADE"))
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)  # order within the clip
    parent_sha256: Mapped[str] = mapped_column(String(64))
    start: Mapped[float] = mapped_column(Float)  # seconds on the original clip's timeline
    end: Mapped[float] = mapped_column(Float)
    sha256: Mapped[str] = mapped_column(String(64))
    blob: Mapped[str] = mapped_column(String(300))  # relative to the workspace
    duration: Mapped[float] = mapped_column(Float)
    lufs: Mapped[float | None] = mapped_column(Float)
    peak_db: Mapped[float | None] = mapped_column(Float)
    snr_db: Mapped[float | None] = mapped_column(Float)
    clipped_fraction: Mapped[float] = mapped_column(Float, default=0.0)
    kept: Mapped[bool] = mapped_column(Boolean, default=True)
    reject_reason: Mapped[str | None] = mapped_column(String(200))
