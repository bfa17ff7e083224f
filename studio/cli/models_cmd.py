"""models list|verify|download, voice create|list|delete, generate, tokenize.

Heavy work runs as jobs ("voice", "generate", "tokenize"); these commands submit and wait (with
no live worker the job runs in this process). Nothing here imports torch at import time."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from studio.cli import emit, json_option, pass_ctx
from studio.errors import UserError
from studio.inference import DEFAULT_MODEL, ENGINES, PRECISIONS
from studio.conditioning import condition_params


def register(main: click.Group) -> None:
    main.add_command(models_group)
    main.add_command(voice_group)
    main.add_command(generate_cmd)
    main.add_command(tokenize_cmd)


def _job_line(j: dict) -> str:
    line = f"job {j['id']} {j['kind']}: {j['status']}"
    if j.get("error"):
        line += f"\nerror: {j['error']}"
    return line


def _fail_if_failed(job: dict, as_json: bool) -> None:
    """A failed job: its row as JSON (exit 1) with --json, else its error as one line."""
    if job["status"] == "succeeded":
        return
    if as_json:
        emit(job, True)
        sys.exit(1)
    raise UserError(f"job {job['id']} {job['status']}: {job.get('error') or job['status']}")


# --- models --------------------------------------------------------------------------------------

@click.group("models")
def models_group() -> None:
    """Model presets and their weights (tiny, small, large, or a hub id)."""


def _state_lines(rows: list[dict]) -> str:
    from models.catalog import human_bytes

    out = []
    for r in rows:
        if r.get("loadable") is False and r["present"]:
            verdict = "BROKEN"
        else:
            verdict = "ok" if r["present"] else "MISSING"
        size = human_bytes(r["bytes"]) if r["present"] else f"~{human_bytes(r['approx_bytes'])}"
        missing = f" ({', '.join(r['missing'])})" if r["missing"] and r["bytes"] else ""
        note = f"  {r['note']}" if r.get("note") else ""
        out.append(f"{verdict:<8}{r['label'] + ' ' + r['repo']:<48}{size:>9}  {r['where']}{missing}{note}")
    return "\n".join(out)


def _check_preset(preset: str) -> str:
    from models.catalog import PRESETS, looks_like_path

    name = (preset or "").strip()
    if not name:
        raise UserError("name a preset: small, large (tiny needs nothing), or a hub id")
    if looks_like_path(name):
        raise UserError(f"{name!r} is a folder: there is nothing to download or verify for it")
    if name not in PRESETS and name.count("/") != 1:
        raise UserError(f"unknown preset {name!r}; use {', '.join(PRESETS)} or a hub id (owner/name)")
    return name


@models_group.command("list")
@json_option
def list_cmd(as_json):
    """Each preset's components: present or missing, size on disk, where they live."""
    from models import catalog

    data = {name: catalog.state(name) for name in catalog.REAL_PRESETS}
    emit(data, as_json, lambda d: "\n\n".join(
        f"{name} ({catalog.PRESETS[name].bark}, about {catalog.human_bytes(catalog.total_bytes(name))}):\n"
        f"{_state_lines(rows)}" for name, rows in d.items()) + "\n\ntiny: test model (random weights), nothing to download")


