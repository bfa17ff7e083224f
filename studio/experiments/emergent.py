"""The emergent-behaviour log: outputs flagged automatically as far outside their arm's usual
range (robust z on descriptors, see models/metrics/outliers.py), and any clip a person adds by
hand, with tags, notes and stars."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from studio.errors import NotFound, UserError
from studio.experiments.tables import EmergentEntry, Sweep, SweepOutput
from studio.workspace import Workspace

MAX_STARS = 5


def _iso(t) -> str | None:
    return t.isoformat(timespec="seconds") + "Z" if t else None


def entry_dict(e: EmergentEntry) -> dict[str, Any]:
    return {"id": e.id, "output_id": e.output_id, "experiment_id": e.experiment_id,
            "generation_id": e.generation_id, "audio_path": e.audio_path, "params": e.params,
            "source": e.source, "flag_reason": e.flag_reason, "tags": e.tags, "notes": e.notes,
            "stars": e.stars, "created_at": _iso(e.created_at)}


def _clean_tags(tags) -> list[str]:
    return sorted({t.strip().lower() for t in tags or [] if t and t.strip()})


def flag_outliers(ws: Workspace, sweep_id: int, *, threshold: float | None = None,
                  min_count: int | None = None) -> list[dict]:
    """Compare every output of a sweep with the other outputs of its arm; log those far outside.
    An output already in the log is not logged twice. Returns the new entries."""
    from models.metrics import outliers

    threshold = outliers.THRESHOLD if threshold is None else threshold
    min_count = outliers.MIN_COUNT if min_count is None else min_count
    with ws.db.write() as s:
        sweep = s.get(Sweep, sweep_id)
        if sweep is None:
            raise NotFound(f"no sweep {sweep_id}")
        rows = s.scalars(select(SweepOutput).where(SweepOutput.sweep_id == sweep_id, SweepOutput.error.is_(None))
                         .order_by(SweepOutput.index)).all()
        logged = set(s.scalars(select(EmergentEntry.output_id).where(
            EmergentEntry.output_id.in_([r.id for r in rows] or [-1]))))
        by_arm: dict[str, list[SweepOutput]] = {}
        for r in rows:
            by_arm.setdefault(r.arm, []).append(r)
        new = []
        for arm, members in by_arm.items():
            reasons = outliers.flag([m.descriptors or {} for m in members], threshold, min_count)
            for member, reason in zip(members, reasons):
                if not reason or member.id in logged:
                    continue
                entry = EmergentEntry(output_id=member.id, experiment_id=sweep.experiment_id,
                                      audio_path=member.audio_path, params=member.params, source="auto",
                                      flag_reason=f"arm {arm or '(default)'}: {outliers.describe_reason(reason)}",
                                      tags=_clean_tags(["auto", *(x['name'] for x in reason)]), notes="", stars=0)
                s.add(entry)
                s.flush()
                new.append(entry_dict(entry))
        return new


def add_entry(ws: Workspace, *, output_id: int | None = None, generation_id: int | None = None,
              audio: str | None = None, experiment_id: int | None = None, tags=None, notes: str = "",
              stars: int = 0) -> dict:
    """A person adds a clip to the log: a sweep output, a generation from the history, or a file."""
    if sum(x is not None for x in (output_id, generation_id, audio)) != 1:
        raise UserError("add exactly one of: a sweep output id, a generation id, or an audio file")
    _check_stars(stars)
    params: dict = {}
    audio_path = None
    if generation_id is not None:
        audio_path, params = _generation(ws, generation_id)
    elif audio is not None:
        src = Path(audio)
        if not src.is_file():
            raise UserError(f"{audio}: no such audio file")
        _, stored = ws.store_file(src)
        audio_path, params = ws.relative(stored), {"source_file": src.name}
    with ws.db.write() as s:
        if output_id is not None:
            out = s.get(SweepOutput, output_id)
            if out is None:
                raise NotFound(f"no sweep output {output_id}")
            audio_path, params = out.audio_path, out.params
            if experiment_id is None:
                experiment_id = s.scalar(select(Sweep.experiment_id).where(Sweep.id == out.sweep_id))
        entry = EmergentEntry(output_id=output_id, generation_id=generation_id, experiment_id=experiment_id,
                              audio_path=audio_path, params=params, source="manual", flag_reason=None,
                              tags=_clean_tags(tags), notes=notes or "", stars=int(stars))
        s.add(entry)
        s.flush()
        return entry_dict(entry)


def _generation(ws: Workspace, generation_id: int) -> tuple[str | None, dict]:
    """Audio path and parameters of a row in the voices room's generation history."""
    try:
        from studio.voices import Generation
    except ImportError:
        raise UserError("the generation history is not part of this installation") from None
    with ws.db.read() as s:
        gen = s.get(Generation, int(generation_id))
        if gen is None:
            raise NotFound(f"no generation with id {generation_id}")
        row = gen.as_dict()
    params = {"generation_id": row["id"], "text": row["text"], "model": row["model"], "voice": row["voice"],
              "adapters": row["adapters"], "seed": row["seed"], **(row.get("params") or {})}
    return row["audio_path"], params


