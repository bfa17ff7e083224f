"""What other rooms read from curation (training, voices, experiments). Signatures are stable.

    training_items(db, "my-set")  -> [{path, text, speaker, labels, sha256, duration, ...}]  (latest ready version)
    clip_labels(item)             -> {"speaker": "alice", "accent": 0.3}  (studio.datasets.labels)
    dataset_hash(db, "my-set")    -> "ab12..."  (changes when a segment or its text changes)

`db` is the workspace's Database (a Workspace is accepted too). Paths are absolute: segments are
stored inside the workspace, found from the SQLite file's folder or `root`."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sqlalchemy import func, select

from studio.datasets.models import Clip, Segment, Transcript
from studio.datasets.segtext import segment_text
from studio.datasets.store import get_dataset_row, latest_version
from studio.errors import UserError


def _split(db_or_ws, root) -> tuple[object, Path]:
    if hasattr(db_or_ws, "db") and hasattr(db_or_ws, "root"):  # a Workspace
        return db_or_ws.db, Path(db_or_ws.root)
    db = db_or_ws
    if root is not None:
        return db, Path(root)
    url = getattr(db, "url", "")
    if url.startswith("sqlite:///"):
        return db, Path(url.removeprefix("sqlite:///")).resolve().parent
    home = os.environ.get("BARK_STUDIO_HOME")
    if home:
        return db, Path(home).expanduser().resolve()
    raise UserError("cannot tell where the workspace is: pass root= (the database is not a SQLite file)")


def segments_with_text(s, dataset_id: int, version_id: int, clip_id: int | None = None) -> list[dict]:
    """Every segment of a version (kept or not; only one clip's when clip_id is given) with its clip
    facts and its current text."""
    where = [Segment.version_id == version_id] + ([Segment.clip_id == clip_id] if clip_id is not None else [])
    per_clip = dict(s.execute(select(Segment.clip_id, func.count(Segment.id)).where(*where)
                              .group_by(Segment.clip_id)).all())
    rows = s.execute(select(Segment, Clip, Transcript).join(Clip, Clip.id == Segment.clip_id)
                     .outerjoin(Transcript, Transcript.clip_id == Clip.id)
                     .where(*where).order_by(Segment.clip_id, Segment.index))
    out = []
    for seg, clip, tr in rows:
        text = segment_text(tr.text if tr else None, tr.words if tr else None, seg.start, seg.end,
                            whole_clip=per_clip.get(seg.clip_id, 0) == 1)
        out.append({"segment_id": seg.id, "clip_id": clip.id, "clip_name": clip.name, "index": seg.index,
                    "blob": seg.blob, "sha256": seg.sha256, "parent_sha256": seg.parent_sha256,
                    "start": seg.start, "end": seg.end, "duration": seg.duration, "lufs": seg.lufs,
                    "peak_db": seg.peak_db, "snr_db": seg.snr_db, "clipped_fraction": seg.clipped_fraction,
                    "kept": seg.kept, "reject_reason": seg.reject_reason, "text": text,
                    "transcript_source": tr.source if tr else None, "speaker": clip.speaker,
                    "labels": dict(clip.labels or {}),
                    "provenance": clip.provenance, "in_use": clip.excluded_at is None and clip.deleted_at is None})
    return out


def prepared_segments(db, dataset_name: str, version: int | None = None, root: str | os.PathLike | None = None) -> list[dict]:
    """Every segment of a prepared version (default: the newest ready one), kept or rejected, with
    its absolute path and its current text (None where it cannot be told yet)."""
    from studio.datasets.models import PreparedVersion

    db, base = _split(db, root)
    with db.read() as s:
        ds = get_dataset_row(s, dataset_name)
        if version is None:
            v = latest_version(s, ds.id)
        else:
            v = s.scalar(select(PreparedVersion).where(PreparedVersion.dataset_id == ds.id,
                                                       PreparedVersion.version == version))
        if v is None:
            raise UserError(f"dataset {dataset_name!r} has no prepared version{'' if version is None else f' {version}'}")
        return [{**seg, "path": str(base / seg["blob"]), "version": v.version}
                for seg in segments_with_text(s, ds.id, v.id)]


def training_items(db, dataset_name: str, root: str | os.PathLike | None = None) -> list[dict]:
    """Each kept segment of the newest ready version that has text: absolute 24 kHz wav path,
    text, speaker, sha256, duration (plus clip/segment ids, cut times and the version number)."""
    db, base = _split(db, root)
    with db.read() as s:
        ds = get_dataset_row(s, dataset_name)
        version = latest_version(s, ds.id)
        if version is None:
            raise UserError(f"dataset {dataset_name!r} has no prepared version; run `bark-studio dataset prepare {dataset_name}`")
        items = []
        for seg in segments_with_text(s, ds.id, version.id):
            if not seg["kept"] or not seg["text"] or not seg["in_use"]:  # excluded clips stay out of training
                continue
            items.append({"path": str(base / seg["blob"]), "text": seg["text"], "speaker": seg["speaker"],
                          "labels": seg["labels"],
                          "sha256": seg["sha256"], "duration": seg["duration"], "clip_id": seg["clip_id"],
                          "segment_id": seg["segment_id"], "start": seg["start"], "end": seg["end"],
                          "provenance": seg["provenance"], "version": version.version})
        return items


def dataset_hash(db, name: str) -> str:
    """SHA-256 over the training items' audio hashes, texts, speakers and labels, in order, plus the
    version's settings hash: equal hashes mean the same training data."""
    items = training_items(db, name)
    with _split(db, None)[0].read() as s:
        version = latest_version(s, get_dataset_row(s, name).id)
        settings = version.settings_hash
    h = hashlib.sha256(settings.encode())
    for it in items:
        facts = [it["sha256"], it["text"], it["speaker"]] + ([it["labels"]] if it["labels"] else [])  # unlabelled: hash as before
        h.update(json.dumps(facts, ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()
