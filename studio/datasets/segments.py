"""One clip's prepared segments, for the Dataset tab's segment player and `dataset segments`.

    clip_segments(db, "my-set", "12")  -> {clip_id, clip_name, version, note, segments: [...]}

Each segment of the newest ready version carries its cut times on the original clip's timeline,
its measures, kept or not with the reason it was dropped, its current text, and `blob` (where
its audio lies, relative to the workspace: the server builds playback URLs from it, never from
what a client sends)."""
from __future__ import annotations

from sqlalchemy import select

from studio.datasets.api import segments_with_text
from studio.datasets.models import Clip
from studio.datasets.store import get_dataset_row, latest_version
from studio.db import Database
from studio.errors import NotFound, UserError

SEGMENT_FIELDS = ("segment_id", "index", "start", "end", "duration", "lufs", "snr_db", "clipped_fraction", "kept",
                  "reject_reason", "text", "sha256", "blob")


def find_clip(s, dataset_id: int, dataset_name: str, clip: int | str) -> Clip:
    """A clip of the dataset by its id or by the name it arrived with."""
    text = str(clip).strip()
    if text.isdigit():
        row = s.get(Clip, int(text))
        if row is not None and row.dataset_id == dataset_id:
            return row
    rows = list(s.scalars(select(Clip).where(Clip.dataset_id == dataset_id, Clip.name == text).order_by(Clip.id)))
    if len(rows) == 1:
        return rows[0]
    if len(rows) > 1:
        raise UserError(f"dataset {dataset_name!r} has {len(rows)} clips named {text!r}: "
                        f"give the id ({', '.join(str(r.id) for r in rows)})")
    raise NotFound(f"dataset {dataset_name!r} has no clip {text!r} (`bark-studio dataset clips {dataset_name}` lists them)")


def clip_segments(db: Database, dataset_name: str, clip: int | str) -> dict:
    """The clip's segments in the newest ready prepared version; `note` says why there are none."""
    with db.read() as s:
        ds = get_dataset_row(s, dataset_name)
        c = find_clip(s, ds.id, dataset_name, clip)
        out = {"dataset": dataset_name, "clip_id": c.id, "clip_name": c.name, "version": None, "note": None,
               "segments": []}
        version = latest_version(s, ds.id)
        if version is None:
            out["note"] = f"not prepared yet: run prepare (`bark-studio dataset prepare {dataset_name}`)"
            return out
        out["version"] = version.version
        out["segments"] = [{k: g[k] for k in SEGMENT_FIELDS} for g in segments_with_text(s, ds.id, version.id, c.id)]
        if not out["segments"]:
            errors = {e["clip_id"]: e["error"] for e in (version.stats or {}).get("clip_errors", [])}
            if c.id in errors:
                out["note"] = f"not prepared: {errors[c.id]}"
            elif c.created_at > version.created_at or c.excluded_at or c.deleted_at:
                out["note"] = f"not in version {version.version} (added, excluded or deleted since): run prepare again"
            else:
                out["note"] = "not prepared: no speech found"
        return out


def segment_status(segment: dict) -> str:
    """'kept', or 'dropped: <why>'."""
    return "kept" if segment["kept"] else f"dropped: {segment['reject_reason'] or 'rejected'}"
