"""The "train" job: tokenize what is missing, fine-tune Bark's stages on a dataset, keep checkpoints
under ws.checkpoints_dir/<job id>/ (rows in `checkpoints`), and on success install a named adapter
(ws.adapters_dir/<name>/ plus an `adapters` row) that takes each stage from that stage's own best
checkpoint; the log and the result say which step each stage came from.

Resume: a requeued train job finds its run folder's `latest` checkpoint and continues from it
exactly; params_update {"resume_from": "<checkpoint path>"} picks another checkpoint instead.
A stop (cancel, consumer SIGINT) saves a checkpoint at the current step and ends the job cancelled.

params gpus=N (N > 1) trains on N GPUs of the worker's host: the runner holds their N GPU locks,
and this process starts N ranks with torchrun (models.distributed) and relays what rank 0 reports
(progress, metrics, checkpoints) into the job's row. A rank that dies (SIGKILL, the OOM killer)
takes the others with it and ends the job interrupted, to resume from its last checkpoint at any
world size.

Also "export_adapter": merge adapters into a standalone BarkModel folder (heavy: loads the model)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from models.training_config import default_method
from studio import training as T
from studio.errors import UserError
from studio.inference import DEFAULT_MODEL
from studio.jobs import JobCancelled, JobContext
from workers.handlers.tokens import user_errors

HYPERPARAMETERS = ("r", "alpha", "dropout", "targets", "lr", "batch_size", "grad_accum", "warmup_ratio", "schedule",
                   "weight_decay", "max_grad_norm", "max_steps", "max_epochs", "val_fraction", "eval_every",
                   "patience", "min_delta", "save_every", "keep_last", "precision", "attention",
                   "activation_checkpointing", "seed", "device", "voice_prompts", "condition")
# Generic prompts for the forgetting guard: the base model's own outputs on these are scored before
# and after training (a fine-tune that raises their NLL a lot has forgotten how Bark speaks).
GUARD_PROMPTS = ("Hello, how are you today?", "The weather is nice this morning.",
                 "Please read the next sentence slowly and clearly.")
GUARD_SEMANTIC_TOKENS = 64  # ~1.3 s of speech per prompt
TINY_GUARD = (1, 16)        # the random test model: 1 prompt, 16 tokens (same code path, less CPU)


def _config(p: dict, stages, method: str):
    from models.training import config_from_preset

    overrides = {k: p[k] for k in HYPERPARAMETERS if p.get(k) is not None}
    return config_from_preset(p.get("preset"), stages=stages, method=method, **overrides)


def guard_items(bark, tokenizer, seed: int = 1234, tiny: bool = False) -> list:
    """TokenItems of the base model's own (seeded) outputs on GUARD_PROMPTS."""
    import torch

    from models.generation import BarkStages, Request, Sampling, generate
    from models.layouts import TokenItem
    from models.text import encode_text

    n_prompts, n_tokens = TINY_GUARD if tiny else (len(GUARD_PROMPTS), GUARD_SEMANTIC_TOKENS)
    prompts = GUARD_PROMPTS[:n_prompts]
    sampling = Sampling(semantic_max_new_tokens=n_tokens)
    with torch.random.fork_rng(devices=[]):
        results = generate(BarkStages.from_bark(bark), tokenizer,  # the fast engine: one batched pass
                           [Request(text=t, seed=seed + i) for i, t in enumerate(prompts)], sampling, fast=True)
    items = []
    for text, res in zip(prompts, results):
        for sem, codes in zip(res.semantic, res.codes):
            if sem.size and codes.shape[1]:
                # cut at the cap, the base never chose to stop there: no EOS target then
                items.append(TokenItem(text_ids=encode_text(tokenizer, text), semantic=sem, codes=codes,
                                       key=f"guard: {text}", ended=len(sem) < n_tokens))
    return items


def _resume_point(ws, ctx: JobContext, run: Path) -> Path | None:
    chosen = ctx.params.get("resume_from")
    if chosen:
        path = ws.inside(chosen)
        if not path.exists():
            raise UserError(f"resume_from {chosen!r}: no such checkpoint")
        return path
    from models.checkpoints import read_pointer

    return read_pointer(run) if run.is_dir() else None


