"""Dataset: create or pick a dataset, upload recordings and zips (decoded by an import job, never
here), trim clips non-destructively, edit transcripts with Bark's marker palette, run transcribe
and prepare jobs, and read the report. This module assembles the tab from its panels:
dataset_upload (staging uploads, the import job), clip_editor (trim_view's waveform, transcript,
segments_view), labels_view, dataset_jobs (transcribe, prepare) and dataset_plots (the report).
Handlers are thin: they call studio.datasets and turn UserError into gr.Error (page_errors)."""
from __future__ import annotations

import gradio as gr

from studio.datasets import store
from studio.datasets.lint import lint
from studio.ui import clip_editor, dataset_jobs, dataset_plots, dataset_upload, labels_view, live
from studio.ui.errors import page_errors
from studio.workspace import Workspace

TITLE = "Dataset"
CLIP_COLUMNS = ["id", "name", "speaker", "seconds", "trim", "provenance", "transcript", "checked", "lint", "prepared"]
# Shares of the table's width: every column stays in view, "checked" and "lint" included.
CLIP_COLUMN_WIDTHS = ["5%", "14%", "8%", "7%", "8%", "8%", "22%", "7%", "12%", "9%"]
STATE_NOTE = "excluded: left out of prepare, training and the report"  # shown in the "prepared" column


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
        issues = lint(c["text"], c["asr_text"], ds["allow_free_tags"], ds["tags"])
        trim = "" if c["trim_start"] is None and c["trim_end"] is None else \
            f"{c['trim_start'] or 0:.2f}-{c['trim_end'] if c['trim_end'] is not None else c['duration']:.2f}"
        rows.append([c["id"], c["name"], c["speaker"], round(c["trimmed_duration"], 2), trim, c["provenance"],
                     c["text"] or "", "yes" if c["transcript_source"] == "human" else "",
                     "; ".join(i["message"] for i in issues if i["code"] != "empty")[:120],
                     STATE_NOTE if c["state"] == "excluded" else outcomes.get(c["id"], "")])
    return rows


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
    status = dataset_upload.build(ws, ds, job_id, job_seen)
    clips = gr.Dataframe(headers=CLIP_COLUMNS, value=lambda: clip_rows(ws, names[0] if names else None),
                         interactive=False, wrap=True, elem_id="ds-clips", label="Clips (select one to edit)",
                         column_widths=CLIP_COLUMN_WIDTHS)
    editor = clip_editor.build(ws, ds)
    labels_slot = gr.Column()  # filled below, once the refresh handlers exist
    job_status_md = dataset_jobs.build(ws, ds, job_id, job_seen)
    report_outs = dataset_plots.build(ws, ds)
    clip_outs = editor.outs
    change_outs = [clips, *clip_outs, *report_outs]

    def on_dataset(name):
        return [clip_rows(ws, name), None, *clip_editor.clip_view(ws, name, None),
                *dataset_plots.report_outputs(ws, name)]

    ds.input(on_dataset, ds, [clips, current_clip, *clip_outs, *report_outs])

    def on_load():
        names_now = dataset_names(ws)
        first = names_now[0] if names_now else None
        return [gr.Dropdown(choices=names_now, value=first), *on_dataset(first)]

    root = gr.context.Context.root_block
    if root is not None:  # every page load reads the datasets afresh (others may have made some)
        root.load(on_load, None, [ds, clips, current_clip, *clip_outs, *report_outs])

    def on_create(name):
        with page_errors():
            store.create_dataset(ws.db, (name or "").strip())
        return [gr.Dropdown(choices=dataset_names(ws), value=name.strip()), "", *on_dataset(name.strip())]

    create_btn.click(on_create, new_name, [ds, new_name, clips, current_clip, *clip_outs, *report_outs])
    live.keep_current(ds, lambda: live.choices_update(dataset_names(ws)))

    def on_select(name, evt: gr.SelectData):
        row = evt.row_value if evt is not None else None
        clip_id = int(row[0]) if row and str(row[0]).strip() else None
        return [clip_id, *clip_editor.clip_view(ws, name, clip_id)]

    clips.select(on_select, ds, [current_clip, *clip_outs])

    def after_change(name, clip_id):
        return [clip_rows(ws, name), *clip_editor.clip_view(ws, name, clip_id), *dataset_plots.report_outputs(ws, name)]

    with labels_slot:
        labels_view.build(ws, ds, clips, current_clip, editor.palette_version, after_change, change_outs)
    clip_editor.wire(editor, ds, current_clip, after_change, change_outs)

    def poll(name, jid, seen, clip_id):
        if not jid:
            return [gr.skip()] * (4 + len(change_outs))
        text_, state = dataset_jobs.job_status(ws, jid)
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
