"""The `listening_stimuli` job: gather each system's audio, prepare the stimuli (decode,
resample, loudness-match, write blind WAVs) and create the session row.

params: the keyword arguments of studio.listening.sessions.create_session, with `systems` a list of
  {"name", "folder", "reference"}            audio files named by item (stems match across systems)
  {"name", "generation": {...generate params}}  audio the model core generates for `prompts` (with
                                               `speaker`/`labels` for a --condition adapter, checked
                                               by the generate job against the adapter's manifest)
and, when any system is generated, `prompts` (texts, one item each: keys 000, 001, ...) and
`generation_seed` (the same seed for every system and prompt, so systems differ only in what they
are). Each generated system is one real `generate` job (its row, history and files as usual), run
here in this job's process: waiting on the queue from inside a job could deadlock a one-slot worker."""
from __future__ import annotations

from pathlib import Path

from studio.errors import UserError
from studio.listening.sessions import SystemSource, create_session

CREATE_KEYS = ("name", "test_type", "question", "voice_label", "voice_reference", "allow_no_preference",
               "trials_per_rater", "n_gold", "seed", "target_lufs")


def _generate(ctx, spec: dict, prompts: list[str], seed: int) -> Path:
    from studio import jobs
    from workers.runner import execute

    gen = spec["generation"]
    if not isinstance(gen, dict):
        raise UserError(f"system {spec.get('name')!r}: 'generation' must be the generate job's parameters")
    params = {**gen, "texts": prompts, "seed": seed, "variants": 1}
    job_id = jobs.create_job(ctx.workspace.db, "generate", params)
    ctx.log(f"system {spec['name']}: generate job {job_id}")
    done = execute(ctx.workspace, job_id, worker_id=f"listening_stimuli-{ctx.job_id}")
    if done["status"] != "succeeded":
        raise UserError(f"system {spec['name']!r}: generate job {job_id} {done['status']}: {done.get('error')}")
    files = [Path(f) for f in done["result"]["files"]]
    return files[0].parent  # 000.wav, 001.wav, ... one per prompt


def _systems(ctx, params: dict) -> list[SystemSource]:
    specs = params.get("systems") or []
    prompts = [str(p) for p in params.get("prompts") or []]
    seed = int(params.get("generation_seed") or 0)
    out = []
    for k, spec in enumerate(specs):
        name = (spec.get("name") or "").strip()
        if not name:
            raise UserError(f"system {k + 1} has no name")
        if "generation" in spec:
            if not prompts or not all(p.strip() for p in prompts):
                raise UserError(f"system {name!r} is generated: give the prompts (non-empty texts) to generate")
            ctx.progress(step=k, total=len(specs), message=f"generating system {name}")
            ctx.check_cancelled()
            folder = _generate(ctx, spec, prompts, seed)
        elif spec.get("folder"):
            folder = Path(spec["folder"])
        else:
            raise UserError(f"system {name!r} needs a folder of audio or generation parameters")
        out.append(SystemSource(name=name, folder=folder, reference=bool(spec.get("reference"))))
    return out


def listening_stimuli(ctx) -> dict:
    params = dict(ctx.params)
    systems = _systems(ctx, params)
    kwargs = {k: params[k] for k in CREATE_KEYS if k in params}
    prompts = params.get("prompts") or []
    if prompts:
        kwargs["item_texts"] = {f"{i:03d}": t for i, t in enumerate(prompts)}
        kwargs["item_seeds"] = {f"{i:03d}": int(params.get("generation_seed") or 0) for i in range(len(prompts))}

    def progress(done: int, total: int, message: str) -> None:
        ctx.progress(step=done, total=total, message=message)
        ctx.check_cancelled()

    session = create_session(ctx.workspace, systems=systems, job_id=ctx.job_id, progress=progress, **kwargs)
    for note in session["notes"]:
        ctx.log(note)
    return {"session_id": session["id"], "n_items": session["n_items"], "target_lufs": session["target_lufs"],
            "notes": session["notes"]}