def reconcile_checkpoints(ws, job_id: int, run: Path) -> None:
    """Make the job's checkpoint rows list exactly its checkpoint folders. A worker killed between
    writing a checkpoint and recording it leaves a folder no row lists (the resume may even start
    from it), or a pruned folder whose row remains; a resumed job puts that right first."""
    from models import checkpoints as ckpt

    rows = {c["path"]: c for c in T.list_checkpoints(ws, job_id)}
    folders = {ws.relative(f): f for f in ckpt.list_checkpoints(run)}
    for rel, folder in folders.items():
        if rel not in rows:
            try:
                state = ckpt.read_state(folder)
            except ckpt.CheckpointError:
                continue  # incomplete: not a checkpoint anyone can resume from or promote
            T.record_checkpoint(ws, job_id, {"path": str(folder), "step": state["step"],
                                             "val_loss": state.get("val_loss"), "is_best": False,
                                             "forgetting": (state.get("metrics") or {}).get("forgetting")})
    for rel, row in rows.items():
        if rel not in folders:
            T.forget_checkpoint_row(ws, row["id"])


def train_job(ctx: JobContext) -> dict:
    """params: dataset, model (small|large|hub id|tiny; default small), stages ("semantic,coarse,fine" or a list),
    method (lora|full), preset (quick|quality|full), name (adapter), any of HYPERPARAMETERS (condition: the
    clip labels to condition on, read through clip_labels),
    resume_from (a checkpoint path inside the workspace), gpus (ranks, one per GPU; default 1)."""
    from studio.datasets.api import dataset_hash
    from workers.handlers.tokens import token_items, tokenize_job

    ws, p = ctx.workspace, ctx.params
    dataset = p.get("dataset")
    if not dataset:
        raise UserError("train needs a dataset name")
    model = p.get("model") or DEFAULT_MODEL
    method = p.get("method") or default_method(p.get("preset"))
    name = T.check_name(p.get("name") or f"{dataset}-{ctx.job_id}")
    if T.adapter_exists(ws, name):
        raise UserError(f"an adapter named {name!r} already exists; choose another --name")

    from models.lora import parse_stages

    gpus = int(p.get("gpus") or 1)
    with user_errors():
        stages = parse_stages(p.get("stages") or "semantic,coarse,fine")
        config = _config(p, stages, method)
        if gpus > 1:
            _check_gpus_here(gpus)

    from studio.datasets.fit import check_transcripts_fit

    check_transcripts_fit(ws, dataset)  # names the clip; the model core could only name a segment hash
    ctx.progress(message="tokenizing what is not yet tokenized", phase="tokenizing")
    tokenized = tokenize_job(ctx)
    from studio.datasets.api import training_items
    from studio.datasets.labels import clip_labels

    records = training_items(ws, dataset)
    if tokenized.get("failed"):
        ctx.log(f"{len(tokenized['failed'])} segment(s) could not be tokenized and are left out")
        failed = {f["path"] for f in tokenized["failed"]}
        records = [it for it in records if it["path"] not in failed]
    items = token_items(ws, dataset, model, records)
    speakers = [it.get("speaker") for it in records]  # token_items keeps the order of `records`
    for item, record in zip(items, records):
        item.labels = clip_labels(record)   # speaker plus the clip's own labels, numbers as numbers

    from models import presets
    from models.training import TrainingRecipe, describe

    run = T.run_dir(ws, ctx.job_id)
    reconcile_checkpoints(ws, ctx.job_id, run)
    resume = _resume_point(ws, ctx, run)
    ctx.progress(message=f"loading {model}", phase="loading model")
    with user_errors():
        bark = presets.load_bark(model)
        tokenizer = presets.load_text_tokenizer(model)
        guard = guard_items(bark, tokenizer, tiny=presets.is_tiny(model))
    started = time.monotonic()

    def on_progress(info: dict) -> None:
        per_stage = {f"{k}_{s}": info[f"{k}_{s}"] for s in stages for k in ("loss", "val_loss", "lr")
                     if info.get(f"{k}_{s}") is not None}
        epochs = {f"epoch_{s}": v for s, v in (info.get("epochs") or {}).items()}
        ctx.metrics(info["step"], {**{k: info[k] for k in ("loss", "val_loss", "lr", "grad_norm", "tokens_per_s")
                                      if info.get(k) is not None}, **per_stage, **epochs})
        ctx.progress(step=info["step"], total=info["total_steps"], epoch=info["epoch"], eta_seconds=info["eta_s"],
                     phase="training", message=f"step {info['step']}/{info['total_steps']} loss {info['loss']:.4f}"
                             + (f" val {info['val_loss']:.4f}" if info.get("val_loss") is not None else ""))

    def on_checkpoint(info: dict) -> None:
        T.record_checkpoint(ws, ctx.job_id, info)
        best = f", best for {', '.join(info['best_stages'])}" if info.get("best_stages") else ""
        ctx.log(f"checkpoint at step {info['step']}" + (f" (val {info['val_loss']:.4f}{best})"
                                                        if info.get("val_loss") is not None else ""))

    data = {"name": dataset, "hash": dataset_hash(ws, dataset)}
    if gpus > 1:
        del bark  # each rank loads its own copy
        spec = {"config": config.to_dict(), "model": model, "items": items, "guard_items": guard,
                "speakers": speakers, "dataset": data, "run_dir": str(run),
                "resume_from": str(resume) if resume is not None else None}
        result = _train_on_ranks(ctx, gpus, spec, on_progress, on_checkpoint, resume)
    else:
        with user_errors():  # bad settings, corrupt checkpoints, ... become one line
            recipe = TrainingRecipe(config, bark, items, run, guard_items=guard, base_model=model, speakers=speakers,
                                    dataset=data, resume_from=resume, on_progress=on_progress,
                                    on_checkpoint=on_checkpoint, should_stop=ctx.stop_requested)
            recipe.setup()
            _log_plan(ctx, describe(recipe), resume, recipe.step)
            result = recipe.train()

    stage_info = {s: {**v, "best_checkpoint": _rel(ws, v.get("best_checkpoint"))} for s, v in result.stages.items()}
    summary = {"status": result.status, "step": result.step, "max_steps": result.max_steps,
               "best_val_loss": result.best_val_loss, "forgetting": result.forgetting, "stages": stage_info,
               "last_checkpoint": _rel(ws, result.last_checkpoint), "best_checkpoint": _rel(ws, result.best_checkpoint),
               "seconds": round(time.monotonic() - started, 2), "run_dir": ws.relative(run)}
    if result.status == "stopped":
        ctx.log(f"stopped at step {result.step}; checkpoint saved, resume to continue")
        ctx.partial_result = summary
        raise JobCancelled()
    adapter = _install_stage_bests(ws, ctx, run, result, name)
    return {**summary, "adapter": name, "adapter_path": adapter["path"]}


