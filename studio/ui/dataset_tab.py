"""Dataset: create or pick a dataset, upload recordings and zips (decoded by an import job, never
here), trim clips non-destructively, edit transcripts with Bark's marker palette, run transcribe
and prepare jobs, and read the report. Handlers are thin: they call studio.datasets and turn
UserError into gr.Error. The web process decodes no audio: the waveform is drawn from the
envelope the import job stored."""
from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

import gradio as gr

from models.asr import RANDOM_PRESET
from studio import jobs
from studio.datasets import store
from studio.datasets.lint import KNOWN_TAGS, lint
from studio.errors import UserError
from studio.ui import live
from studio.workspace import Workspace

TITLE = "Dataset"
CLIP_COLUMNS = ["id", "name", "speaker", "seconds", "trim", "provenance", "transcript", "checked", "lint", "prepared"]
# Shares of the table's width: every column stays in view, "checked" and "lint" included.
CLIP_COLUMN_WIDTHS = ["5%", "14%", "8%", "7%", "8%", "8%", "22%", "7%", "12%", "9%"]
STATE_NOTE = "excluded: left out of prepare, training and the report"  # shown in the "prepared" column
HISTORY_COLUMNS = ["#", "when", "by", "before", "after", "undone"]
UPLOAD_TYPES = [".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".zip", ".csv", ".tsv", ".txt", ".lab", ".list"]
# OpenAI's real Whisper sizes, then the random-weight one, labelled as the test model it is.
WHISPER_SIZES = [(s, s) for s in ("tiny", "base", "small", "medium", "large-v3", "turbo")] + [
    (f"{RANDOM_PRESET} (test model: random weights, transcribes nothing)", RANDOM_PRESET)]
DEFAULT_WHISPER = "base"
_SAFE_NAME = re.compile(r"[^\w.\- ]+", re.UNICODE)

# Palette: (label, js action). Tags insert at the caret; ♪ wraps the selection (a sung line);
# CAPITALS upper-cases the selection (emphasis).
PALETTE = [(t, "insert") for t in KNOWN_TAGS] + [("♪ … ♪", "wrap"), ("—", "insert"), ("...", "insert"),
                                                 ("CAPITALS", "upper")]
_JS = """(text) => {{
  const ta = document.querySelector('#ds-text textarea');
  const v = (ta ? ta.value : text) || '';
  const a = ta ? ta.selectionStart : v.length, b = ta ? ta.selectionEnd : v.length;
  const sel = v.slice(a, b), mode = {mode}, tok = {tok};
  let mid;
  if (mode === 'wrap') mid = '♪ ' + (sel || '') + ' ♪';
  else if (mode === 'upper') mid = sel.toUpperCase();
  else {{ const pre = (a > 0 && !/\\s$/.test(v.slice(0, a))) ? ' ' : '';
         const post = (b < v.length && !/^\\s/.test(v.slice(b))) ? ' ' : ''; mid = pre + tok + post; }}
  return v.slice(0, a) + mid + v.slice(b);
}}"""


def _err(exc: UserError) -> gr.Error:
    return gr.Error(str(exc))


# Domain -> widgets ---------------------------------------------------------------------------

def dataset_names(ws: Workspace) -> list[str]:
    return [d["name"] for d in store.list_datasets(ws.db)]


def clip_rows(ws: Workspace, name: str | None) -> list[list]:
    if not name:
        return []
    from studio.datasets.report import prepare_outcomes

    ds = store.get_dataset(ws.db, name)
    outcomes = prepare_outcomes(ws.db, name)  # clip id -> "2/3 kept; dropped #1: snr ..." (latest version)
    rows = []
    for c in store.list_clips(ws.db, name):
        issues = lint(c["text"], c["asr_text"], ds["allow_free_tags"])
        trim = "" if c["trim_start"] is None and c["trim_end"] is None else \
            f"{c['trim_start'] or 0:.2f}-{c['trim_end'] if c['trim_end'] is not None else c['duration']:.2f}"
        rows.append([c["id"], c["name"], c["speaker"], round(c["trimmed_duration"], 2), trim, c["provenance"],
                     c["text"] or "", "yes" if c["transcript_source"] == "human" else "",
                     "; ".join(i["message"] for i in issues if i["code"] != "empty")[:120],
                     STATE_NOTE if c["state"] == "excluded" else outcomes.get(c["id"], "")])
    return rows


def waveform(ws: Workspace, clip: dict | None):
    """The clip's envelope with the kept (trimmed) region shaded."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 1.8), dpi=100)
    ax = fig.add_subplot()
    if clip and clip.get("peaks"):
        import numpy as np

        peaks = np.asarray(clip["peaks"])
        t = np.linspace(0, clip["duration"], peaks.size)
        ax.fill_between(t, -peaks, peaks, color="#4b7bec", linewidth=0)
        start = clip["trim_start"] or 0.0
        end = clip["trim_end"] if clip["trim_end"] is not None else clip["duration"]
        ax.axvspan(0, start, color="#999", alpha=0.5)
        ax.axvspan(end, clip["duration"], color="#999", alpha=0.5)
        ax.set_xlim(0, clip["duration"])
        ax.set_ylim(-1, 1)
        ax.set_xlabel(f"seconds (kept {start:.2f}-{end:.2f})")
    else:
        ax.text(0.5, 0.5, "select a clip", ha="center", va="center", transform=ax.transAxes)
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def history_rows(ws: Workspace, clip_id: int | None) -> list[list]:
    if not clip_id:
        return []
    return [[e["id"], e["at"], e["by"], e["before"] or "", e["after"], "yes" if e["undone"] else ""]
            for e in reversed(store.transcript_history(ws.db, clip_id))]


def lint_markdown(ws: Workspace, name: str | None, clip: dict | None) -> str:
    if not clip:
        return ""
    ds = store.get_dataset(ws.db, name) if name else {"allow_free_tags": False}
    issues = lint(clip.get("text"), clip.get("asr_text"), ds["allow_free_tags"])
    if not issues:
        return "✓ no linter problems"
    return "\n".join(f"- **{i['severity']}**: {i['message']}" for i in issues)


def report_outputs(ws: Workspace, name: str | None):
    from io import BytesIO

    from PIL import Image

    from studio.datasets.report import build_report, plot_pngs, summary_markdown

    if not name:
        return "Pick or create a dataset.", None, None, None
    report = build_report(ws.db, name)
    pngs = plot_pngs(report)
    return (summary_markdown(report), *(Image.open(BytesIO(pngs[k])) for k in ("lengths", "snr", "loudness")))


def stage_uploads(ws: Workspace, files: list) -> tuple[list[str], str]:
    """Copy uploaded files into the workspace (no decoding): audio and lists in one folder, so corpus
    layouts are recognised; each zip on its own. Returns (paths relative to the workspace, staging dir)."""
    from studio.ui.uploads import discard_upload

    token = secrets.token_hex(8)
    root = ws.tmp_dir / "uploads" / token
    (root / "upload").mkdir(parents=True)
    (root / "zips").mkdir()
    paths, has_loose = [], False
    for f in files or []:
        src = Path(f if isinstance(f, str) else getattr(f, "name", f))
        name = _SAFE_NAME.sub("_", src.name).strip(" .") or "upload"
        dest_dir = root / "zips" if name.lower().endswith(".zip") else root / "upload"
        dest = dest_dir / name
        n = 1
        while dest.exists():
            dest = dest_dir / f"{Path(name).stem}-{n}{Path(name).suffix}"
            n += 1
        shutil.copyfile(src, dest)
        discard_upload(src)  # the job reads the staged copy
        if dest_dir.name == "zips":
            paths.append(ws.relative(dest))
        else:
            has_loose = True
    if has_loose:
        paths.insert(0, ws.relative(root / "upload"))
    return paths, ws.relative(root)


def job_status(ws: Workspace, job_id: int | None) -> tuple[str, str | None]:
    if not job_id:
        return "", None
    from studio.ui import job_view

    j = job_view.load_job(ws.db, job_id)  # the row, with a warning while no live worker can take it
    if j is None:
        return "", None
    text = job_view.summary_md(j)  # phase, progress, ETA while it runs; how it ended after
    result = j.get("result") or {}
    if j["kind"] == "import" and result:
        text += f"\n\nimported {len(result.get('imported', []))}, duplicates {len(result.get('duplicates', []))}"
        text += "".join(f"\n- refused **{e['file']}**: {e['error']}" for e in result.get("errors", []))
        text += "".join(f"\n- skipped **{e['file']}**: {e['reason']}" for e in result.get("skipped", []))
    return text, j["status"]


# The tab -----------------------------------------------------------------------------------

def build(ws: Workspace) -> None:
    current_clip = gr.State(None)  # selected clip id (per user)
    job_id = gr.State(None)  # the job this user started last
    job_seen = gr.State(None)  # its last status seen, so the table refreshes once when it ends

    with gr.Row():
        names = dataset_names(ws)
        ds = gr.Dropdown(choices=names, value=names[0] if names else None, label="Dataset", elem_id="ds-select",
                         allow_custom_value=False, scale=3)
        new_name = gr.Textbox(label="New dataset name", elem_id="ds-new-name", scale=2)
        create_btn = gr.Button("Create", elem_id="ds-create", scale=1)

    with gr.Accordion("Upload recordings (many files or zips; LJSpeech, wav|text, VCTK, Common Voice layouts)", open=True):
        upload = gr.File(file_count="multiple", file_types=UPLOAD_TYPES, type="filepath", label="Audio files or zips",
                         elem_id="ds-upload")
        with gr.Row():
            source = gr.Textbox(label="Source", placeholder="where it came from", elem_id="ds-source")
            licence = gr.Textbox(label="Licence / consent note", elem_id="ds-licence")
            speaker = gr.Textbox(label="Speaker label", elem_id="ds-speaker")
            provenance = gr.Radio(["human", "ai"], value="human", label="Provenance (human recording or AI-generated)",
                                  elem_id="ds-provenance")
        import_btn = gr.Button("Import", variant="primary", elem_id="ds-import")
    status = gr.Markdown(elem_id="ds-status")

    clips = gr.Dataframe(headers=CLIP_COLUMNS, value=lambda: clip_rows(ws, names[0] if names else None),
                         interactive=False, wrap=True, elem_id="ds-clips", label="Clips (select one to edit)",
                         column_widths=CLIP_COLUMN_WIDTHS)

    with gr.Group():
        clip_title = gr.Markdown("Select a clip in the table.", elem_id="ds-clip-title")
        with gr.Row():
            audio = gr.Audio(type="filepath", interactive=False, label="Original (playback)", elem_id="ds-audio")
            wave = gr.Plot(label="Waveform (grey: trimmed away)", elem_id="ds-wave")
        with gr.Row():
            trim_start = gr.Number(label="Keep from (s)", elem_id="ds-trim-start", minimum=0)
            trim_end = gr.Number(label="Keep to (s)", elem_id="ds-trim-end", minimum=0)
            trim_btn = gr.Button("Apply trim", elem_id="ds-trim-apply")
            untrim_btn = gr.Button("Undo trim", elem_id="ds-trim-undo")
        with gr.Row():
            exclude_btn = gr.Button("Exclude clip", size="sm", elem_id="ds-exclude")
            include_btn = gr.Button("Include clip", size="sm", elem_id="ds-include")
            delete_btn = gr.Button("Delete clip", size="sm", variant="stop", elem_id="ds-delete")
            undelete_btn = gr.Button("Undo delete", size="sm", elem_id="ds-undelete")
        text = gr.Textbox(label="Transcript (Tab reaches the marker buttons and Save; each button works with Enter)", lines=3,
                          elem_id="ds-text", max_lines=8)
        with gr.Row(elem_id="ds-palette"):
            palette_buttons = []
            for label, mode in PALETTE:
                b = gr.Button(label, size="sm", elem_classes=["ds-marker"], min_width=60)
                token = "♪" if mode == "wrap" else label
                b.click(None, inputs=text, outputs=text, js=_JS.format(mode=repr(mode), tok=repr(token)))
                palette_buttons.append(b)
            free_tag = gr.Textbox(placeholder="[free tag]", show_label=False, scale=1, elem_id="ds-free-tag", min_width=120)
            free_btn = gr.Button("Insert tag", size="sm", elem_id="ds-free-insert", min_width=60)
        with gr.Row():
            save_btn = gr.Button("Save transcript", variant="primary", elem_id="ds-text-save")
            checked_btn = gr.Button("Mark checked", elem_id="ds-text-checked")
            undo_btn = gr.Button("Undo last edit", elem_id="ds-text-undo")
        lint_md = gr.Markdown(elem_id="ds-lint")
        with gr.Accordion("Edit history", open=False):
            history = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, wrap=True, elem_id="ds-history")

    with gr.Accordion("Transcribe and prepare (jobs)", open=False):
        with gr.Row():
            model_size = gr.Dropdown(WHISPER_SIZES, value=DEFAULT_WHISPER, label="Whisper size",
                                     elem_id="ds-whisper-size")
            redo = gr.Checkbox(label="Redo clips already transcribed")
            transcribe_btn = gr.Button("Transcribe", elem_id="ds-transcribe")
        with gr.Row():
            target = gr.Number(value=-20.0, label="Loudness target (LUFS)")
            peak = gr.Number(value=-1.0, label="Peak ceiling (dBFS)")
            keep_dyn = gr.Checkbox(label="Keep dynamics (whisper/ASMR)")
            min_seg = gr.Number(value=5.0, label="Min segment (s)")
            max_seg = gr.Number(value=15.0, label="Max segment (s)")
            min_snr = gr.Number(value=20.0, label="Min SNR (dB)", elem_id="ds-min-snr")
            prepare_btn = gr.Button("Prepare", variant="primary", elem_id="ds-prepare")
        job_status_md = gr.Markdown(elem_id="ds-job-status")  # beside the buttons that start these jobs
        live.job_picker(ws.db, ("import", "transcribe", "prepare"), job_id, label="Dataset jobs", elem_id="ds-job")

    with gr.Group():
        with gr.Row():
            gr.Markdown("### Report")
            report_btn = gr.Button("Refresh report", size="sm", elem_id="ds-report-refresh", scale=0)
        report_md = gr.Markdown(elem_id="ds-report")
        with gr.Row():
            plot_len = gr.Image(label="Lengths", type="pil", interactive=False, elem_id="ds-plot-lengths")
            plot_snr = gr.Image(label="SNR", type="pil", interactive=False, elem_id="ds-plot-snr")
            plot_lufs = gr.Image(label="Loudness", type="pil", interactive=False, elem_id="ds-plot-lufs")
    report_outs = [report_md, plot_len, plot_snr, plot_lufs]
    clip_outs = [clip_title, audio, wave, trim_start, trim_end, text, lint_md, history]

    # Handlers ---------------------------------------------------------------------------
    def clip_view(name, clip_id):
        if not clip_id:
            return ["Select a clip in the table.", None, waveform(ws, None), None, None, "", "", []]
        try:
            c = store.get_clip(ws.db, clip_id)
        except UserError as exc:
            raise _err(exc)
        start = c["trim_start"] or 0.0
        end = c["trim_end"] if c["trim_end"] is not None else c["duration"]
        title = (f"**Clip {c['id']}**: {c['name']} · {c['duration']:.2f} s · {c['sample_rate']} Hz · "
                 f"{c['channels']} ch · {c['provenance']}" + (" · trimmed" if c["can_undo_trim"] or c["trim_start"] or c["trim_end"] else "")
                 + {"excluded": " · **excluded** (Include clip takes it back)",
                    "deleted": " · **deleted** (Undo delete restores it)"}.get(c["state"], ""))
        return [title, str(ws.root / c["blob"]), waveform(ws, c), round(start, 3), round(end, 3), c["text"] or "",
                lint_markdown(ws, name, c), history_rows(ws, clip_id)]

    def on_dataset(name):
        return [clip_rows(ws, name), None, *clip_view(name, None), *report_outputs(ws, name)]

    ds.input(on_dataset, ds, [clips, current_clip, *clip_outs, *report_outs])

    def on_load():
        names_now = dataset_names(ws)
        first = names_now[0] if names_now else None
        return [gr.Dropdown(choices=names_now, value=first), *on_dataset(first)]

    root = gr.context.Context.root_block
    if root is not None:  # every page load reads the datasets afresh (others may have made some)
        root.load(on_load, None, [ds, clips, current_clip, *clip_outs, *report_outs])

    def on_create(name):
        try:
            store.create_dataset(ws.db, (name or "").strip())
        except UserError as exc:
            raise _err(exc)
        return [gr.Dropdown(choices=dataset_names(ws), value=name.strip()), "", *on_dataset(name.strip())]

    create_btn.click(on_create, new_name, [ds, new_name, clips, current_clip, *clip_outs, *report_outs])
    live.keep_current(ds, lambda: live.choices_update(dataset_names(ws)))

    def on_import(name, files, src, lic, spk, prov):
        from workers.dispatch import submit

        if not name:
            raise gr.Error("pick or create a dataset first")
        if not files:
            raise gr.Error("choose files or zips to upload first")
        from studio.ui.uploads import uploaded_files

        files = uploaded_files(files)  # never a server path sent in place of an upload
        try:
            paths, staged_root = stage_uploads(ws, files)
            labels = {p: ("upload" if p.endswith("/upload") else Path(p).name) for p in paths}
            job = submit(ws, "import", {"dataset": name, "paths": paths, "labels": labels, "staged": True,
                                        "cleanup": True, "source": src or "", "licence": lic or "",
                                        "speaker": spk or "", "provenance": prov or "human"})
        except UserError as exc:
            raise _err(exc)
        return job["id"], None, f"Import queued as job {job['id']}…", None

    import_btn.click(on_import, [ds, upload, source, licence, speaker, provenance], [job_id, job_seen, status, upload])

    def on_select(name, evt: gr.SelectData):
        row = evt.row_value if evt is not None else None
        clip_id = int(row[0]) if row and str(row[0]).strip() else None
        return [clip_id, *clip_view(name, clip_id)]

    clips.select(on_select, ds, [current_clip, *clip_outs])

    def after_change(name, clip_id):
        return [clip_rows(ws, name), *clip_view(name, clip_id), *report_outputs(ws, name)]

    change_outs = [clips, *clip_outs, *report_outs]

    def guarded(action):
        def run(name, clip_id, *args):
            if not clip_id:
                raise gr.Error("select a clip first")
            try:
                action(clip_id, *args)
            except UserError as exc:
                raise _err(exc)
            return after_change(name, clip_id)
        return run

    trim_btn.click(guarded(lambda cid, a, b: store.set_trim(ws.db, cid, a, b)), [ds, current_clip, trim_start, trim_end],
                   change_outs)
    untrim_btn.click(guarded(lambda cid: store.undo_trim(ws.db, cid)), [ds, current_clip], change_outs)
    save = guarded(lambda cid, t: store.set_transcript(ws.db, cid, t or ""))
    save_btn.click(save, [ds, current_clip, text], change_outs)
    exclude_btn.click(guarded(lambda cid: store.exclude_clip(ws.db, cid)), [ds, current_clip], change_outs)
    include_btn.click(guarded(lambda cid: store.exclude_clip(ws.db, cid, undo=True)), [ds, current_clip], change_outs)
    delete_btn.click(guarded(lambda cid: store.delete_clip(ws.db, cid)), [ds, current_clip], change_outs)
    undelete_btn.click(guarded(lambda cid: store.delete_clip(ws.db, cid, undo=True)), [ds, current_clip], change_outs)
    checked_btn.click(guarded(lambda cid: store.mark_checked(ws.db, cid)), [ds, current_clip], change_outs)
    undo_btn.click(guarded(lambda cid: store.undo_transcript(ws.db, cid)), [ds, current_clip], change_outs)

    def insert_free(t, tag):
        tag = (tag or "").strip().strip("[]")
        if not tag:
            raise gr.Error("type a tag, e.g. thunder")
        return f"{(t or '').rstrip()} [{tag}]".strip(), ""

    free_btn.click(insert_free, [text, free_tag], [text, free_tag])

    def on_transcribe(name, size, redo_all):
        from workers.dispatch import submit

        if not name:
            raise gr.Error("pick a dataset first")
        try:
            job = submit(ws, "transcribe", {"dataset": name, "model_size": size, "redo": bool(redo_all)})
        except UserError as exc:
            raise _err(exc)
        return job["id"], None, f"Transcription queued as job {job['id']}…"

    transcribe_btn.click(on_transcribe, [ds, model_size, redo], [job_id, job_seen, job_status_md])

    def on_prepare(name, tl, pk, kd, mn, mx, snr):
        from studio.datasets.prepare import resolve_settings
        from workers.dispatch import submit

        if not name:
            raise gr.Error("pick a dataset first")
        settings = {"target_lufs": tl, "peak_dbfs": pk, "keep_dynamics": bool(kd), "min_segment_s": mn,
                    "max_segment_s": mx, "min_snr_db": snr}
        try:
            resolve_settings(store.get_dataset(ws.db, name)["settings"], settings)
            job = submit(ws, "prepare", {"dataset": name, "settings": settings})
        except UserError as exc:
            raise _err(exc)
        return job["id"], None, f"Prepare queued as job {job['id']}…"

    prepare_btn.click(on_prepare, [ds, target, peak, keep_dyn, min_seg, max_seg, min_snr],
                      [job_id, job_seen, job_status_md])
    report_btn.click(lambda name: report_outputs(ws, name), ds, report_outs)

    def poll(name, jid, seen, clip_id):
        if not jid:
            return [gr.skip()] * (4 + len(change_outs))
        text_, state = job_status(ws, jid)
        if state in ("queued", "running"):  # every tick: its progress and phase move while it runs
            return [text_, text_, state, gr.skip(), *([gr.skip()] * len(change_outs))]
        if state == seen:
            return [gr.skip()] * (4 + len(change_outs))
        return [text_, text_, state, gr.skip(), *after_change(name, clip_id)]

    gr.Timer(1.0).tick(poll, [ds, job_id, job_seen, current_clip],
                       [status, job_status_md, job_seen, job_id, *change_outs])


if __name__ == "__main__":
    with gr.Blocks() as demo:
        build(Workspace.resolve())
    demo.launch(ssr_mode=False)
