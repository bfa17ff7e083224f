"""dataset create|list|import|clips|segments|exclude|delete|trim|text|label|tags|lint|prepare|transcribe|show|export."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from studio.cli import emit, json_option, pass_ctx
from studio.errors import UserError


def register(main: click.Group) -> None:
    main.add_command(dataset)


@click.group("dataset")
def dataset() -> None:
    """Curate datasets: import recordings, trim, transcribe, prepare, report, export."""


def _job_line(j: dict) -> str:
    line = f"job {j['id']} ({j['kind']}): {j['status']}"
    if j.get("message"):
        line += f" - {j['message']}"
    if j.get("error"):
        line += f"\nerror: {j['error']}"
    return line


def _finish_job(job: dict, as_json: bool) -> None:
    emit(job, as_json, _job_line)
    if job["status"] in ("failed", "cancelled", "interrupted"):
        sys.exit(1)


@dataset.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.option("--allow-free-tags", is_flag=True, help="Accept tags beyond Bark's markers ([thunder], ...).")
@click.option("--target-lufs", type=float, help="Loudness target for this dataset (default -20).")
@click.option("--keep-dynamics", is_flag=True, help="One gain for the whole set (whisper/ASMR data keeps its quietness).")
@json_option
@pass_ctx
def create(ctx, name, description, allow_free_tags, target_lufs, keep_dynamics, as_json):
    """Create an empty dataset."""
    from studio.datasets import store
    from studio.datasets.prepare import resolve_settings

    settings = {k: v for k, v in (("target_lufs", target_lufs), ("keep_dynamics", keep_dynamics or None)) if v is not None}
    resolve_settings(settings, None)  # refuse bad values now, not at prepare time
    ds = store.create_dataset(ctx.ws.db, name, description, settings, allow_free_tags)
    emit(ds, as_json, lambda d: f"created dataset {d['name']}")


@dataset.command("list")
@json_option
@pass_ctx
def list_(ctx, as_json):
    """Datasets with their clip counts and durations."""
    from studio.datasets import store

    rows = store.list_datasets(ctx.ws.db)
    emit(rows, as_json, lambda rs: "\n".join(f"{d['name']:<24} {d['clips']:>6} clips {d['duration_s'] / 60:8.1f} min"
                                            for d in rs) or "no datasets")


@dataset.command("import")
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--source", default="", help="Where the audio came from (default: each file's path).")
@click.option("--licence", "--license", "licence", default="", help="Licence or consent note kept on each clip.")
@click.option("--speaker", default="", help="Speaker label (a corpus layout's own speakers win).")
@click.option("--provenance", type=click.Choice(["human", "ai"]), default="human", show_default=True,
              help="Human recording or AI-generated audio (the report warns about the latter).")
@click.option("--label", "clip_labels", multiple=True, metavar="NAME=VALUE",
              help="A further label for every imported clip (accent=0.3, emotion=angry); repeatable.")
@json_option
@pass_ctx
def import_(ctx, name, paths, source, licence, speaker, provenance, clip_labels, as_json):
    """Import files, folders and zip archives (LJSpeech, wav|text lists, VCTK and Common Voice
    layouts are recognised). Each refused file is named with its reason; the rest import.
    Exit status 0 when every file imported, 3 when some were refused."""
    from studio.datasets.importer import ImportOptions, import_paths

    report = import_paths(ctx.ws, name, [str(Path(p).expanduser()) for p in paths],
                          ImportOptions(source=source, licence=licence, speaker=speaker, provenance=provenance,
                                        clip_labels=list(clip_labels)))

    def human(r):
        lines = [f"imported {len(r['imported'])} clip(s) into {r['dataset']}"
                 + (f" ({', '.join(r['layouts'])})" if r["layouts"] else "")]
        lines += [f"duplicate: {d['file']} ({d['note']})" for d in r["duplicates"]]
        lines += [f"refused: {e['file']}: {e['error']}" for e in r["errors"]]
        lines += [f"skipped: {e['file']}: {e['reason']}" for e in r["skipped"]]
        return "\n".join(lines)

    emit(report, as_json, human)
    if report["errors"]:
        sys.exit(3)


@dataset.command("clips")
@click.argument("name")
@click.option("--deleted", is_flag=True, help="Also list deleted clips (to undo a delete).")
@json_option
@pass_ctx
def clips(ctx, name, deleted, as_json):
    """Clips of a dataset with their trims and transcripts; excluded and deleted ones are marked."""
    from studio.datasets import store

    rows = store.list_clips(ctx.ws.db, name, deleted=deleted)
    emit(rows, as_json, lambda rs: "\n".join(
        f"{c['id']:>5} {c['trimmed_duration']:7.2f}s {c['speaker'] or '-':<10} {c['provenance']:<5} "
        f"{(c['transcript_source'] or '-'):<7} {c['name']}  {c['text'] or ''}"
        + (f"  [{c['state']}]" if c["state"] != "active" else "") for c in rs) or "no clips")


@dataset.command("segments")
@click.argument("name")
@click.argument("clip")
@json_option
@pass_ctx
def segments(ctx, name, clip, as_json):
    """A clip's prepared segments (newest prepared version): cut times, duration, SNR, and for each
    dropped one the reason. CLIP is the clip's id or its name."""
    from studio.datasets.segments import clip_segments, segment_status

    out = clip_segments(ctx.ws.db, name, clip)
    for g in out["segments"]:
        g["path"] = str(ctx.ws.root / g.pop("blob"))  # playable as is

    def human(o):
        head = f"clip {o['clip_id']} ({o['clip_name']})" + (f", version {o['version']}" if o["version"] else "")
        lines = [head + (f": {o['note']}" if o["note"] else "")]
        for g in o["segments"]:
            snr = "-" if g["snr_db"] is None else f"{g['snr_db']:.1f} dB"
            lines.append(f"#{g['index'] + 1:<3} {g['start']:7.2f}-{g['end']:7.2f} s  {g['duration']:6.2f} s  "
                         f"snr {snr:<9} {segment_status(g)}  {g['path']}")
        return "\n".join(lines)

    emit(out, as_json, human)


