"""Curation jobs: import (decodes untrusted uploads here, never in the web process), prepare
(24 kHz segments as a new version) and transcribe (Whisper with word timestamps)."""
from __future__ import annotations

import shutil
from pathlib import Path

from studio.errors import UserError
from studio.jobs import JobCancelled, JobContext


def import_job(ctx: JobContext) -> dict:
    """params: dataset, paths (inside the workspace for uploads, or absolute for the CLI), labels,
    source, licence, speaker, provenance, cleanup (remove the staged upload folder afterwards)."""
    from studio.datasets.importer import ImportOptions, import_paths

    ws, p = ctx.workspace, ctx.params
    paths = [str(ws.inside(x)) if p.get("staged") else x for x in p.get("paths", [])]
    labels = {str(ws.inside(k)) if p.get("staged") else k: v for k, v in (p.get("labels") or {}).items()}
    options = ImportOptions(source=p.get("source", ""), licence=p.get("licence", ""), speaker=p.get("speaker", ""),
                            provenance=p.get("provenance", "human"))
    try:
        report = import_paths(ws, p["dataset"], paths, options, labels=labels,
                              progress=lambda i, n, what: ctx.progress(step=i, total=max(n, 1), message=f"importing {what}"),
                              should_stop=ctx.stop_requested)
    finally:
        if p.get("staged") and p.get("cleanup"):
            for x in p.get("paths", []):
                staged = ws.inside(x)
                if ws.tmp_dir in staged.parents:
                    shutil.rmtree(staged, ignore_errors=True) if staged.is_dir() else staged.unlink(missing_ok=True)
    for e in report["errors"]:
        ctx.log(f"{e['file']}: {e['error']}")
    ctx.progress(1.0, message=f"imported {len(report['imported'])}, {len(report['errors'])} refused, "
                              f"{len(report['duplicates'])} duplicates")
    if report.get("stopped"):
        ctx.partial_result = report
        raise JobCancelled()
    return report


def prepare_job(ctx: JobContext) -> dict:
    """params: dataset, settings (overrides of the dataset's prepare settings)."""
    from studio.datasets.prepare import prepare_dataset

    result = prepare_dataset(ctx.workspace, ctx.params["dataset"], ctx.params.get("settings") or {}, job_id=ctx.job_id,
                             progress=lambda i, n, what: ctx.progress(step=i, total=n, message=what),
                             should_stop=ctx.stop_requested, log=ctx.log)
    if result["status"] == "cancelled":
        ctx.partial_result = result
        raise JobCancelled()
    ctx.progress(1.0, message=f"version {result['version']}: {result['kept']} of {result['segments']} segments kept")
    return result


def transcribe_job(ctx: JobContext) -> dict:
    """params: dataset, model_size (default base; `test-random` is the offline random test model), backend,
    redo (also clips that already have ASR text), clip_ids (only these)."""
    from models.asr import ASRUnavailable, load_model, transcribe
    from studio.audio.decode import AudioError, decode_mono
    from studio.audio.resample import VAD_RATE
    from studio.datasets import store

    ws, p = ctx.workspace, ctx.params
    size = p.get("model_size") or "base"
    clips = store.clips_to_transcribe(ws.db, p["dataset"], redo=bool(p.get("redo")), clip_ids=p.get("clip_ids"))
    if not clips:
        ctx.progress(1.0, message="nothing to transcribe (every clip has ASR text; use redo)")
        return {"dataset": p["dataset"], "model": size, "transcribed": 0, "errors": []}
    ctx.progress(0.0, message=f"loading Whisper {size}")
    try:
        model = load_model(size, backend=p.get("backend") or "openai-whisper", download_root=ws.models_dir / "whisper")
    except ASRUnavailable as exc:
        raise UserError(str(exc)) from None
    done, errors = 0, []
    for i, (clip_id, name, blob) in enumerate(clips):
        ctx.check_cancelled()
        ctx.progress(step=i, total=len(clips), message=f"transcribing {name}")
        try:
            audio16 = decode_mono(Path(ws.root) / blob, (VAD_RATE,), label=name).audio[VAD_RATE]  # streamed
        except AudioError as exc:
            errors.append({"clip_id": clip_id, "error": str(exc)})
            continue
        out = transcribe(audio16, model)
        store.record_asr(ws.db, clip_id, out["text"], out["words"], model=size, language=out.get("language"))
        done += 1
    ctx.progress(1.0, message=f"transcribed {done} clip(s) with Whisper {size}")
    return {"dataset": p["dataset"], "model": size, "transcribed": done, "errors": errors}
