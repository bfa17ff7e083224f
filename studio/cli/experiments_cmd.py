"""eval, sweep, sweeps list|show, experiment create|list|show|link|conclude, emergent list|add|star|tag|note|export."""
from __future__ import annotations

import json
from pathlib import Path

import click

from models.names import AUDIO_SUFFIXES
from studio.cli import emit, json_option, pass_ctx
from studio.conditioning import condition_params
from studio.errors import UserError
from studio.experiments import arms as arm_specs
from studio.experiments import requests
from studio.inference import DEFAULT_MODEL, ENGINES, PRECISIONS


def register(main: click.Group) -> None:
    for cmd in (eval_cmd, sweep_cmd, sweeps_group, experiment_group, emergent_group):
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

    files = _audio_files(audio)
    params = {"audio": files, "texts": _texts(texts, texts_file),
              "references": _audio_files(references) if references else [],
              "prosody_references": _audio_files(prosody_refs) if prosody_refs else [],
              "real_audio": _audio_files(real_audio) if real_audio else [], "real_texts": list(real_texts),
              "asr": asr, "speaker_encoder": encoder, "f0_method": f0_method, "arm": arm,
              "experiment_id": experiment_id(ctx.ws, experiment), "name": name, "flag": not no_flag}
    for key, label in (("texts", "--text"), ("prosody_references", "--prosody-ref")):
        if params[key] and len(params[key]) != len(files):
            raise UserError(f"{len(params[key])} {label} for {len(files)} audio files; give one per file")
    if len(params["real_texts"]) != len(params["real_audio"]):
        raise UserError("give one --real-text per --real recording")
    _finish(ctx, submit(ctx.ws, "eval", params, wait=wait), as_json)