@dataset.command("exclude")
@click.argument("clip_id", type=int)
@click.option("--undo", is_flag=True, help="Take the clip back in.")
@json_option
@pass_ctx
def exclude(ctx, clip_id, undo, as_json):
    """Leave a clip out of prepare, tokenize, training and the report (it stays listed, marked)."""
    from studio.datasets import store

    out = store.exclude_clip(ctx.ws.db, clip_id, undo=undo)
    emit(out, as_json, lambda c: f"clip {c['id']} ({c['name']}): {'excluded' if c['state'] == 'excluded' else 'included'}")


@dataset.command("delete")
@click.argument("clip_id", type=int)
@click.option("--undo", is_flag=True, help="Restore the deleted clip.")
@json_option
@pass_ctx
def delete(ctx, clip_id, undo, as_json):
    """Delete a clip: it is hidden and left out of everything, but its stored audio and records
    stay, so `--undo` restores it (`dataset clips NAME --deleted` lists deleted clips)."""
    from studio.datasets import store

    out = store.delete_clip(ctx.ws.db, clip_id, undo=undo)
    emit(out, as_json, lambda c: f"clip {c['id']} ({c['name']}): {'deleted' if c['state'] == 'deleted' else 'restored'}"
                                 + (f" (undo: bark-studio dataset delete {c['id']} --undo)" if c["state"] == "deleted" else ""))


@dataset.command("trim")
@click.argument("clip_id", type=int)
@click.argument("start", type=float, required=False)
@click.argument("end", type=float, required=False)
@click.option("--undo", is_flag=True, help="Go back to the previous trim.")
@json_option
@pass_ctx
def trim(ctx, clip_id, start, end, undo, as_json):
    """Keep START..END seconds of a clip (non-destructive: the original never changes)."""
    from studio.datasets import store

    if undo:
        out = store.undo_trim(ctx.ws.db, clip_id)
    else:
        if start is None or end is None:
            raise UserError("give START and END in seconds, or --undo")
        out = store.set_trim(ctx.ws.db, clip_id, start, end)
    emit(out, as_json, lambda c: f"clip {c['id']}: keeps {c['trim_start'] or 0:.2f}-"
                                 f"{c['trim_end'] if c['trim_end'] is not None else c['duration']:.2f} s")


