"""The Dataset tab's job panel: transcribe (Whisper) and prepare, with the prepare form's fields
and defaults taken from studio.datasets.prepare.DEFAULT_SETTINGS, and the status line of the job
a user started last (import, transcribe or prepare)."""
from __future__ import annotations

import gradio as gr

from models.asr import RANDOM_PRESET
from studio.datasets import store
from studio.datasets.prepare import DEFAULT_SETTINGS, resolve_settings
from studio.ui import live
from studio.ui.dataset_upload import import_summary
from studio.ui.errors import page_errors
from studio.workspace import Workspace

# OpenAI's real Whisper sizes, then the random-weight one, labelled as the test model it is.
WHISPER_SIZES = [(s, s) for s in ("tiny", "base", "small", "medium", "large-v3", "turbo")] + [
    (f"{RANDOM_PRESET} (test model: random weights, transcribes nothing)", RANDOM_PRESET)]
DEFAULT_WHISPER = "base"
# The prepare settings the form offers: (setting, label, element id); the rest keep their defaults.
PREPARE_FIELDS = [
    ("target_lufs", "Loudness target (LUFS)", None),
    ("peak_dbfs", "Peak ceiling (dBFS)", None),
    ("keep_dynamics", "Keep dynamics (whisper/ASMR)", None),
    ("min_segment_s", "Min segment (s)", None),
    ("max_segment_s", "Max segment (s)", None),
    ("min_snr_db", "Min SNR (dB)", "ds-min-snr"),
]


def job_status(ws: Workspace, job_id: int | None) -> tuple[str, str | None]:
    """(markdown, status) of a job: phase, progress and ETA while it runs; how it ended after."""
    if not job_id:
        return "", None
    from studio.ui import job_view

    j = job_view.load_job(ws.db, job_id)  # the row, with a warning while no live worker can take it
    if j is None:
        return "", None
    text = job_view.summary_md(j)
    result = j.get("result") or {}
    if j["kind"] == "import" and result:
        text += import_summary(result)
    return text, j["status"]


def _setting_input(key: str, label: str, elem_id: str | None):
    default = DEFAULT_SETTINGS[key]
    if isinstance(default, bool):
        return gr.Checkbox(value=default, label=label, elem_id=elem_id)
    return gr.Number(value=default, label=label, elem_id=elem_id)


def build(ws: Workspace, ds: gr.Dropdown, job_id: gr.State, job_seen: gr.State) -> gr.Markdown:
    """The transcribe and prepare panel; returns the status line beside its buttons."""
    with gr.Accordion("Transcribe and prepare (jobs)", open=False):
        with gr.Row():
            model_size = gr.Dropdown(WHISPER_SIZES, value=DEFAULT_WHISPER, label="Whisper size",
                                     elem_id="ds-whisper-size")
            redo = gr.Checkbox(label="Redo clips already transcribed")
            transcribe_btn = gr.Button("Transcribe", elem_id="ds-transcribe")
        with gr.Row():
            settings_inputs = [_setting_input(*field) for field in PREPARE_FIELDS]
            prepare_btn = gr.Button("Prepare", variant="primary", elem_id="ds-prepare")
        job_status_md = gr.Markdown(elem_id="ds-job-status")  # beside the buttons that start these jobs
        live.job_picker(ws.db, ("import", "transcribe", "prepare"), job_id, label="Dataset jobs", elem_id="ds-job")

    def on_transcribe(name, size, redo_all):
        from workers.dispatch import submit

        if not name:
            raise gr.Error("pick a dataset first")
        with page_errors():
            job = submit(ws, "transcribe", {"dataset": name, "model_size": size, "redo": bool(redo_all)})
        return job["id"], None, f"Transcription queued as job {job['id']}…"

    transcribe_btn.click(on_transcribe, [ds, model_size, redo], [job_id, job_seen, job_status_md])

    def on_prepare(name, *values):
        from workers.dispatch import submit

        if not name:
            raise gr.Error("pick a dataset first")
        settings = {key: bool(v) if isinstance(DEFAULT_SETTINGS[key], bool) else v
                    for (key, _, _), v in zip(PREPARE_FIELDS, values)}
        with page_errors():
            resolve_settings(store.get_dataset(ws.db, name)["settings"], settings)
            job = submit(ws, "prepare", {"dataset": name, "settings": settings})
        return job["id"], None, f"Prepare queued as job {job['id']}…"

    prepare_btn.click(on_prepare, [ds, *settings_inputs], [job_id, job_seen, job_status_md])
    return job_status_md
