"""eval, sweep, sweeps list|show|export: the jobs that generate and measure outputs, and their records."""
from __future__ import annotations

import click

from studio.cli import emit, json_option, pass_ctx
from studio.conditioning import condition_params
from studio.errors import UserError
from studio.experiments import arms as arm_specs
from studio.experiments import requests
from studio.inference import DEFAULT_MODEL, ENGINES, PRECISIONS


def register(main: click.Group) -> None:
    for cmd in (eval_cmd, sweep_cmd, sweeps_group):
        main.add_command(cmd)


def _job_result(ws, job: dict) -> dict:
    from studio.experiments.sweeps import sweep_for_job

    out = {"job": job}
    if job["status"] not in ("queued", "running"):
        out["sweep"] = sweep_for_job(ws, job["id"])
    return out


def _job_line(d: dict) -> str:
    job = d["job"]
    lines = [f"job {job['id']} ({job['kind']}): {job['status']}"]
    if job.get("error"):
        lines.append(f"error: {job['error']}")
    sweep = d.get("sweep")
    if sweep:
        summary = sweep.get("summary") or {}
        lines.append(f"sweep {sweep['id']}: {summary.get('n_outputs', 0)} outputs, {len(sweep['plots'])} plots, "
                     f"{len(summary.get('flagged') or [])} flagged into the emergent log")
        floors = summary.get("floors") or {}
        for k in ("asr_model", "wer_floor", "speaker_encoder", "real_vs_real_similarity"):
            if floors.get(k) is not None:
                lines.append(f"  {k}: {floors[k]}")
        for name, st in (summary.get("overall") or {}).items():
            if st.get("mean") is not None:
                lines.append(f"  {name:<22} mean {st['mean']:.4g}  (n={st['n']})")
    return "\n".join(lines)


def _finish(ctx, job: dict, as_json: bool) -> None:
    result = _job_result(ctx.ws, job)
    emit(result, as_json, _job_line)
    if job["status"] == "failed":
        raise SystemExit(1)


@click.command("eval")
@click.argument("audio", nargs=-1, required=True)
@click.option("--text", "texts", multiple=True, help="What each clip should say (one per clip, in order).")
@click.option("--texts-file", type=click.Path(dir_okay=False), help="One text per line, in clip order.")
@click.option("--ref", "references", multiple=True, help="Real clip(s) of the target speaker (similarity).")
@click.option("--prosody-ref", "prosody_refs", multiple=True, help="A same-text recording per clip (F0).")
@click.option("--real", "real_audio", multiple=True, help="Real recording(s) for the WER floor.")
@click.option("--real-text", "real_texts", multiple=True, help="Transcript of each --real recording.")
@click.option("--asr", help="Whisper size for WER (base, small, ...; `test-random` = random weights, tests only).")
@click.option("--encoder", default="resemblyzer", show_default=True, type=click.Choice(["resemblyzer", "wavlm"]))
@click.option("--f0", "f0_method", default="pyin", show_default=True, type=click.Choice(["pyin", "crepe"]))
@click.option("--arm", default="", help="The arm these clips belong to (outliers are judged per arm).")
@click.option("--experiment", help="Experiment (id or name) this eval belongs to.")
@click.option("--name", default="", help="A label for this eval.")
@click.option("--no-flag", is_flag=True, help="Do not flag outliers into the emergent log.")
@click.option("--wait", is_flag=True, help="Block until the job ends (runs it here if no worker is alive).")
@json_option
@pass_ctx
def eval_cmd(ctx, audio, texts, texts_file, references, prosody_refs, real_audio, real_texts, asr, encoder,
             f0_method, arm, experiment, name, no_flag, wait, as_json):
    """Metrics for AUDIO files or folders: WER, speaker similarity, prosody, descriptors."""
    from studio.experiments.records import experiment_id
    from workers.dispatch import submit

    files = requests.audio_files(audio)
    params = {"audio": files, "texts": requests.texts(texts, texts_file),
              "references": requests.audio_files(references) if references else [],
              "prosody_references": requests.audio_files(prosody_refs) if prosody_refs else [],
              "real_audio": requests.audio_files(real_audio) if real_audio else [], "real_texts": list(real_texts),
              "asr": asr, "speaker_encoder": encoder, "f0_method": f0_method, "arm": arm,
              "experiment_id": experiment_id(ctx.ws, experiment), "name": name, "flag": not no_flag}
    for key, label in (("texts", "--text"), ("prosody_references", "--prosody-ref")):
        if params[key] and len(params[key]) != len(files):
            raise UserError(f"{len(params[key])} {label} for {len(files)} audio files; give one per file")
    if len(params["real_texts"]) != len(params["real_audio"]):
        raise UserError("give one --real-text per --real recording")
    _finish(ctx, submit(ctx.ws, "eval", params, wait=wait), as_json)


