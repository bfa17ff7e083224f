"""Sweep and eval rows: created when the job starts, one output row per clip as it is made,
then a summary (each metric per arm and per swept value) and the plots."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from studio.db import utcnow
from studio.errors import NotFound
from studio.experiments.tables import Sweep, SweepOutput
from studio.workspace import Workspace


def _iso(t) -> str | None:
    return t.isoformat(timespec="seconds") + "Z" if t else None


def sweep_dict(x: Sweep) -> dict[str, Any]:
    return {"id": x.id, "experiment_id": x.experiment_id, "job_id": x.job_id, "name": x.name, "mode": x.mode,
            "space": x.space, "status": x.status, "summary": x.summary, "plots": x.plots,
            "created_at": _iso(x.created_at), "finished_at": _iso(x.finished_at)}


def output_dict(o: SweepOutput) -> dict[str, Any]:
    return {"id": o.id, "sweep_id": o.sweep_id, "index": o.index, "arm": o.arm, "params": o.params,
            "audio_path": o.audio_path, "audio_sha256": o.audio_sha256, "duration_s": o.duration_s,
            "metrics": o.metrics, "descriptors": o.descriptors, "error": o.error}


def start_sweep(ws: Workspace, *, mode: str, space: dict, job_id: int | None, experiment_id: int | None,
                name: str = "") -> int:
    """The sweep row for a job; a resumed job finds its own row again instead of starting over."""
    with ws.db.write() as s:
        if job_id is not None:
            found = s.scalar(select(Sweep).where(Sweep.job_id == job_id))
            if found is not None:
                found.status = "running"
                return found.id
        row = Sweep(mode=mode, space=space, job_id=job_id, experiment_id=experiment_id, name=name or "",
                    status="running", plots=[])
        s.add(row)
        s.flush()
        return row.id


def done_indexes(ws: Workspace, sweep_id: int) -> set[int]:
    with ws.db.read() as s:
        return set(s.scalars(select(SweepOutput.index).where(SweepOutput.sweep_id == sweep_id)))


def add_output(ws: Workspace, sweep_id: int, **fields) -> int:
    with ws.db.write() as s:
        row = SweepOutput(sweep_id=sweep_id, **fields)
        s.add(row)
        s.flush()
        return row.id


def update_output(ws: Workspace, output_id: int, **fields) -> None:
    with ws.db.write() as s:
        row = s.get(SweepOutput, output_id)
        for k, v in fields.items():
            setattr(row, k, v)


def finish_sweep(ws: Workspace, sweep_id: int, *, status: str, summary: dict | None = None,
                 plots: list[str] | None = None) -> dict:
    with ws.db.write() as s:
        row = s.get(Sweep, sweep_id)
        row.status, row.finished_at = status, utcnow()
        if summary is not None:
            row.summary = summary
        if plots is not None:
            row.plots = plots
        return sweep_dict(row)


def get_sweep(ws: Workspace, sweep_id: int, with_outputs: bool = True) -> dict:
    with ws.db.read() as s:
        row = s.get(Sweep, sweep_id)
        if row is None:
            raise NotFound(f"no sweep {sweep_id}")
        out = sweep_dict(row)
        if with_outputs:
            out["outputs"] = [output_dict(o) for o in s.scalars(
                select(SweepOutput).where(SweepOutput.sweep_id == sweep_id).order_by(SweepOutput.index))]
        return out


def sweep_for_job(ws: Workspace, job_id: int) -> dict | None:
    with ws.db.read() as s:
        sid = s.scalar(select(Sweep.id).where(Sweep.job_id == job_id))
    return get_sweep(ws, sid) if sid is not None else None


def list_sweeps(ws: Workspace, experiment_id: int | None = None) -> list[dict]:
    with ws.db.read() as s:
        q = select(Sweep).order_by(Sweep.id.desc())
        if experiment_id is not None:
            q = q.where(Sweep.experiment_id == experiment_id)
        return [sweep_dict(x) for x in s.scalars(q)]


def get_output(ws: Workspace, output_id: int) -> dict:
    with ws.db.read() as s:
        row = s.get(SweepOutput, output_id)
        if row is None:
            raise NotFound(f"no sweep output {output_id}")
        return output_dict(row)


def flat_values(output: dict) -> dict[str, float | None]:
    """An output's metrics and descriptors as one flat {name: number} map (for plots, summaries)."""
    values = {}
    for group in (output.get("descriptors") or {}, output.get("metrics") or {}):
        for k, v in group.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values[k] = float(v)
    return values


def axis_values(output: dict) -> dict:
    """An output's parameters under the names sweep axes use (the `prompt` axis sets `text`)."""
    params = output.get("params") or {}
    return {**params, "prompt": params.get("text"), "arm": output.get("arm")}


def summarize(outputs: list[dict], swept: list[str]) -> dict:
    """Each metric per arm and per value of each swept parameter."""
    from studio.experiments.stats import group_summary

    rows = [{**axis_values(o), **flat_values(o)} for o in outputs if not o.get("error")]
    names = sorted({k for o in outputs for k in flat_values(o)})
    return {"n_outputs": len(outputs), "n_failed": sum(1 for o in outputs if o.get("error")),
            "metrics": names,
            "overall": {m: group_summary(rows, None, m) for m in names},
            "by_arm": {m: group_summary(rows, "arm", m) for m in names},
            "by_param": {p: {m: group_summary(rows, p, m) for m in names} for p in swept}}


def export_by_arm(ws: Workspace, sweep_id: int, target) -> dict[str, str]:
    """Write a sweep's outputs into TARGET/<arm>/<item>.wav, where an item is one combination of
    every parameter except the arm, named the same in every arm: the folders a blind A/B listening
    session takes as its systems. Returns {arm: folder}."""
    import shutil
    from pathlib import Path

    from studio.errors import UserError

    sweep = get_sweep(ws, sweep_id)
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise UserError(f"{target} is not an empty folder")
    items: dict[str, str] = {}
    folders: dict[str, str] = {}
    for o in sweep["outputs"]:
        if o.get("error") or not o.get("audio_path"):
            continue
        key = json.dumps({k: v for k, v in o["params"].items() if k not in ("arm", "model", "voice", "adapters")},
                         sort_keys=True, default=str)
        item = items.setdefault(key, f"item{len(items):03d}")
        arm = o["arm"] or "default"
        folder = target / "".join(c if c.isalnum() or c in "-_." else "_" for c in arm)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ws.root / o["audio_path"], folder / f"{item}{Path(o['audio_path']).suffix}")
        folders[arm] = str(folder)
    if not folders:
        raise UserError(f"sweep {sweep_id} has no audio to export")
    return folders
