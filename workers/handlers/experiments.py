"""Experiment jobs: `eval` (metrics for a set of audio against references) and `sweep` (a grid
or random sweep of generations, in batches by a model_session.ModelSession, by default on the fast
engine). Every output is stored with the parameters that reproduce it (engine and precision
included), its metrics and descriptors; outliers go into the emergent log; each metric is plotted
against each swept parameter. A sweep over speaker mixes or labels (an adapter trained with
--condition) also measures `sim_<speaker>`, each output's similarity to that speaker's real clips."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from models.files import write_wav
from studio.errors import UserError
from studio.experiments import emergent, grid, plots, sweeps
from studio.jobs import JobCancelled, JobContext
from workers.handlers.model_session import ModelSession, batches

EVAL_NEEDS = "an eval needs `audio`: a list of audio files"


def _suite(params: dict):
    from models.errors import ModelInputError
    from models.metrics.suite import MetricSuite

    try:
        return MetricSuite(asr=params.get("asr"), speaker_refs=params.get("references") or [],
                           encoder=params.get("speaker_encoder") or "resemblyzer",
                           encoder_model=params.get("speaker_model"), f0_method=params.get("f0_method") or "pyin")
    except (ModelInputError, RuntimeError) as exc:  # ASRUnavailable is a RuntimeError
        raise UserError(str(exc)) from None


class SpeakerSimilarity:
    """`sim_<speaker>` for a sweep that conditions on speakers or labels (an adapter trained with
    --condition): the mean cosine of an output's speaker embedding to each real clip of that
    speaker in the adapter's dataset (the manifest's `dataset`; active clips only, at most
    REFERENCE_CLIPS of each, spread over them). The speakers are those the points name; a sweep
    over a label (or one naming no speaker) measures every speaker of the dataset."""

    REFERENCE_CLIPS = 32  # per speaker: a large multi-speaker dataset is not embedded whole before the first output

    def __init__(self, ctx: JobContext, all_params: list[dict], encoder: str = "resemblyzer", model_id=None):
        from models.errors import ModelInputError
        from models.metrics import speaker

        self.refs: dict = {}  # speaker -> (n_clips, d) unit embeddings
        if not any(p.get("speaker") or p.get("labels") for p in all_params):
            return
        clips = _dataset_clips(ctx, all_params)
        names = list(dict.fromkeys(n for p in all_params for n in (p.get("speaker") or {})))
        if not names or any(k.startswith(grid.LABEL_AXIS) for p in all_params for k in p):
            names += [n for n in dict.fromkeys(c["speaker"] for c in clips if c.get("speaker")) if n not in names]
        if not names:
            return
        self.encoder = speaker.get_encoder(encoder, model_id)
        for name in names:
            paths = [str(ctx.workspace.root / c["blob"]) for c in clips if c.get("speaker") == name]
            paths = [paths[k * len(paths) // self.REFERENCE_CLIPS] for k in range(self.REFERENCE_CLIPS)] \
                if len(paths) > self.REFERENCE_CLIPS else paths
            try:
                self.refs[name] = speaker.embed(paths, self.encoder) if paths else None
            except ModelInputError as exc:  # a clip too short to embed, or unreadable
                ctx.log(f"sim_{name}: {exc}")
                self.refs[name] = None
            if self.refs[name] is None:
                ctx.log(f"sim_{name}: no usable real clip of {name} in the adapter's dataset")
        self.refs = {k: v for k, v in self.refs.items() if v is not None}

    def measure(self, path: Path) -> dict:
        """{sim_<speaker>: mean cosine}; nothing for an output too short to embed (its other metrics stand)."""
        from models.errors import ModelInputError
        from models.metrics import speaker

        if not self.refs:
            return {}
        try:
            emb = speaker.embed([path], self.encoder)[0]
        except ModelInputError:
            return {}
        return {f"sim_{name}": float((refs @ emb).mean()) for name, refs in self.refs.items()}


def _dataset_clips(ctx: JobContext, all_params: list[dict]) -> list[dict]:
    """The active clips of the dataset the sweep's (first) adapter was trained on."""
    from studio.datasets.store import list_clips
    from studio.training import read_manifest

    for p in all_params:
        for a in p.get("adapters") or []:
            folder = Path(a["path"]) if Path(a["path"]).is_absolute() else ctx.workspace.root / a["path"]
            try:
                name = (read_manifest(folder).get("dataset") or {}).get("name")
                return [c for c in list_clips(ctx.workspace.db, name) if c["state"] == "active"] if name else []
            except UserError as exc:
                ctx.log(f"speaker similarity: {exc}")
    return []


