"""Datasets, clips, trims and transcripts: the reads and writes the CLI, the UI and the jobs share."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from models.names import name_pattern
from studio.datasets.models import (PROVENANCE, TRANSCRIPT_SOURCES, Clip, Dataset, PreparedVersion, Transcript,
                                    TranscriptEdit)
from studio.db import Database, utcnow
from studio.errors import NotFound, UserError

DATASET_NAME_RE = name_pattern(100)
MIN_TRIM_S = 0.4


# Datasets ----------------------------------------------------------------------------------

def create_dataset(db: Database, name: str, description: str = "", settings: dict | None = None,
                   allow_free_tags: bool = False) -> dict:
    if not DATASET_NAME_RE.match(name or ""):
        raise UserError(f"dataset name {name!r} must be 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit")
    with db.write() as s:
        if s.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
            raise UserError(f"dataset {name!r} already exists")
        ds = Dataset(name=name, description=description, settings=settings or {}, allow_free_tags=allow_free_tags)
        s.add(ds)
        s.flush()
        return dataset_dict(ds)


def dataset_dict(ds: Dataset) -> dict:
    return {"id": ds.id, "name": ds.name, "description": ds.description, "settings": ds.settings,
            "allow_free_tags": ds.allow_free_tags, "tags": list(ds.tags or []), "created_at": ds.created_at.isoformat(timespec="seconds") + "Z"}


def get_dataset_row(s, name: str) -> Dataset:
    ds = s.scalar(select(Dataset).where(Dataset.name == name))
    if ds is None:
        raise NotFound(f"no dataset named {name!r} (create it with `bark-studio dataset create {name}`)")
    return ds


def get_dataset(db: Database, name: str) -> dict:
    with db.read() as s:
        return dataset_dict(get_dataset_row(s, name))


def list_datasets(db: Database) -> list[dict]:
    with db.read() as s:
        counts = dict(s.execute(select(Clip.dataset_id, func.count(Clip.id)).where(Clip.in_use())
                                .group_by(Clip.dataset_id)).all())
        durations = dict(s.execute(select(Clip.dataset_id, func.sum(Clip.duration)).where(Clip.in_use())
                                   .group_by(Clip.dataset_id)).all())
        out = []
        for ds in s.scalars(select(Dataset).order_by(Dataset.name)):
            d = dataset_dict(ds)
            d["clips"] = counts.get(ds.id, 0)
            d["duration_s"] = round(durations.get(ds.id) or 0.0, 2)
            out.append(d)
        return out


def update_settings(db: Database, name: str, settings: dict | None = None, allow_free_tags: bool | None = None) -> dict:
    with db.write() as s:
        ds = get_dataset_row(s, name)
        if settings:
            ds.settings = {**ds.settings, **settings}
        if allow_free_tags is not None:
            ds.allow_free_tags = allow_free_tags
        return dataset_dict(ds)


# Clips -------------------------------------------------------------------------------------

def clip_dict(c: Clip, t: Transcript | None = None) -> dict[str, Any]:
    start, end = trim_bounds(c)
    return {"id": c.id, "name": c.name, "sha256": c.sha256, "blob": c.blob, "format": c.format,
            "sample_rate": c.sample_rate, "channels": c.channels, "duration": round(c.duration, 3),
            "source": c.source, "licence": c.licence, "speaker": c.speaker, "labels": dict(c.labels or {}),
            "provenance": c.provenance,
            "trim_start": c.trim_start, "trim_end": c.trim_end, "trimmed_duration": round(end - start, 3),
            "can_undo_trim": bool(c.trim_history), "state": clip_state(c),
            "text": t.text if t else None, "transcript_source": t.source if t else None,
            "asr_text": t.asr_text if t else None, "has_words": bool(t and t.words)}


def clip_state(c: Clip) -> str:
    """'deleted', 'excluded' or 'active' (only active clips reach prepare, training and the report)."""
    return "deleted" if c.deleted_at else "excluded" if c.excluded_at else "active"


def trim_bounds(c: Clip) -> tuple[float, float]:
    start = c.trim_start if c.trim_start is not None else 0.0
    end = c.trim_end if c.trim_end is not None else c.duration
    return start, end


def list_clips(db: Database, name: str, *, deleted: bool = False) -> list[dict]:
    """The dataset's clips, excluded ones included (marked by 'state'); deleted ones only when asked."""
    with db.read() as s:
        ds = get_dataset_row(s, name)
        q = select(Clip, Transcript).outerjoin(Transcript, Transcript.clip_id == Clip.id).where(Clip.dataset_id == ds.id)
        rows = s.execute((q if deleted else q.where(Clip.deleted_at.is_(None))).order_by(Clip.id))
        return [clip_dict(c, t) for c, t in rows]


