"""train, adapters list|show|delete|export, checkpoints list|promote|delete."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from models.names import METHODS, STAGES
from models.training_config import PRESETS, VOICE_PROMPT_MODES, default_method
from models.world import gpus_refusal
from studio import training as T
from studio.cli import emit, json_option, pass_ctx
from studio.errors import UserError
from studio.inference import DEFAULT_MODEL


def register(main: click.Group) -> None:
    main.add_command(train)
    main.add_command(adapters)
    main.add_command(checkpoints)


def _job_line(j: dict) -> str:
    line = f"job {j['id']} ({j['kind']}): {j['status']}"
    if j.get("message"):
        line += f" - {j['message']}"
    if j.get("result") and j["result"].get("adapter"):
        line += f"\nadapter: {j['result']['adapter']} ({j['result']['adapter_path']})"
    if j.get("error"):
        line += f"\nerror: {j['error']}"
    return line


def _stages(value: str) -> list[str]:
    chosen = [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in chosen if s not in STAGES]
    if bad or not chosen:
        raise UserError(f"--stages: {', '.join(bad) or 'nothing'} is not a stage; use a comma list of {', '.join(STAGES)}")
    return chosen


@click.command()
@click.option("--dataset", required=True, help="The dataset to train on (its newest prepared version).")
@click.option("--stages", default="semantic,coarse,fine", show_default=True, help="Comma list of stages to train.")
@click.option("--method", type=click.Choice(METHODS), help="LoRA adapters (default) or full fine-tuning.")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Base model: small, large, a hub id or a folder (tiny = random test weights).")
@click.option("--preset", type=click.Choice(list(PRESETS)), help="Hyperparameter preset.")
@click.option("--max-steps", type=int, help="Optimizer steps (default: epochs bounded by early stopping).")
@click.option("--name", help="Name of the resulting adapter (default DATASET-JOBID).")
@click.option("--r", "r", type=int, help="LoRA rank (default 16).")
@click.option("--alpha", type=float, help="LoRA alpha (default 32).")
@click.option("--dropout", type=float, help="LoRA dropout (default 0.05).")
@click.option("--targets", help="LoRA targets: attention, attention+mlp or a regex.")
@click.option("--lr", type=float, help="Peak learning rate (default 1e-4).")
@click.option("--batch-size", type=int, help="Examples per stage per micro-batch (default 4).")
@click.option("--grad-accum", type=int, help="Micro-batches per optimizer step (default 8).")
@click.option("--save-every", type=int, help="Steps between checkpoints.")
@click.option("--patience", type=int, help="Validation passes without improvement before a stage stops early (0 = never).")
@click.option("--eval-every", type=int, help="Steps between validation passes.")
@click.option("--seed", type=int, help="Seed for adapter init, dropout and data order.")
@click.option("--device", help="cpu, cuda, cuda:1 ... (default: cuda when present).")
@click.option("--gpus", type=int, help="GPUs of one host to train on (default 1): LoRA under DDP, full under FSDP. "
              "Refused here when this machine has fewer (a studio on Redis leaves it to the worker's host).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), help="Autocast precision.")
@click.option("--voice-prompts", type=click.Choice(VOICE_PROMPT_MODES),
              help="Train each clip with a voice prompt from another clip of its speaker (default auto: "
                   "when the dataset has several clips per speaker).")
@click.option("--condition", multiple=True,
              help="A clip label to condition on (speaker, or a numeric/categorical label); repeat for several.")
@click.option("--wait", is_flag=True, help="Block until done (runs the job here when no worker is alive).")
@json_option
@pass_ctx
def train(ctx, dataset, stages, method, model, preset, max_steps, name, wait, as_json, **hyper):
    """Fine-tune Bark on a dataset (LoRA or full); the result is a named adapter."""
    from studio.datasets import store
    from studio.datasets.fit import check_transcripts_fit
    from workers.dispatch import submit

    refusal = gpus_refusal(hyper.get("gpus"), remote_workers=bool(ctx.ws.redis_url))
    if refusal:  # before anything else: a job that cannot run here is never queued
        raise UserError(refusal)
    store.get_dataset(ctx.ws.db, dataset)  # an unknown dataset fails here, before a job is queued
    check_transcripts_fit(ctx.ws, dataset)  # an over-long transcript too, naming its clip
    if name:
        T.check_name(name)
    if max_steps is not None and max_steps < 1:
        raise UserError("--max-steps must be at least 1")
    params = {"dataset": dataset, "stages": _stages(stages), "model": model, "preset": preset, "name": name,
              "method": method or default_method(preset), "max_steps": max_steps,
              **{k: v for k, v in hyper.items() if v not in (None, ())}}
    job = submit(ctx.ws, "train", {k: v for k, v in params.items() if v is not None}, wait=wait)
    emit(job, as_json, _job_line)
    if wait and job["status"] in ("failed", "cancelled", "interrupted"):
        sys.exit(1)


# --- adapters ------------------------------------------------------------------------------------

def _adapter_line(a: dict) -> str:
    val = f"val {a['val_loss']:.4f}" if a.get("val_loss") is not None else "val -"
    return (f"{a['name']:<24} {a['method']:<4} {','.join(a['stages']):<22} {a['base_model']:<18} "
            f"{a.get('dataset') or '-':<16} {val}  {a['created_at']}")


@click.group("adapters")
def adapters() -> None:
    """Trained adapters: list, show, delete, export."""


@adapters.command("list")
@json_option
@pass_ctx
def adapters_list(ctx, as_json):
    emit(T.list_adapters(ctx.ws), as_json, lambda rows: "\n".join(map(_adapter_line, rows)) or "no adapters")


@adapters.command("show", help="An adapter's manifest: base model, stages, dataset, hyperparameters, metrics.")
@click.argument("name")
@json_option
@pass_ctx
def adapters_show(ctx, name, as_json):
    a = T.get_adapter(ctx.ws, name)
    emit(a, as_json, lambda d: _adapter_line(d) + f"\npath: {d['path']}\ncheckpoint: {d['checkpoint']}\n"
         f"hyperparameters: {d['manifest'].get('hyperparameters')}\nmetrics: {d['manifest'].get('metrics')}")


@adapters.command("delete", help="Delete an adapter (its folder and row).")
@click.argument("name")
@json_option
@pass_ctx
def adapters_delete(ctx, name, as_json):
    emit(T.delete_adapter(ctx.ws, name), as_json, lambda d: f"deleted adapter {d['name']}")


@adapters.command("export")
@click.argument("name")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="A new folder to write.")
@click.option("--merged", is_flag=True, help="Merge into a standalone Bark checkpoint (a job: loads the model).")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Adapter scale when merging.")
@click.option("--model", help="Base model to merge into (default: the adapter's own).")
@click.option("--wait", is_flag=True, help="With --merged: block until the export job ends.")
@json_option
@pass_ctx
def adapters_export(ctx, name, out, merged, scale, model, wait, as_json):
    """Copy the adapter folder (loadable by plain PEFT), or merge it into a standalone checkpoint."""
    out_dir = Path(out).expanduser().resolve()
    if out_dir.exists():
        raise UserError(f"{out_dir} already exists")
    if not merged:
        T.export_adapter_copy(ctx.ws, name, out_dir)
        emit({"adapter": name, "out": str(out_dir), "merged": False}, as_json, lambda d: f"copied to {d['out']}")
        return
    from workers.dispatch import submit

    adapter = T.get_adapter(ctx.ws, name)
    job = submit(ctx.ws, "export_adapter", {"adapters": [{"name": adapter["name"], "scale": scale}],
                                            "model": model or adapter["base_model"], "out": str(out_dir)}, wait=wait)
    emit(job, as_json, _job_line)
    if wait and job["status"] != "succeeded":
        sys.exit(1)


# --- checkpoints ---------------------------------------------------------------------------------

def _checkpoint_line(c: dict) -> str:
    val = f"{c['val_loss']:.4f}" if c.get("val_loss") is not None else "-"
    return f"{c['id']:>5}  job {c['job_id']:<5} step {c['step']:<7} val {val:<8} {'best' if c['is_best'] else '':<4}  {c['path']}"


@click.group("checkpoints")
def checkpoints() -> None:
    """Training checkpoints: list, promote to an adapter, delete."""


@checkpoints.command("list")
@click.option("--job", "job_id", type=int, help="Only this training job's checkpoints.")
@json_option
@pass_ctx
def checkpoints_list(ctx, job_id, as_json):
    emit(T.list_checkpoints(ctx.ws, job_id), as_json,
         lambda rows: "\n".join(map(_checkpoint_line, rows)) or "no checkpoints")


@checkpoints.command("promote")
@click.argument("checkpoint_id", type=int)
@click.option("--name", required=True, help="Name of the new adapter.")
@json_option
@pass_ctx
def checkpoints_promote(ctx, checkpoint_id, name, as_json):
    emit(T.promote_checkpoint(ctx.ws, checkpoint_id, name), as_json, _adapter_line)


@checkpoints.command("delete", help="Delete a checkpoint; the run's latest/best pointers move to one that remains.")
@click.argument("checkpoint_id", type=int)
@json_option
@pass_ctx
def checkpoints_delete(ctx, checkpoint_id, as_json):
    emit(T.delete_checkpoint(ctx.ws, checkpoint_id), as_json, lambda c: f"deleted checkpoint {c['path']}")