def _per_item(params: dict, key: str, n: int, label: str) -> list:
    values = params.get(key) or []
    if values and len(values) != n:
        raise UserError(f"{len(values)} {label} for {n} audio files; give one per file (or none)")
    return values or [None] * n


def _measure_one(ctx: JobContext, suite, sweep_id: int, index: int, path: Path, *, arm: str, params: dict,
                 text: str | None, prosody_ref: str | None, similarity: SpeakerSimilarity | None = None) -> dict:
    """Store the clip, measure it, write its output row. A bad clip becomes a row with an error."""
    from models.errors import ModelInputError

    ws = ctx.workspace
    fields = {"index": index, "arm": arm or "", "params": params, "metrics": {}, "descriptors": {}}
    try:
        if not path.is_file():
            raise UserError(f"{path}: no such audio file")
        digest, stored = ws.store_file(path)
        fields.update(audio_path=ws.relative(stored), audio_sha256=digest)
        metrics, desc = suite.measure(stored, text, prosody_ref)
        metrics.update(similarity.measure(stored) if similarity else {})
        fields.update(metrics=metrics, descriptors=desc, duration_s=desc["duration_s"])
    except (UserError, ModelInputError) as exc:
        fields["error"] = str(exc)
        ctx.log(f"output {index}: {exc}")
    sweeps.add_output(ws, sweep_id, **fields)
    return fields


@contextmanager
def _closing(ws, sweep_id: int):
    """A sweep whose job stops early says so on its row (a resumed job sets it running again)."""
    try:
        yield
    except JobCancelled:
        sweeps.finish_sweep(ws, sweep_id, status="cancelled")
        raise
    except BaseException:
        sweeps.finish_sweep(ws, sweep_id, status="failed")
        raise


def _finish(ctx: JobContext, sweep_id: int, swept: list[str], floors: dict, flag: bool) -> dict:
    ws = ctx.workspace
    sweep = sweeps.get_sweep(ws, sweep_id)
    outputs = sweep["outputs"]
    summary = {**sweeps.summarize(outputs, swept), "floors": floors, "swept": swept}
    rows = [{"params": sweeps.axis_values(o), "values": sweeps.flat_values(o)}
            for o in outputs if not o.get("error")]
    folder = ws.generated_dir / "sweeps" / str(sweep_id) / "plots"
    made = plots.metric_vs_param(rows, summary["metrics"], swept, folder) if swept else []
    flagged = emergent.flag_outliers(ws, sweep_id) if flag else []
    summary["flagged"] = [e["output_id"] for e in flagged]
    done = sweeps.finish_sweep(ws, sweep_id, status="done", summary=summary, plots=[ws.relative(p) for p in made])
    ctx.log(f"sweep {sweep_id}: {len(outputs)} outputs, {len(made)} plots, {len(flagged)} flagged")
    return {"sweep_id": sweep_id, "outputs": len(outputs), "failed": summary["n_failed"], "plots": done["plots"],
            "flagged": summary["flagged"], "floors": floors,
            "overall": {k: v["mean"] for k, v in summary["overall"].items()}}


def eval_job(ctx: JobContext) -> dict:
    """params: audio [paths], texts, references (speaker clips), prosody_references (same-text
    recordings, one per clip), real_audio + real_texts (WER floor), asr, speaker_encoder,
    f0_method, arm or arms, experiment_id, name, flag (default true)."""
    p, ws = ctx.params, ctx.workspace
    audio = p.get("audio") or []
    if not audio:
        raise UserError(EVAL_NEEDS)
    n = len(audio)
    texts = _per_item(p, "texts", n, "texts")
    pros = _per_item(p, "prosody_references", n, "prosody references")
    arms = _per_item(p, "arms", n, "arms") if p.get("arms") else [p.get("arm") or ""] * n
    if len(p.get("real_audio") or []) != len(p.get("real_texts") or []):
        raise UserError("give one text per real recording (real_audio and real_texts differ in length)")
    for ref in [*(p.get("references") or []), *(x for x in pros if x), *(p.get("real_audio") or [])]:
        if not Path(ref).is_file():
            raise UserError(f"{ref}: no such reference audio file")
    sweep_id = sweeps.start_sweep(ws, mode="eval", space={k: v for k, v in p.items()}, job_id=ctx.job_id,
                                  experiment_id=p.get("experiment_id"), name=p.get("name") or "")
    with _closing(ws, sweep_id):
        ctx.progress(0.0, message="loading metric models")
        suite = _suite(p)
        done = sweeps.done_indexes(ws, sweep_id)
        for i, (path, text, pref, arm) in enumerate(zip(audio, texts, pros, arms)):
            if i in done:
                continue
            ctx.check_cancelled()
            ctx.progress(step=i, total=n, message=f"measuring {Path(path).name}")
            _measure_one(ctx, suite, sweep_id, i, Path(path), arm=arm, params={"source_file": str(path), "text": text},
                         text=text, prosody_ref=pref)
        floors = suite.floors(p.get("real_audio") or [], p.get("real_texts") or [])
        swept = ["arm"] if len(set(arms)) > 1 else []
        return _finish(ctx, sweep_id, swept, floors, p.get("flag", True))