def get_clip(db: Database, clip_id: int) -> dict:
    with db.read() as s:
        c = s.get(Clip, clip_id)
        if c is None:
            raise NotFound(f"no clip {clip_id}")
        t = s.scalar(select(Transcript).where(Transcript.clip_id == clip_id))
        out = clip_dict(c, t)
        out["dataset"] = s.get(Dataset, c.dataset_id).name
        out["peaks"] = c.peaks
        out["words"] = t.words if t else []
        out["trim_history"] = c.trim_history
        return out


def clip_file(db: Database, clip_id: int) -> tuple[str, str] | None:
    """(name, stored blob path) of a clip, or None when there is no such clip."""
    with db.read() as s:
        c = s.get(Clip, clip_id)
        return (c.name, c.blob) if c is not None else None


def clips_to_transcribe(db: Database, name: str, *, redo: bool = False, clip_ids=None) -> list[tuple[int, str, str]]:
    """(id, name, blob) of the dataset's clips without ASR text (every clip with `redo`), only
    `clip_ids` when given."""
    with db.read() as s:
        ds = get_dataset_row(s, name)
        q = select(Clip.id, Clip.name, Clip.blob, Transcript.asr_text).outerjoin(Transcript, Transcript.clip_id == Clip.id) \
            .where(Clip.dataset_id == ds.id).order_by(Clip.id)
        return [(cid, cname, blob) for cid, cname, blob, asr in s.execute(q)
                if (redo or asr is None) and (not clip_ids or cid in clip_ids)]


def set_clip_info(db: Database, clip_id: int, *, speaker: str | None = None, source: str | None = None,
                  licence: str | None = None, provenance: str | None = None) -> dict:
    if provenance is not None and provenance not in PROVENANCE:
        raise UserError(f"provenance must be one of {', '.join(PROVENANCE)}, not {provenance!r}")
    with db.write() as s:
        c = s.get(Clip, clip_id)
        if c is None:
            raise NotFound(f"no clip {clip_id}")
        for field, value in (("speaker", speaker), ("source", source), ("licence", licence), ("provenance", provenance)):
            if value is not None:
                setattr(c, field, value)
        return clip_dict(c)


# Exclude and delete: flags with undo; the stored audio and every record stay ---------------

def _set_flag(db: Database, clip_id: int, field: str, on: bool) -> dict:
    with db.write() as s:
        c = s.get(Clip, clip_id)
        if c is None:
            raise NotFound(f"no clip {clip_id}")
        already = getattr(c, field) is not None
        if already == on:
            word = {"excluded_at": "excluded", "deleted_at": "deleted"}[field]
            raise UserError(f"clip {clip_id} ({c.name}) is {'already' if on else 'not'} {word}")
        setattr(c, field, utcnow() if on else None)
        return clip_dict(c)


def exclude_clip(db: Database, clip_id: int, undo: bool = False) -> dict:
    """Leave a clip out of prepare, tokenize, training and the report (undo: take it back in)."""
    return _set_flag(db, clip_id, "excluded_at", not undo)


def delete_clip(db: Database, clip_id: int, undo: bool = False) -> dict:
    """Soft delete: the clip is hidden and left out everywhere; its audio stays, so undo restores it."""
    return _set_flag(db, clip_id, "deleted_at", not undo)


# Trims: numbers on the clip, with an undo stack; the original file never changes --------------

def set_trim(db: Database, clip_id: int, start: float | None, end: float | None) -> dict:
    with db.write() as s:
        c = s.get(Clip, clip_id)
        if c is None:
            raise NotFound(f"no clip {clip_id}")
        lo = 0.0 if start is None else float(start)
        hi = c.duration if end is None else float(end)
        if lo < 0 or hi > c.duration + 1e-6:
            raise UserError(f"clip {clip_id} ({c.name}): trim {lo:.2f}-{hi:.2f} s lies outside its {c.duration:.2f} s")
        if hi - lo < MIN_TRIM_S:
            raise UserError(f"clip {clip_id} ({c.name}): a trim must keep at least {MIN_TRIM_S} s (asked {hi - lo:.2f} s)")
        c.trim_history = [*c.trim_history, [c.trim_start, c.trim_end]]
        c.trim_start = round(lo, 4) if lo > 0 else None
        c.trim_end = round(min(hi, c.duration), 4) if hi < c.duration - 1e-6 else None
        return clip_dict(c)


def undo_trim(db: Database, clip_id: int) -> dict:
    with db.write() as s:
        c = s.get(Clip, clip_id)
        if c is None:
            raise NotFound(f"no clip {clip_id}")
        if not c.trim_history:
            raise UserError(f"clip {clip_id} ({c.name}): no trim to undo")
        *rest, (c.trim_start, c.trim_end) = c.trim_history
        c.trim_history = rest
        return clip_dict(c)


# Transcripts and their edit history --------------------------------------------------------