def _log_plan(ctx: JobContext, plan: dict, resume, step: int) -> None:
    ws = ctx.workspace
    for reason in plan["skipped"]:
        ctx.log(reason)
    if plan["voice_prompted_clips"]:
        ctx.log(f"{plan['voice_prompted_clips']} clip(s) train with a voice prompt from another clip of their speaker")
    if resume is not None:
        ctx.log(f"resuming from {ws.relative(Path(resume))} at step {step}")
    ranks = f" x {plan['world']} ranks" if plan.get("world", 1) > 1 else ""
    ctx.log(f"training {plan['method']} on {', '.join(plan['stages'])}: {plan['max_steps']} steps ("
            + ", ".join(f"{s} {plan['stage_steps'][s]} over {plan['train_examples'][s]} examples"
                        for s in plan['stages'])
            + f"), {plan['trainable_params']:,} of {plan['total_params']:,} parameters, {plan['device']}{ranks} "
            f"{plan['precision']}, {plan['train_clips']} train / {plan['val_clips']} validation clips")


# N ranks --------------------------------------------------------------------------------------

class RanksLost(JobCancelled):
    """A rank died without reporting an error (killed): the job is interrupted, resumable."""


STOP_POLL_SECONDS = 0.2  # how often the job's process relays events and looks for a cancel


def _check_gpus_here(gpus: int) -> None:
    from models.world import backend, check_gpus

    if backend() == "gloo":
        return
    import torch

    check_gpus(gpus, torch.cuda.device_count() if torch.cuda.is_available() else 0)