# Sweeps ------------------------------------------------------------------------------------------

def sweep_job(ctx: JobContext) -> dict:
    """params: a request grid.normalize accepts (axes, ranges, prompts, seeds, model, voice,
    adapter, mixes, arms, speaker, labels, speaker_mix, references, asr, f0_method, batch_size, max_new_semantic, flag,
    experiment_id, engine (fast | reference), precision (auto | bf16 | fp16 | fp32), device). Resumes
    where it stopped: outputs already stored are not generated again."""
    from models.errors import ModelInputError

    ws = ctx.workspace
    request = grid.normalize(ctx.params)
    for ref in [*(request.get("references") or []), *(request.get("real_audio") or [])]:
        if not Path(ref).is_file():
            raise UserError(f"{ref}: no such reference audio file")
    if len(request.get("real_audio") or []) != len(request.get("real_texts") or []):
        raise UserError("give one text per real recording (real_audio and real_texts differ in length)")
    points = grid.points(request)
    from models.attention import resolve_device
    from workers.handlers.generate import resolve
    from workers.handlers.tokens import user_errors

    with user_errors():
        device = resolve_device(request.get("device"))  # auto: the worker's GPU when there is one

    precision = resolve(request["precision"], device)  # stored resolved: reruns match
    all_params = [{**grid.generation_params(request, pt), "precision": precision} for pt in points]
    sweep_id = sweeps.start_sweep(ws, mode=request["mode"], space=request, job_id=ctx.job_id,
                                  experiment_id=request.get("experiment_id"), name=request.get("name") or "")
    with _closing(ws, sweep_id):
        done = sweeps.done_indexes(ws, sweep_id)
        todo = [i for i in range(len(all_params)) if i not in done]
        ctx.log(f"sweep {sweep_id}: {len(all_params)} outputs over {', '.join(grid.swept(request)) or 'no axis'}; "
                f"{len(done)} already made; generating on {device} ({precision})")
        ctx.progress(step=len(done), total=len(all_params), message="loading metric models")
        suite = _suite(request)
        similarity = SpeakerSimilarity(ctx, all_params, request.get("speaker_encoder") or "resemblyzer",
                                       request.get("speaker_model"))
        session = ModelSession(ws.root, device)
        folder = ws.generated_dir / "sweeps" / str(sweep_id)
        made = len(done)
        for part in batches(all_params, todo, request["batch_size"]):
            ctx.check_cancelled()
            ctx.progress(step=made, total=len(all_params),
                         message=f"generating outputs {part[0] + 1}-{part[-1] + 1} of {len(all_params)}")
            try:  # batch() readies the model for the group's key: model, adapters, engine, precision
                results = session.batch([all_params[i] for i in part], request["batch_size"])
            except ModelInputError as exc:  # a bad adapter/voice/model fails this batch, the rest go on
                for i in part:
                    sweeps.add_output(ws, sweep_id, index=i, arm=all_params[i]["arm"], params=all_params[i],
                                      metrics={}, descriptors={}, error=str(exc))
                ctx.log(f"outputs {[i + 1 for i in part]}: {exc}")
                made += len(part)
                continue
            for i, res in zip(part, results):
                path = folder / f"{i:05d}.wav"
                write_wav(path, res.audio, res.sample_rate)
                _measure_one(ctx, suite, sweep_id, i, path, arm=all_params[i]["arm"], params=all_params[i],
                             text=all_params[i]["text"], prosody_ref=None, similarity=similarity)
                path.unlink(missing_ok=True)  # the stored copy (by content hash) is the one kept
                made += 1
        floors = suite.floors(request.get("real_audio") or [], request.get("real_texts") or [])
        return _finish(ctx, sweep_id, grid.swept(request), floors, request.get("flag", True))