@models_group.command("verify")
@click.argument("preset")
@click.option("--no-load", is_flag=True, help="Only check that the files are there (fast), not that they load.")
@json_option
def verify(preset, no_load, as_json):
    """Offline: check that every file PRESET uses is present and loads. Exit 1 naming what is missing."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"   # verify never touches the network
    name = _check_preset(preset)
    if name == "tiny":
        emit({"preset": name, "ok": True, "components": []}, as_json,
             lambda d: "tiny is the test model (random weights): nothing to verify")
        return
    from models import catalog, weights

    rows = weights.verify(name, load=not no_load)
    ok = all(r["present"] and r["loadable"] is not False for r in rows)
    data = {"preset": name, "ok": ok, "components": rows}
    if as_json:
        emit(data, True)
    else:
        click.echo(_state_lines(rows))
    if not ok:
        bad = [f"{r['label']} {r['repo']}" for r in rows if not r["present"] or r["loadable"] is False]
        target = name if name in catalog.PRESETS else catalog.preset_for(name).bark
        raise UserError(f"{name}: missing or unreadable: {'; '.join(bad)}; run "
                        f"`{catalog.DOWNLOAD_HINT.format(preset=target)}`")


@models_group.command("download")
@click.argument("preset")
@click.option("--dry-run", is_flag=True, help="Only list what the preset needs, with sizes.")
@click.option("--job", "as_job", is_flag=True, help="Run it as a queued `download` job (progress on the job row).")
@click.option("--wait", is_flag=True, help="With --job: block until it ends (runs here when no worker is alive).")
@json_option
@pass_ctx
def download(ctx, preset, dry_run, as_job, wait, as_json):
    """Fetch everything PRESET uses: Bark (with its built-in voices), HuBERT, the quantizer, EnCodec
    and the Whisper size for transcripts and WER, into the Hugging Face cache and Whisper's folder."""
    from models import catalog

    name = _check_preset(preset)
    if dry_run or name == "tiny":
        rows = catalog.state(name)
        emit({"preset": name, "needs": rows, "approx_bytes": catalog.total_bytes(name)}, as_json,
             lambda d: (_state_lines(d["needs"]) + f"\ntotal about {catalog.human_bytes(d['approx_bytes'])}")
             if d["needs"] else "tiny is the test model (random weights): nothing to download")
        return
    if as_job:
        from workers.dispatch import submit

        job = submit(ctx.ws, "download", {"preset": name}, wait=wait)
        emit(job, as_json, _job_line)
        if job["status"] in ("failed", "cancelled", "interrupted"):
            sys.exit(1)
        return
    from models import weights
    from models.errors import ModelInputError

    def progress(i, n, what):
        click.echo(f"[{min(i + 1, n)}/{n}] {what}" if i < n else f"[{n}/{n}] done", err=True)

    try:
        rows = weights.download(name, progress=progress)
    except ModelInputError as exc:
        raise UserError(str(exc)) from exc
    emit({"preset": name, "downloaded": rows}, as_json, _state_lines)


# --- voices --------------------------------------------------------------------------------------

@click.group("voice")
def voice_group() -> None:
    """Voice prompts: a 5-12 s span of a clip that conditions generation without training."""


@voice_group.command("create")
@click.argument("name")
@click.option("--clip", required=True, help="An audio file path or a dataset clip id.")
@click.option("--start", type=float, help="Span start in seconds (default 0).")
@click.option("--end", type=float, help="Span end in seconds (default: the clip's end, at most 12 s in).")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Token models: small, large or a hub id (tiny = random test weights).")
@json_option
@pass_ctx
def voice_create(ctx, name, clip, start, end, model, as_json):
    """Make voice NAME from a clip (or a span of it)."""
    from studio import voices as V
    from workers.dispatch import submit

    V.check_name(name)
    clip_arg = clip if clip.strip().isdigit() else str(Path(clip).expanduser().resolve())
    job = submit(ctx.ws, "voice", {"name": name, "clip": clip_arg, "start": start, "end": end, "model": model},
                 wait=True)
    _fail_if_failed(job, as_json)
    row = {**job["result"], "job_id": job["id"]}
    emit(row, as_json, lambda v: f"voice {v['name']}: {v['seconds']} s from {v['source_path']} "
                                 f"({v['span_start']:.2f}-{v['span_end']:.2f} s)")


@voice_group.command("list")
@json_option
@pass_ctx
def voice_list(ctx, as_json):
    """Saved voices."""
    from studio import voices as V

    emit(V.list_voices(ctx.ws), as_json,
         lambda rows: "\n".join(f"{v['name']:<24} {v['seconds']:6.2f} s  {v['model']:<12} {v['source_path']}"
                                for v in rows) or "no voices")


@voice_group.command("delete")
@click.argument("name")
@json_option
@pass_ctx
def voice_delete(ctx, name, as_json):
    """Delete voice NAME (its prompt file too; generation history keeps the name)."""
    from studio import voices as V

    emit(V.delete_voice(ctx.ws, name), as_json, lambda v: f"deleted voice {v['name']}")


# --- generate ------------------------------------------------------------------------------------

def resolve_adapter(ws, spec: str) -> dict:
    """NAME[:SCALE] or latest[:SCALE] -> {"name", "path", "scale"} (a folder under ws.adapters_dir)."""
    name, _, scale_text = spec.rpartition(":") if ":" in spec else (spec, "", "")
    try:
        scale = float(scale_text) if scale_text else 1.0
    except ValueError:
        raise UserError(f"adapter {spec!r}: scale {scale_text!r} is not a number") from None
    root = ws.adapters_dir
    found = sorted((p for p in root.glob("*") if (p / "manifest.json").is_file()),
                   key=lambda p: (p / "manifest.json").stat().st_mtime) if root.is_dir() else []
    if name == "latest":
        if not found:
            raise UserError("no adapters yet: train one first (`bark-studio train ...`)")
        path = found[-1]
    else:
        path = root / name
        if not (path / "manifest.json").is_file():
            known = ", ".join(p.name for p in found) or "none yet"
            raise UserError(f"no adapter named {name!r} (known: {known})")
    return {"name": path.name, "path": str(path), "scale": scale}