@dataset.command("text")
@click.argument("clip_id", type=int)
@click.argument("text", required=False)
@click.option("--undo", is_flag=True, help="Undo the newest transcript edit.")
@click.option("--history", is_flag=True, help="Show the clip's transcript edits.")
@click.option("--checked", is_flag=True, help="Mark the current machine transcript as human-checked.")
@json_option
@pass_ctx
def text(ctx, clip_id, text, undo, history, checked, as_json):
    """Set a clip's transcript (marks it human-checked), undo an edit, or show the history."""
    from studio.datasets import store
    from studio.datasets.lint import lint

    db = ctx.ws.db
    if history:
        rows = store.transcript_history(db, clip_id)
        emit(rows, as_json, lambda rs: "\n".join(f"{e['id']:>5} {e['at']} {e['by']:<6} {'(undone) ' if e['undone'] else ''}"
                                                f"{e['before']!r} -> {e['after']!r}" for e in rs) or "no edits")
        return
    if undo:
        out = store.undo_transcript(db, clip_id)
    elif checked:
        out = store.mark_checked(db, clip_id)
    elif text is not None:
        out = store.set_transcript(db, clip_id, text)
    else:
        raise UserError("give the TEXT, or --undo, --history or --checked")
    clip = store.get_clip(db, clip_id)
    ds = store.get_dataset(db, clip["dataset"])
    out["lint"] = lint(out.get("text"), clip.get("asr_text"), ds["allow_free_tags"], ds["tags"])
    emit(out, as_json, lambda o: f"clip {clip_id} ({o['source']}): {o['text']}"
                                 + "".join(f"\n{i['severity']}: {i['message']}" for i in o["lint"]))


@dataset.command("label")
@click.argument("name")
@click.argument("args", nargs=-1)
@click.option("--unset", multiple=True, metavar="LABEL", help="Remove this label from the clips; repeatable.")
@json_option
@pass_ctx
def label(ctx, name, args, unset, as_json):
    """Label clips: `dataset label NAME CLIP... speaker=alice accent=0.3`. CLIP is a clip id or a
    name glob ('p225_*'); a value that reads as a number is numeric, any other is a category.
    Without labels to set or --unset it lists the clips' labels (all clips when none is named)."""
    from studio.datasets.labels import format_labels, list_labels, set_labels

    selectors = [a for a in args if "=" not in a]
    assignments = [a for a in args if "=" in a]
    if assignments or unset:
        rows = set_labels(ctx.ws.db, name, selectors, assignments, unset)
    else:
        rows = list_labels(ctx.ws.db, name, selectors)
    emit(rows, as_json, lambda rs: "\n".join(f"{r['clip_id']:>5} {r['name']}: {format_labels(r['labels']) or '-'}"
                                            for r in rs) or "no clips")


@dataset.command("tags")
@click.argument("name")
@click.option("--add", multiple=True, metavar="TAG", help="Declare a tag (thunder, \"rain intensifies\"); repeatable.")
@click.option("--remove", multiple=True, metavar="TAG", help="Withdraw a declared tag; repeatable.")
@json_option
@pass_ctx
def tags_cmd(ctx, name, add, remove, as_json):
    """The dataset's own tags: the transcript linter accepts them, the editor's palette offers them
    and the report counts them. Without --add/--remove it lists them."""
    from studio.datasets import store
    from studio.datasets.tags import bracketed, update_tags

    tags = update_tags(ctx.ws.db, name, add, remove) if add or remove else store.get_dataset(ctx.ws.db, name)["tags"]
    emit(tags, as_json, lambda ts: " ".join(bracketed(ts)) or f"{name} declares no tags")


@dataset.command("lint")
@click.argument("name")
@json_option
@pass_ctx
def lint_cmd(ctx, name, as_json):
    """Linter messages for every transcript of a dataset."""
    from studio.datasets import store
    from studio.datasets.lint import lint

    ds = store.get_dataset(ctx.ws.db, name)
    out = [{"clip_id": c["id"], "name": c["name"], "issues": lint(c["text"], c["asr_text"], ds["allow_free_tags"], ds["tags"])}
           for c in store.list_clips(ctx.ws.db, name)]
    out = [o for o in out if o["issues"]]
    emit(out, as_json, lambda rs: "\n".join(f"clip {o['clip_id']} {o['name']}: {i['severity']}: {i['message']}"
                                            for o in rs for i in o["issues"]) or "no problems")