# One set of parsers for the CLI and the Experiments tab (studio.experiments.requests).
_audio_files, _texts, _axis, _range = requests.audio_files, requests.texts, requests.parse_axis, requests.parse_range
_mix, _voice_file, _adapter_specs = requests.parse_mix, arm_specs.voice_file, arm_specs.adapter_specs


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
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
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
    axes_d = dict(_axis(a) for a in axes)
    request = {"mode": "random" if n_random else "grid", "n": n_random, "random_seed": random_seed,
               "prompts": list(prompts) or (exp["prompts"] if exp else []),
               "seeds": [int(s) for s in seeds.split(",") if s.strip()], "axes": axes_d,
               "ranges": dict(_range(r) for r in ranges), "mixes": dict(_mix(m, ctx.ws) for m in mixes),
               "model": model, "voice": _voice_file(voice, ctx.ws) if voice else None,
               "adapter": _adapter_specs(adapter, "--adapter", ctx.ws)[0]["path"] if adapter else None,
               "references": _audio_files(references) if references else [], "asr": asr, "f0_method": f0_method,
               "real_audio": _audio_files(real_audio) if real_audio else [], "real_texts": list(real_texts),
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


# Experiments ------------------------------------------------------------------------------------

def _arm(spec: str, ws=None) -> dict:
    return arm_specs.parse_arm(spec, ws, "--arm")


def _experiment_text(e: dict) -> str:
    lines = [f"experiment {e['id']}: {e['name']} ({e['status']})", f"hypothesis: {e['hypothesis'] or '-'}",
             f"dataset: {e['dataset'] or '-'}", "arms: " + (", ".join(f"{a['name']} ({a['kind']})" for a in e["arms"])
                                                          or "-"),
             f"prompts: {len(e['prompts'])}"]
    for s in e.get("sweeps", []):
        summary = s.get("summary") or {}
        lines.append(f"  {s['mode']} {s['id']} ({s['status']}): {summary.get('n_outputs', 0)} outputs, "
                     f"{len(s['plots'])} plots")
        for metric, per_arm in (summary.get("by_arm") or {}).items():
            if metric in ("wer", "speaker_similarity", "f0_corr", "music_likeness", "duration_s"):
                cells = ", ".join(f"{arm}={v['mean']:.3g}" for arm, v in per_arm.items() if v.get("mean") is not None)
                if cells:
                    lines.append(f"    {metric}: {cells}")
    for r in e.get("listening", []):
        lines.append(f"  listening {r['session_id']} {r.get('name', '')}: {r.get('n_votes', 0)} votes"
                     + (f" ({r['error']})" if r.get("error") else ""))
    lines.append(f"  emergent entries: {len(e.get('emergent', []))}")
    lines.append(f"conclusion: {e['conclusion'] or '-'}")
    return "\n".join(lines)


@click.group("experiment")
def experiment_group() -> None:
    """Experiment records: hypothesis, dataset, arms, prompts, results and a conclusion."""


@experiment_group.command("create")
@click.argument("name")
@click.option("--hypothesis", default="")
@click.option("--dataset", help="The dataset (name or id) the arms were trained or conditioned on.")
@click.option("--arm", "arms", multiple=True, help="name=...,kind=base|voice_prompt|finetune|adapter_scale|"
              "adapter_mix[,adapter=PATH:SCALE+PATH:SCALE][,voice=PATH][,model=tiny][,speaker=A:0.7,B:0.3]"
              "[,label=NAME=VALUE], or JSON.")
@click.option("--prompt", "prompts", multiple=True, help="A test prompt (repeat for several).")
@click.option("--prompts-file", type=click.Path(dir_okay=False), help="One test prompt per line.")
@json_option
@pass_ctx
def experiment_create(ctx, name, hypothesis, dataset, arms, prompts, prompts_file, as_json):
    from studio.experiments.records import create_experiment

    exp = create_experiment(ctx.ws, name=name, hypothesis=hypothesis, dataset=dataset,
                            arms=[_arm(a, ctx.ws) for a in arms], prompts=_texts(prompts, prompts_file))
    emit(exp, as_json, _experiment_text)


@experiment_group.command("list", help="Experiments with their hypotheses and status.")
@json_option
@pass_ctx
def experiment_list(ctx, as_json):
    from studio.experiments.records import list_experiments

    rows = list_experiments(ctx.ws)
    emit(rows, as_json, lambda rs: "\n".join(f"{e['id']:>4}  {e['status']:<9} {e['name']}" for e in rs)
         or "no experiments")


@experiment_group.command("show")
@click.argument("ref")
@json_option
@pass_ctx
def experiment_show(ctx, ref, as_json):
    """The experiment's page: record, sweeps and metrics, listening results, emergent entries."""
    from studio.experiments.records import page

    emit(page(ctx.ws, ref), as_json, _experiment_text)


@experiment_group.command("link")
@click.argument("ref")
@click.option("--listening", "sessions", multiple=True, type=int, required=True, help="Listening session id.")
@json_option
@pass_ctx
def experiment_link(ctx, ref, sessions, as_json):
    """Attach listening sessions to an experiment (their results appear on its page)."""
    from studio.experiments.records import update_experiment

    emit(update_experiment(ctx.ws, ref, add_listening=list(sessions)), as_json, _experiment_text)


@experiment_group.command("conclude", help="Write the experiment's conclusion.")
@click.argument("ref")
@click.argument("conclusion")
@json_option
@pass_ctx
def experiment_conclude(ctx, ref, conclusion, as_json):
    from studio.experiments.records import conclude

    emit(conclude(ctx.ws, ref, conclusion), as_json, _experiment_text)


# Emergent log ---------------------------------------------------------------------------------

def _entry_line(e: dict) -> str:
    stars = "*" * e["stars"]
    what = f"output {e['output_id']}" if e["output_id"] else (f"generation {e['generation_id']}" if e["generation_id"]
                                                              else e["audio_path"] or "-")
    return (f"{e['id']:>4}  {e['source']:<6} {stars:<5} {what}  [{', '.join(e['tags'])}]  "
            f"{e['flag_reason'] or e['notes'] or ''}")


@click.group("emergent")
def emergent_group() -> None:
    """The emergent-behaviour log: outliers flagged automatically, and clips added by hand."""


def _filters(f):
    f = click.option("--tag")(f)
    f = click.option("--min-stars", type=int, default=0)(f)
    f = click.option("--source", type=click.Choice(["auto", "manual"]))(f)
    f = click.option("--experiment")(f)
    f = click.option("--sweep", "sweep_id", type=int)(f)
    return f


def _list(ctx, tag, min_stars, source, experiment, sweep_id):
    from studio.experiments.emergent import list_entries
    from studio.experiments.records import experiment_id

    return list_entries(ctx.ws, tag=tag, min_stars=min_stars, source=source,
                        experiment_id=experiment_id(ctx.ws, experiment), sweep_id=sweep_id)


@emergent_group.command("list")
@_filters
@json_option
@pass_ctx
def emergent_list(ctx, tag, min_stars, source, experiment, sweep_id, as_json):
    rows = _list(ctx, tag, min_stars, source, experiment, sweep_id)
    emit(rows, as_json, lambda rs: "\n".join(_entry_line(e) for e in rs) or "the log is empty")


@emergent_group.command("add", help="Add a generation, sweep output or audio file to the log by hand.")
@click.option("--output", "output_id", type=int, help="A sweep/eval output id.")
@click.option("--generation", "generation_id", type=int, help="A generation from the history.")
@click.option("--audio", type=click.Path(dir_okay=False), help="Any audio file (copied into the workspace).")
@click.option("--experiment")
@click.option("--tag", "tags", multiple=True)
@click.option("--notes", default="")
@click.option("--stars", type=int, default=0)
@json_option
@pass_ctx
def emergent_add(ctx, output_id, generation_id, audio, experiment, tags, notes, stars, as_json):
    from studio.experiments.emergent import add_entry
    from studio.experiments.records import experiment_id

    entry = add_entry(ctx.ws, output_id=output_id, generation_id=generation_id, audio=audio,
                      experiment_id=experiment_id(ctx.ws, experiment), tags=list(tags), notes=notes, stars=stars)
    emit(entry, as_json, _entry_line)


@emergent_group.command("star")
@click.argument("entry_id", type=int)
@click.argument("stars", type=int)
@json_option
@pass_ctx
def emergent_star(ctx, entry_id, stars, as_json):
    from studio.experiments.emergent import update_entry

    emit(update_entry(ctx.ws, entry_id, stars=stars), as_json, _entry_line)


@emergent_group.command("tag", help="Set an entry's tags.")
@click.argument("entry_id", type=int)
@click.option("--add", "add", multiple=True)
@click.option("--remove", "remove", multiple=True)
@json_option
@pass_ctx
def emergent_tag(ctx, entry_id, add, remove, as_json):
    from studio.experiments.emergent import update_entry

    emit(update_entry(ctx.ws, entry_id, add_tags=list(add), remove_tags=list(remove)), as_json, _entry_line)


@emergent_group.command("note", help="Set an entry's notes.")
@click.argument("entry_id", type=int)
@click.argument("notes")
@json_option
@pass_ctx
def emergent_note(ctx, entry_id, notes, as_json):
    from studio.experiments.emergent import update_entry

    emit(update_entry(ctx.ws, entry_id, notes=notes), as_json, _entry_line)


@emergent_group.command("export")
@click.argument("target", type=click.Path(dir_okay=False))
@_filters
@json_option
@pass_ctx
def emergent_export(ctx, target, tag, min_stars, source, experiment, sweep_id, as_json):
    """A zip of the (filtered) entries' audio with a JSON manifest of how to reproduce each."""
    from studio.experiments.emergent import export_entries

    rows = _list(ctx, tag, min_stars, source, experiment, sweep_id)
    path = export_entries(ctx.ws, rows, Path(target))
    emit({"export": str(path), "entries": len(rows)}, as_json,
         lambda d: f"exported {d['entries']} entries to {d['export']}")