def torchrun_command(gpus: int, spec_dir: Path) -> list[str]:
    """torchrun on one host: a local rendezvous, no restarts (a dead rank ends the job)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
            "--max-restarts=0", "--monitor-interval=0.5", "-m", "models.distributed", str(spec_dir)]


def _train_on_ranks(ctx: JobContext, gpus: int, spec: dict, on_progress, on_checkpoint, resume):
    """Run the recipe on `gpus` ranks under torchrun; relay rank 0's reports; stop them on a cancel."""
    import torch

    from models import distributed as D
    from models.distributed import die_with_parent
    from models.training import TrainResult

    ws = ctx.workspace
    ws.tmp_dir.mkdir(parents=True, exist_ok=True)
    spec_dir = Path(tempfile.mkdtemp(prefix=f"dist-job{ctx.job_id}-", dir=ws.tmp_dir))
    proc = None
    try:
        torch.save(spec, spec_dir / D.SPEC)
        with open(spec_dir / "torchrun.log", "wb") as out:
            proc = subprocess.Popen(torchrun_command(gpus, spec_dir), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=die_with_parent)
        ctx.log(f"started {gpus} ranks with torchrun (pid {proc.pid})")
        reader, result, errors, stop_sent = D.EventReader(spec_dir / D.EVENTS), None, [], False
        while True:
            ended = proc.poll() is not None
            for ev in reader.new():
                kind, data = ev["event"], ev["data"]
                if kind == "plan":
                    _log_plan(ctx, data, resume, data["step"])
                elif kind == "progress":
                    on_progress(data)
                elif kind == "checkpoint":
                    on_checkpoint(data)
                elif kind == "result":
                    result = data
                elif kind == "error":
                    errors.append(data)
            if ended:
                break
            if not stop_sent and ctx.stop_requested():
                (spec_dir / D.STOP).touch()  # every rank stops after the step it is in, with a checkpoint
                stop_sent = True
            time.sleep(STOP_POLL_SECONDS)
        log_tail = (spec_dir / "torchrun.log").read_text(errors="replace")[-4000:]
    finally:
        if proc is not None and proc.poll() is None:  # relaying failed: take the ranks down with it
            proc.kill()
            proc.wait()
        shutil.rmtree(spec_dir, ignore_errors=True)
    if proc.returncode == 0 and result is not None:
        memory = result.pop("memory", None) or {}
        if memory:
            ctx.log(f"training state per rank: {memory['state_mib']:.1f} MiB (weights {memory['weights_mib']:.1f}, "
                    f"AdamW moments {memory['moments_mib']:.1f})"
                    + (f", peak GPU memory {memory['peak_cuda_mib']:.0f} MiB" if "peak_cuda_mib" in memory else ""))
        return TrainResult(**result)
    if errors:
        first = errors[0]
        if first["user"]:
            raise UserError(first["message"])
        raise RuntimeError(f"rank {first['rank']}: {first['type']}: {first['message']}\n{first['traceback']}")
    cause = log_tail[log_tail.rfind("Root Cause"):] if "Root Cause" in log_tail else log_tail[-800:]
    ctx.log(f"torchrun exited with status {proc.returncode}: " + " ".join(cause.split())[:600])
    from models.checkpoints import read_pointer

    last = read_pointer(Path(spec["run_dir"]))
    ctx.partial_result = {"status": "interrupted", "last_checkpoint": ws.relative(last) if last else None}
    raise RanksLost(f"a training rank died (torchrun exit {proc.returncode}); resume to continue from the last checkpoint")


def _install_stage_bests(ws, ctx: JobContext, run: Path, result, name: str) -> dict:
    """Install the adapter assembled from each stage's own best checkpoint and log where each
    stage came from."""
    import shutil
    import tempfile

    from models.training import assemble_best_adapter

    tmp = Path(tempfile.mkdtemp(prefix=".tmp-assembled-", dir=run))  # cleaned with partial checkpoints
    try:
        with user_errors():
            _, sources = assemble_best_adapter(result, tmp)
        folders = sorted({ws.relative(f) for f in sources.values()})
        adapter = T.install_adapter(ws, tmp, name, job_id=ctx.job_id, checkpoint=", ".join(folders))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = []
    for stage, folder in sources.items():
        info = result.stages[stage]
        if info.get("best_step") is None:
            lines.append(f"{stage} from the last checkpoint, {ws.relative(folder)} (no validation loss to choose by)")
        else:
            lines.append(f"{stage} from step {info['best_step']} (val {info['best_val_loss']:.4f}; "
                         f"{info['status'].replace('_', ' ')} after {info['steps']} steps, {info['epochs']:.2f} epochs)")
    ctx.log(f"adapter {name!r} assembled from each stage's best checkpoint: " + "; ".join(lines))
    return adapter


def _rel(ws, path: str | None) -> str | None:
    return ws.relative(Path(path)) if path else None


def export_adapter_job(ctx: JobContext) -> dict:
    """params: adapters [{"name", "scale"}], model, out (a folder path). Merges and saves a
    standalone BarkModel folder (`BarkModel.from_pretrained(out)` loads it)."""
    from models import adapters as A
    from models import presets

    ws, p = ctx.workspace, ctx.params
    specs = [(T.adapter_folder(ws, a["name"]), float(a.get("scale", 1.0))) for a in p.get("adapters") or []]
    if not specs:
        raise UserError("export needs at least one adapter")
    out = Path(p["out"])
    model = p.get("model") or T.get_adapter(ws, p["adapters"][0]["name"])["base_model"]
    ctx.progress(message=f"loading {model}")
    with user_errors():
        bark = presets.load_bark(model)
        ctx.progress(0.5, message="merging")
        A.merge_and_export(bark, specs, out, base_model=model)
    return {"out": str(out), "model": model, "adapters": p["adapters"]}