@dataset.command("prepare")
@click.argument("name")
@click.option("--wait", is_flag=True, help="Block until done (runs the job here when no worker is alive).")
@click.option("--target-lufs", type=float, help="Loudness target (default -20 LUFS).")
@click.option("--peak-dbfs", type=float, help="Peak ceiling (default -1 dBFS).")
@click.option("--keep-dynamics/--normalize-each", default=None, help="One gain for the whole set, or each segment to the target.")
@click.option("--min-segment", "min_segment_s", type=float, help="Shortest segment in seconds (default 5).")
@click.option("--max-segment", "max_segment_s", type=float, help="Longest segment in seconds (default 15).")
@click.option("--min-snr", "min_snr_db", type=float, help="Keep segments whose speech stands at least this over the noise (default 20 dB).")
@click.option("--no-vad", is_flag=True, help="Do not trim silence with silero-vad.")
@json_option
@pass_ctx
def prepare(ctx, name, wait, as_json, no_vad, **settings):
    """Make a new prepared version: 24 kHz mono segments, loudness, VAD, SNR filter."""
    from studio.datasets import store
    from studio.datasets.prepare import resolve_settings
    from workers.dispatch import submit

    ds = store.get_dataset(ctx.ws.db, name)
    overrides = {k: v for k, v in settings.items() if v is not None}
    if no_vad:
        overrides["vad"] = False
    resolve_settings(ds["settings"], overrides)  # bad settings fail here, before a job is queued
    _finish_job(submit(ctx.ws, "prepare", {"dataset": name, "settings": overrides}, wait=wait), as_json)


@dataset.command("transcribe")
@click.argument("name")
@click.option("--wait", is_flag=True, help="Block until done (runs the job here when no worker is alive).")
@click.option("--model-size", default="base", show_default=True,
              help="OpenAI Whisper size (tiny, base, small, medium, large-v3, turbo, ...); "
                   "`test-random` is the offline random-weight test model.")
@click.option("--backend", type=click.Choice(["openai-whisper", "faster-whisper"]), default="openai-whisper", show_default=True)
@click.option("--redo", is_flag=True, help="Also clips that already have ASR text.")
@json_option
@pass_ctx
def transcribe(ctx, name, wait, model_size, backend, redo, as_json):
    """Transcribe clips with Whisper (word timestamps). Human-checked texts are never replaced."""
    from models.asr import MODEL_SIZES
    from studio.datasets import store
    from workers.dispatch import submit

    store.get_dataset(ctx.ws.db, name)
    if model_size not in MODEL_SIZES:
        raise UserError(f"unknown Whisper size {model_size!r}; choose one of {', '.join(MODEL_SIZES)}")
    _finish_job(submit(ctx.ws, "transcribe", {"dataset": name, "model_size": model_size, "backend": backend,
                                              "redo": redo}, wait=wait), as_json)


@dataset.command("show")
@click.argument("name")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False), help="Also write the report's PNG plots here.")
@json_option
@pass_ctx
def show(ctx, name, plots_dir, as_json):
    """The dataset report: duration and clips against the tiers, distributions, markers, warnings."""
    from studio.datasets.report import build_report, plot_pngs, public, summary_markdown

    report = build_report(ctx.ws.db, name)
    out = public(report)
    if plots_dir:
        folder = Path(plots_dir)
        folder.mkdir(parents=True, exist_ok=True)
        out["plots"] = {}
        for key, png in plot_pngs(report).items():
            (folder / f"{name}-{key}.png").write_bytes(png)
            out["plots"][key] = str(folder / f"{name}-{key}.png")
    emit(out, as_json, lambda _: summary_markdown(report).replace("**", ""))


@dataset.command("export")
@click.argument("name")
@click.argument("target_dir", type=click.Path(file_okay=False))
@json_option
@pass_ctx
def export(ctx, name, target_dir, as_json):
    """Export the newest prepared version as an LJSpeech-style folder with a hash manifest."""
    from studio.datasets.export import export_dataset

    out = export_dataset(ctx.ws, name, target_dir)
    emit(out, as_json, lambda o: f"exported {o['segments']} segments ({o['duration_s'] / 60:.1f} min) of "
                                 f"{o['dataset']} v{o['version']} to {o['folder']}")
