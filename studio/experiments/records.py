"""Experiment records: a hypothesis, a dataset, arms, test prompts, linked listening sessions
and a conclusion; and the one page that gathers their sweeps, metrics, listening results and
emergent entries."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from studio.db import utcnow
from studio.errors import NotFound, UserError
from studio.inference import DEFAULT_MODEL
from studio.experiments.tables import ARM_KINDS, EmergentEntry, Experiment, Sweep
from studio.workspace import Workspace


def _iso(t) -> str | None:
    return t.isoformat(timespec="seconds") + "Z" if t else None


def normalize_arms(arms: list[dict]) -> list[dict]:
    """Check each arm: a distinct name, a known kind, and what that kind needs."""
    out, seen = [], set()
    for i, arm in enumerate(arms or []):
        if not isinstance(arm, dict):
            raise UserError(f"arm {i + 1}: expected an object like {{\"name\": ..., \"kind\": ...}}, got {arm!r}")
        name = str(arm.get("name") or "").strip()
        kind = str(arm.get("kind") or "base").strip()
        if not name:
            raise UserError(f"arm {i + 1}: needs a name")
        if name in seen:
            raise UserError(f"arm {name!r} appears twice; arm names must be distinct")
        if kind not in ARM_KINDS:
            raise UserError(f"arm {name!r}: kind {kind!r} is not one of {', '.join(ARM_KINDS)}")
        adapters = arm.get("adapters") or []
        if kind in ("finetune", "adapter_scale", "adapter_mix") and not adapters and not arm.get("model"):
            raise UserError(f"arm {name!r} ({kind}) names no adapter and no fine-tuned model")
        if kind == "voice_prompt" and not arm.get("voice"):
            raise UserError(f"arm {name!r} (voice_prompt) names no voice prompt")
        for a in adapters:
            if not isinstance(a, dict) or not a.get("path"):
                raise UserError(f"arm {name!r}: each adapter needs a path, got {a!r}")
            a["scale"] = float(a.get("scale", 1.0))
        seen.add(name)
        for key in ("speaker", "labels"):  # label conditioning, as the generate job takes it
            if arm.get(key) is not None and not isinstance(arm[key], dict):
                raise UserError(f"arm {name!r}: {key} must be an object like {{\"alice\": 0.7}}, got {arm[key]!r}")
        out.append({"name": name, "kind": kind, "model": arm.get("model") or DEFAULT_MODEL,
                    "voice": arm.get("voice"), "adapters": adapters, "notes": arm.get("notes") or "",
                    **{k: arm[k] for k in ("speaker", "labels") if arm.get(k)}})
    return out


def experiment_dict(e: Experiment) -> dict[str, Any]:
    return {"id": e.id, "name": e.name, "hypothesis": e.hypothesis, "dataset": e.dataset, "arms": e.arms,
            "prompts": e.prompts, "listening_sessions": e.listening_sessions, "conclusion": e.conclusion,
            "status": e.status, "created_at": _iso(e.created_at), "concluded_at": _iso(e.concluded_at)}


def create_experiment(ws: Workspace, *, name: str, hypothesis: str = "", dataset: str | None = None,
                      arms: list[dict] | None = None, prompts: list[str] | None = None) -> dict:
    name = (name or "").strip()
    if not name:
        raise UserError("an experiment needs a name")
    arms = normalize_arms(arms or [])
    prompts = [p.strip() for p in prompts or [] if p and p.strip()]
    with ws.db.write() as s:
        if s.scalar(select(Experiment.id).where(Experiment.name == name)) is not None:
            raise UserError(f"an experiment named {name!r} already exists")
        row = Experiment(name=name, hypothesis=(hypothesis or "").strip(), dataset=dataset, arms=arms,
                         prompts=prompts, listening_sessions=[])
        s.add(row)
        s.flush()
        return experiment_dict(row)


def _row(s, ref: int | str) -> Experiment:
    """An experiment by id or by name."""
    row = None
    if isinstance(ref, int) or str(ref).isdigit():
        row = s.get(Experiment, int(ref))
    if row is None:
        row = s.scalar(select(Experiment).where(Experiment.name == str(ref)))
    if row is None:
        raise NotFound(f"no experiment {ref!r}")
    return row


def get_experiment(ws: Workspace, ref: int | str) -> dict:
    with ws.db.read() as s:
        return experiment_dict(_row(s, ref))


def experiment_id(ws: Workspace, ref: int | str | None) -> int | None:
    if ref is None or ref == "":
        return None
    with ws.db.read() as s:
        return _row(s, ref).id


def list_experiments(ws: Workspace) -> list[dict]:
    with ws.db.read() as s:
        return [experiment_dict(e) for e in s.scalars(select(Experiment).order_by(Experiment.id.desc()))]


def update_experiment(ws: Workspace, ref: int | str, *, hypothesis: str | None = None, dataset: str | None = None,
                      arms: list[dict] | None = None, prompts: list[str] | None = None,
                      add_listening: list[int] | None = None) -> dict:
    arms = normalize_arms(arms) if arms is not None else None
    if add_listening:
        _check_sessions(ws, add_listening)
    with ws.db.write() as s:
        row = _row(s, ref)
        if hypothesis is not None:
            row.hypothesis = hypothesis.strip()
        if dataset is not None:
            row.dataset = dataset
        if arms is not None:
            row.arms = arms
        if prompts is not None:
            row.prompts = [p.strip() for p in prompts if p and p.strip()]
        if add_listening:
            row.listening_sessions = sorted(set(row.listening_sessions) | {int(x) for x in add_listening})
        return experiment_dict(row)


def _check_sessions(ws: Workspace, ids: list[int]) -> None:
    try:
        from studio.listening.sessions import get_session
    except ImportError:
        raise UserError("listening sessions are not part of this installation") from None
    for sid in ids:
        get_session(ws, int(sid))  # NotFound names the missing one


def conclude(ws: Workspace, ref: int | str, conclusion: str) -> dict:
    if not (conclusion or "").strip():
        raise UserError("a conclusion cannot be empty")
    with ws.db.write() as s:
        row = _row(s, ref)
        row.conclusion, row.status, row.concluded_at = conclusion.strip(), "concluded", utcnow()
        return experiment_dict(row)


def listening_results(ws: Workspace, session_ids: list[int]) -> list[dict]:
    """Each linked session's results, as the listening room computes them (without plots)."""
    if not session_ids:
        return []
    from studio.listening.results import session_results

    out = []
    for sid in session_ids:
        try:
            res = session_results(ws, int(sid), n_boot=500, plots=False)
        except UserError as exc:
            out.append({"session_id": sid, "error": str(exc)})
            continue
        out.append({"session_id": sid, "name": res["session"]["name"], "test_type": res["session"]["test_type"],
                    "question": res["session"]["question"], "n_votes": res["n_votes"],
                    "mos": res["mos"], "ab": res["ab"]})
    return out


def page(ws: Workspace, ref: int | str) -> dict:
    """Everything about one experiment: the record, its sweeps with their metric summaries,
    listening results and emergent entries."""
    from studio.experiments.emergent import entry_dict
    from studio.experiments.sweeps import sweep_dict

    with ws.db.read() as s:
        row = _row(s, ref)
        exp = experiment_dict(row)
        sweeps = [sweep_dict(x) for x in s.scalars(select(Sweep).where(Sweep.experiment_id == row.id)
                                                   .order_by(Sweep.id))]
        sweep_ids = [x["id"] for x in sweeps]
        from studio.experiments.tables import SweepOutput

        q = select(EmergentEntry).outerjoin(SweepOutput, EmergentEntry.output_id == SweepOutput.id).where(
            (EmergentEntry.experiment_id == row.id) | (SweepOutput.sweep_id.in_(sweep_ids or [-1])))
        entries = [entry_dict(e) for e in s.scalars(q.order_by(EmergentEntry.id))]
    exp["sweeps"] = sweeps
    exp["listening"] = listening_results(ws, exp["listening_sessions"])
    exp["emergent"] = entries
    return exp