@click.command("generate")
@click.option("--text", "texts", multiple=True, required=True, help="Text to say (repeat for several).")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Bark model: small, large, a hub id or a folder "
              "(tiny = random test weights, not a voice).")
@click.option("--voice", help="A saved voice name.")
@click.option("--adapter", "adapters", multiple=True, help="NAME[:SCALE] or latest[:SCALE]; repeat to mix.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--variants", default=1, show_default=True, type=int, help="Seeds SEED..SEED+N-1 per text.")
@click.option("--semantic-temp", type=float, help="Semantic temperature (default 0.7; 0 = greedy).")
@click.option("--coarse-temp", type=float, help="Coarse temperature (default 0.7; 0 = greedy).")
@click.option("--fine-temp", type=float, help="Fine temperature (default 0.5; 0 = greedy).")
@click.option("--min-eos-p", type=float, help="Stop when EOS is this likely (default 0.2).")
@click.option("--top-k", type=int)
@click.option("--top-p", type=float)
@click.option("--max-semantic-tokens", type=int, help="Cap on semantic tokens per chunk (768 = ~15 s).")
@click.option("--engine", type=click.Choice(ENGINES), default="fast", show_default=True,
              help="fast: batched engine (static KV cache, SDPA); reference: the model core's plain loop.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Inference weights: auto = bf16 on GPUs and bf16-capable CPUs, else fp32 (fp16: CUDA only).")
@click.option("--speaker", "speakers", multiple=True,
              help="NAME[:WEIGHT] of an adapter trained with --condition speaker; repeat to mix voices.")
@click.option("--label", "labels", multiple=True, help="NAME=VALUE of a label the adapter is conditioned on.")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Copy the (first) WAV here.")
@json_option
@pass_ctx
def generate_cmd(ctx, texts, model, voice, adapters, seed, variants, semantic_temp, coarse_temp, fine_temp,
                 min_eos_p, top_k, top_p, max_semantic_tokens, engine, precision, speakers, labels, out, as_json):
    """Text to a 24 kHz WAV (base model, a voice, adapters at scales); recorded in the history."""
    from studio import voices as V
    from workers.dispatch import submit

    if voice:
        V.voice_path(ctx.ws, voice)  # unknown voice: one clear line before any model loads
    params = {"texts": list(texts), "model": model, "voice": voice, "seed": seed, "variants": variants,
              "adapters": [resolve_adapter(ctx.ws, a) for a in adapters],
              "semantic_temperature": semantic_temp, "coarse_temperature": coarse_temp,
              "fine_temperature": fine_temp, "min_eos_p": min_eos_p, "top_k": top_k, "top_p": top_p,
              "semantic_max_new_tokens": max_semantic_tokens, "engine": engine, "precision": precision,
              **condition_params(speakers, labels)}
    job = submit(ctx.ws, "generate", params, wait=True)
    _fail_if_failed(job, as_json)
    result = {**job["result"], "job_id": job["id"]}
    if out:
        target = Path(out).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result["files"][0], target)
        result["out"] = str(target.resolve())
    emit(result, as_json, lambda r: "\n".join([r.get("out") or r["files"][0]] +
                                              (r["files"][1:] if len(r["files"]) > 1 else [])))


@click.command("tokenize")
@click.argument("dataset")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Bark model: small, large, a hub id or a folder "
              "(tiny = random test weights, not a voice).")
@click.option("--wait", is_flag=True, help="Block until done (runs here if no worker is alive).")
@json_option
@pass_ctx
def tokenize_cmd(ctx, dataset, model, wait, as_json):
    """Semantic tokens and EnCodec codes for every prepared segment of DATASET (cached, resumable)."""
    from workers.dispatch import submit

    job = submit(ctx.ws, "tokenize", {"dataset": dataset, "model": model}, wait=wait)
    emit(job, as_json, _job_line)
    if job["status"] in ("failed", "cancelled", "interrupted"):
        sys.exit(1)
