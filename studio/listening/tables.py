"""Listening-test rows. Names that reveal a system (system names, source paths) live only in
owner-side tables; what a rater sees is addressed by random opaque ids."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, JSON, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from studio.db import Base, utcnow

SESSION_STATUSES = ("preparing", "open", "closed", "failed")
TEST_TYPES = ("ab", "mos")
SYSTEM_KINDS = ("system", "reference", "trap")  # reference: hidden real recordings; trap: degraded gold
STIMULUS_ROLES = ("test", "trap", "voice_reference")


class ListenSession(Base):
    __tablename__ = "listen_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)  # in rater URLs; random
    name: Mapped[str] = mapped_column(String(200))
    test_type: Mapped[str] = mapped_column(String(8))  # "ab" | "mos"
    question: Mapped[str] = mapped_column(Text)  # exactly what raters read
    question_preset: Mapped[str] = mapped_column(String(20))
    voice_label: Mapped[str | None] = mapped_column(String(200))  # rater-facing, chosen by the owner
    allow_no_preference: Mapped[bool] = mapped_column(Boolean, default=False)
    trials_per_rater: Mapped[int] = mapped_column(Integer)
    n_gold: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int] = mapped_column(Integer)
    target_lufs: Mapped[float] = mapped_column(Float)  # the common loudness every stimulus was set to
    sample_rate: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), index=True, default="open")
    job_id: Mapped[int | None] = mapped_column(Integer)  # the listening_stimuli job that prepared it
    notes: Mapped[list] = mapped_column(JSON, default=list)  # warnings from preparation
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)


class ListenSystem(Base):
    __tablename__ = "listen_systems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("listen_sessions.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))  # owner-side only
    kind: Mapped[str] = mapped_column(String(16), default="system")
    source: Mapped[str] = mapped_column(Text, default="")  # folder or generation spec; owner-side only
    position: Mapped[int] = mapped_column(Integer, default=0)


class ListenItem(Base):
    """One utterance (a prompt / file stem) that every system has a stimulus for."""

    __tablename__ = "listen_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("listen_sessions.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    text: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(Integer)


class ListenStimulus(Base):
    __tablename__ = "listen_stimuli"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("listen_sessions.id", ondelete="CASCADE"), index=True)
    system_id: Mapped[int | None] = mapped_column(ForeignKey("listen_systems.id", ondelete="CASCADE"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("listen_items.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16), default="test")
    opaque_id: Mapped[str] = mapped_column(String(32), unique=True)  # the only name a rater sees
    path: Mapped[str] = mapped_column(String(500))  # loudness-matched WAV, relative to the workspace
    source_path: Mapped[str] = mapped_column(Text, default="")  # owner-side only
    duration_s: Mapped[float] = mapped_column(Float)
    source_lufs: Mapped[float | None] = mapped_column(Float)
    gain_db: Mapped[float] = mapped_column(Float, default=0.0)
    seed: Mapped[int | None] = mapped_column(Integer)


class ListenRater(Base):
    __tablename__ = "listen_raters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("listen_sessions.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(60))
    selector: Mapped[str] = mapped_column(String(16), unique=True)  # public half of the token
    token_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the secret half
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    assignment_seed: Mapped[int] = mapped_column(Integer)  # randomised order and sides, reproducible
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)  # owner excluded from results
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    consented_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class ListenAssignment(Base):
    """One trial of one rater, in that rater's stored random order with its stored sides."""

    __tablename__ = "listen_assignments"
    __table_args__ = (UniqueConstraint("rater_id", "position", name="uq_listen_assignments_rater_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("listen_sessions.id", ondelete="CASCADE"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("listen_raters.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    opaque_id: Mapped[str] = mapped_column(String(32), unique=True)  # trial id sent to the browser
    item_id: Mapped[int] = mapped_column(ForeignKey("listen_items.id", ondelete="CASCADE"))
    stimulus_a_id: Mapped[int] = mapped_column(ForeignKey("listen_stimuli.id", ondelete="CASCADE"))
    stimulus_b_id: Mapped[int | None] = mapped_column(ForeignKey("listen_stimuli.id", ondelete="CASCADE"))
    swapped: Mapped[bool] = mapped_column(Boolean, default=False)  # A/B: side A holds the pair's 2nd system
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    expected: Mapped[str | None] = mapped_column(String(8))  # gold: "A"/"B"; MOS trap: "<=2"
    presented_at: Mapped[datetime | None] = mapped_column(DateTime)  # first served (server clock)


class ListenVote(Base):
    """One rater's answer to one trial: everything needed to analyse it without joins."""

    __tablename__ = "listen_votes"
    __table_args__ = (UniqueConstraint("rater_id", "assignment_id", name="uq_listen_votes_rater_trial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("listen_sessions.id", ondelete="CASCADE"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("listen_raters.id", ondelete="CASCADE"))
    assignment_id: Mapped[int] = mapped_column(ForeignKey("listen_assignments.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("listen_items.id", ondelete="CASCADE"))
    system_a_id: Mapped[int] = mapped_column(ForeignKey("listen_systems.id", ondelete="CASCADE"))
    system_b_id: Mapped[int | None] = mapped_column(ForeignKey("listen_systems.id", ondelete="CASCADE"))
    stimulus_a_id: Mapped[int] = mapped_column(Integer)
    stimulus_b_id: Mapped[int | None] = mapped_column(Integer)
    swapped: Mapped[bool] = mapped_column(Boolean, default=False)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    seed: Mapped[int | None] = mapped_column(Integer)  # the item's generation seed, when generated
    plays_a: Mapped[int] = mapped_column(Integer, default=0)
    plays_b: Mapped[int] = mapped_column(Integer, default=0)
    listened_a_s: Mapped[float] = mapped_column(Float, default=0.0)
    listened_b_s: Mapped[float] = mapped_column(Float, default=0.0)
    response: Mapped[str] = mapped_column(String(8))  # "A" | "B" | "none" | "1".."5"
    score: Mapped[int | None] = mapped_column(Integer)  # MOS 1..5
    chosen_system_id: Mapped[int | None] = mapped_column(Integer)  # A/B winner; None for no preference
    response_time_ms: Mapped[int | None] = mapped_column(Integer)  # client: trial shown -> vote
    server_elapsed_ms: Mapped[int] = mapped_column(Integer)  # server: presented -> vote received
    presented_at: Mapped[datetime] = mapped_column(DateTime)
    client_submitted_at: Mapped[str | None] = mapped_column(String(40))  # as the browser reported it
    recorded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