def set_transcript(db: Database, clip_id: int, text: str, *, source: str = "human", by: str = "user") -> dict:
    """Write a transcript text; every change is an edit row (undoable). A user's edit marks it human-checked."""
    if source not in TRANSCRIPT_SOURCES:
        raise UserError(f"transcript source must be one of {', '.join(TRANSCRIPT_SOURCES)}")
    text = " ".join((text or "").split())
    with db.write() as s:
        c = s.get(Clip, clip_id)
        if c is None:
            raise NotFound(f"no clip {clip_id}")
        t = s.scalar(select(Transcript).where(Transcript.clip_id == clip_id))
        before, source_before = (t.text, t.source) if t else (None, None)
        if t is None:
            t = Transcript(clip_id=clip_id, text=text, source=source, words=[])
            s.add(t)
        elif t.text == text and t.source == source:
            return {"clip_id": clip_id, "text": text, "source": source, "changed": False}
        t.text, t.source, t.updated_at = text, source, utcnow()
        s.add(TranscriptEdit(clip_id=clip_id, before=before, after=text, source_before=source_before,
                             source_after=source, by=by, undone=False))
        return {"clip_id": clip_id, "text": text, "source": source, "changed": True}


def record_asr(db: Database, clip_id: int, text: str, words: list[dict], model: str, language: str | None) -> dict:
    """Store what Whisper heard. A human-checked transcript keeps its text (only the ASR text and
    word times are refreshed); otherwise the machine text replaces the old machine text."""
    text = " ".join((text or "").split())
    with db.write() as s:
        t = s.scalar(select(Transcript).where(Transcript.clip_id == clip_id))
        if t is None:
            t = Transcript(clip_id=clip_id, text=text, source="machine", words=[])
            s.add(t)
            s.add(TranscriptEdit(clip_id=clip_id, before=None, after=text, source_before=None,
                                 source_after="machine", by="asr", undone=False))
        elif t.source == "machine" and t.text != text:
            s.add(TranscriptEdit(clip_id=clip_id, before=t.text, after=text, source_before=t.source,
                                 source_after="machine", by="asr", undone=False))
            t.text = text
        t.asr_text, t.words, t.asr_model, t.language, t.updated_at = text, words, model, language, utcnow()
        return {"clip_id": clip_id, "text": t.text, "source": t.source, "asr_text": text}


def transcript_history(db: Database, clip_id: int) -> list[dict]:
    with db.read() as s:
        rows = s.scalars(select(TranscriptEdit).where(TranscriptEdit.clip_id == clip_id).order_by(TranscriptEdit.id))
        return [{"id": e.id, "before": e.before, "after": e.after, "source_before": e.source_before,
                 "source_after": e.source_after, "by": e.by, "undone": e.undone,
                 "at": e.at.isoformat(timespec="seconds") + "Z"} for e in rows]


def undo_transcript(db: Database, clip_id: int) -> dict:
    """Undo the newest edit still in force: the text and its machine/human flag go back."""
    with db.write() as s:
        edit = s.scalar(select(TranscriptEdit).where(TranscriptEdit.clip_id == clip_id, TranscriptEdit.undone.is_(False))
                        .order_by(TranscriptEdit.id.desc()).limit(1))
        if edit is None:
            raise UserError(f"clip {clip_id}: no transcript edit to undo")
        t = s.scalar(select(Transcript).where(Transcript.clip_id == clip_id))
        edit.undone = True
        if edit.before is None:
            s.delete(t)
            return {"clip_id": clip_id, "text": None, "source": None}
        t.text, t.source, t.updated_at = edit.before, edit.source_before or "machine", utcnow()
        return {"clip_id": clip_id, "text": t.text, "source": t.source}


def mark_checked(db: Database, clip_id: int) -> dict:
    """A user read the machine transcript and found it right."""
    with db.read() as s:
        t = s.scalar(select(Transcript).where(Transcript.clip_id == clip_id))
        if t is None:
            raise UserError(f"clip {clip_id}: no transcript to mark as checked")
        text = t.text
    return set_transcript(db, clip_id, text, source="human")


# Prepared versions -------------------------------------------------------------------------

def latest_version(s, dataset_id: int, status: str = "ready") -> PreparedVersion | None:
    return s.scalar(select(PreparedVersion).where(PreparedVersion.dataset_id == dataset_id,
                                                  PreparedVersion.status == status)
                    .order_by(PreparedVersion.version.desc()).limit(1))


def list_versions(db: Database, name: str) -> list[dict]:
    with db.read() as s:
        ds = get_dataset_row(s, name)
        return [{"version": v.version, "status": v.status, "settings": v.settings, "settings_hash": v.settings_hash,
                 "job_id": v.job_id, "stats": v.stats, "created_at": v.created_at.isoformat(timespec="seconds") + "Z"}
                for v in s.scalars(select(PreparedVersion).where(PreparedVersion.dataset_id == ds.id)
                                   .order_by(PreparedVersion.version))]