def _check_stars(stars: int) -> None:
    if not 0 <= int(stars) <= MAX_STARS:
        raise UserError(f"stars must be 0..{MAX_STARS}, got {stars}")


def update_entry(ws: Workspace, entry_id: int, *, stars: int | None = None, add_tags=None, remove_tags=None,
                 notes: str | None = None) -> dict:
    with ws.db.write() as s:
        entry = s.get(EmergentEntry, entry_id)
        if entry is None:
            raise NotFound(f"no emergent-log entry {entry_id}")
        if stars is not None:
            _check_stars(stars)
            entry.stars = int(stars)
        if add_tags or remove_tags:
            entry.tags = _clean_tags((set(entry.tags) | set(_clean_tags(add_tags))) - set(_clean_tags(remove_tags)))
        if notes is not None:
            entry.notes = notes
        return entry_dict(entry)


def list_entries(ws: Workspace, *, tag: str | None = None, min_stars: int = 0, source: str | None = None,
                 experiment_id: int | None = None, sweep_id: int | None = None, limit: int = 500) -> list[dict]:
    """Entries newest first, filtered by tag, stars, source, experiment or sweep."""
    with ws.db.read() as s:
        q = select(EmergentEntry).order_by(EmergentEntry.id.desc())
        if min_stars:
            q = q.where(EmergentEntry.stars >= int(min_stars))
        if source:
            q = q.where(EmergentEntry.source == source)
        if experiment_id is not None:
            q = q.where(EmergentEntry.experiment_id == experiment_id)
        if sweep_id is not None:
            q = q.join(SweepOutput, EmergentEntry.output_id == SweepOutput.id).where(SweepOutput.sweep_id == sweep_id)
        rows = [entry_dict(e) for e in s.scalars(q)]
    if tag:
        rows = [r for r in rows if tag.strip().lower() in r["tags"]]
    for r in rows:  # descriptors and metrics of the output beside the entry, for the gallery
        r["descriptors"], r["metrics"] = {}, {}
    ids = [r["output_id"] for r in rows if r["output_id"]]
    if ids:
        with ws.db.read() as s:
            found = {o.id: o for o in s.scalars(select(SweepOutput).where(SweepOutput.id.in_(ids)))}
        for r in rows:
            o = found.get(r["output_id"])
            if o is not None:
                r["descriptors"], r["metrics"], r["sweep_id"] = o.descriptors, o.metrics, o.sweep_id
    return rows[:limit]


def export_entries(ws: Workspace, rows: list[dict], target: Path) -> Path:
    """A zip of the entries' audio and a JSON manifest with everything needed to reproduce each."""
    import json
    import zipfile

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    manifest = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for r in rows:
            src = ws.root / r["audio_path"] if r.get("audio_path") else None
            if src is not None and src.is_file():
                arc = f"audio/entry-{r['id']}{src.suffix}"
                zf.write(src, arc)
                r = {**r, "file": arc}
            manifest.append(r)
        zf.writestr("entries.json", json.dumps(manifest, indent=2, default=str))
    return target