def _seeds(_ctx, _param, value: str) -> list[int]:
    """--seeds 0,1,2 -> [0, 1, 2]; a typo is one line (UserError), not a traceback."""
    try:
        return [int(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {value!r}: write whole numbers separated by commas (e.g. 0,1,2)") from None


@click.command("sweep")
@click.option("--prompt", "prompts", multiple=True, help="A test prompt (repeat for several).")
@click.option("--experiment", help="Experiment (id or name): its prompts and arms are used.")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Bark model: small, large, a hub id or folder (tiny = random test weights).")
@click.option("--voice", help="Voice prompt (.npz) for every output.")
@click.option("--adapter", help="Adapter folder whose scale `--axis adapter_scale=...` sweeps.")
@click.option("--axis", "axes", multiple=True, help="NAME=V1,V2,... or NAME=LOW:HIGH:STEPS: semantic_temperature, "
              "coarse_temperature, fine_temperature, adapter_scale, adapter_mix, seed, arm, label:NAME (a numeric "
              "label of a --condition adapter); speaker_mix=A:B:STEPS mixes speaker A into B (t = 0..1).")
@click.option("--range", "ranges", multiple=True, help="NAME=LOW:HIGH for --random sweeps.")
@click.option("--mix", "mixes", multiple=True, help="NAME=PATH:SCALE+PATH:SCALE, an adapter mix for adapter_mix.")
@click.option("--arm", "arms", multiple=True, help="Sweep these arms of the experiment (default: all of them).")
@click.option("--speaker", "speakers", multiple=True,
              help="NAME[:WEIGHT] for every output of a --condition adapter; repeat to mix voices.")
@click.option("--label", "labels", multiple=True, help="NAME=VALUE of a label the adapter is conditioned on.")
@click.option("--seeds", default="0", show_default=True, callback=_seeds, help="Comma-separated seeds.")
@click.option("--random", "n_random", type=int, default=0, help="Draw N random points instead of the full grid.")
@click.option("--random-seed", type=int, default=0, show_default=True)
@click.option("--ref", "references", multiple=True, help="Real clip(s) of the target speaker (similarity).")
@click.option("--real", "real_audio", multiple=True, help="Real recording(s) for the WER floor (with --asr).")
@click.option("--real-text", "real_texts", multiple=True, help="Transcript of each --real recording.")
@click.option("--asr", help="Whisper size for WER (`test-random` = random weights, tests only).")
@click.option("--f0", "f0_method", default="pyin", show_default=True, type=click.Choice(["pyin", "crepe"]))
@click.option("--batch-size", default=4, show_default=True, type=int, help="Generations per batch.")
@click.option("--max-new-semantic", type=int, help="Cap on semantic tokens per output (short trials).")
@click.option("--engine", type=click.Choice(ENGINES), default="fast", show_default=True,
              help="fast: batched engine (static KV cache, SDPA); reference: the model core's plain loop.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Inference weights: auto = bf16 on GPUs and bf16-capable CPUs, else fp32 (fp16: CUDA only).")
@click.option("--name", default="")
@click.option("--no-flag", is_flag=True, help="Do not flag outliers into the emergent log.")
@click.option("--wait", is_flag=True, help="Block until the job ends (runs it here if no worker is alive).")
@json_option
@pass_ctx
def sweep_cmd(ctx, prompts, experiment, model, voice, adapter, axes, ranges, mixes, arms, speakers, labels, seeds,
              n_random, random_seed,
              references, real_audio, real_texts, asr, f0_method, batch_size, max_new_semantic, engine, precision, name,
              no_flag, wait, as_json):
    """Generate over a grid (or random draw) of parameters, measure every output, plot each metric."""
    from studio.experiments.records import get_experiment
    from workers.dispatch import submit

    exp = get_experiment(ctx.ws, experiment) if experiment else None
    axes_d = dict(requests.parse_axis(a) for a in axes)
    request = {"mode": "random" if n_random else "grid", "n": n_random, "random_seed": random_seed,
               "prompts": list(prompts) or (exp["prompts"] if exp else []),
               "seeds": seeds, "axes": axes_d,
               "ranges": dict(requests.parse_range(r) for r in ranges),
               "mixes": dict(requests.parse_mix(m, ctx.ws) for m in mixes),
               "model": model, "voice": arm_specs.voice_file(voice, ctx.ws) if voice else None,
               "adapter": arm_specs.adapter_specs(adapter, "--adapter", ctx.ws)[0]["path"] if adapter else None,
               "references": requests.audio_files(references) if references else [], "asr": asr, "f0_method": f0_method,
               "real_audio": requests.audio_files(real_audio) if real_audio else [], "real_texts": list(real_texts),
               "batch_size": batch_size, "max_new_semantic": max_new_semantic, "engine": engine,
               "precision": precision, "name": name, "flag": not no_flag,
               "experiment_id": exp["id"] if exp else None, "arms": exp["arms"] if exp else [],
               "speaker_mix": requests.speaker_mix_ends(axes), **condition_params(speakers, labels)}
    if exp and exp["arms"] and "arm" not in axes_d:
        chosen = list(arms) or [a["name"] for a in exp["arms"]]
        request["axes"]["arm"] = chosen
    if len(real_texts) != len(real_audio):
        raise UserError("give one --real-text per --real recording")
    if voice and request["voice"] is None:
        raise UserError(f"{voice}: neither a voice prompt file nor a saved voice")
    request = requests.checked(ctx.ws, request)  # bad requests fail here, before a job row exists
    _finish(ctx, submit(ctx.ws, "sweep", request, wait=wait), as_json)


@click.group("sweeps")
def sweeps_group() -> None:
    """Sweeps and evals already run, with every output."""


@sweeps_group.command("list")
@click.option("--experiment")
@json_option
@pass_ctx
def sweeps_list(ctx, experiment, as_json):
    from studio.experiments.records import experiment_id
    from studio.experiments.sweeps import list_sweeps

    rows = list_sweeps(ctx.ws, experiment_id(ctx.ws, experiment))
    emit(rows, as_json, lambda rs: "\n".join(
        f"{r['id']:>4}  {r['mode']:<6} {r['status']:<8} job {r['job_id']}  {r['name']}" for r in rs) or "no sweeps")


@sweeps_group.command("show")
@click.argument("sweep_id", type=int)
@json_option
@pass_ctx
def sweeps_show(ctx, sweep_id, as_json):
    from studio.experiments.sweeps import get_sweep

    sweep = get_sweep(ctx.ws, sweep_id)
    emit(sweep, as_json, lambda x: _job_line({"job": {"id": x["job_id"], "kind": x["mode"], "status": x["status"]},
                                              "sweep": x}))


@sweeps_group.command("export")
@click.argument("sweep_id", type=int)
@click.argument("target", type=click.Path(file_okay=False))
@json_option
@pass_ctx
def sweeps_export(ctx, sweep_id, target, as_json):
    """Outputs into TARGET/<arm>/<item>.wav, items named alike across arms (listening-session systems)."""
    from studio.experiments.sweeps import export_by_arm

    folders = export_by_arm(ctx.ws, sweep_id, target)
    emit(folders, as_json, lambda d: "\n".join(f"{arm}: {folder}" for arm, folder in d.items()))
