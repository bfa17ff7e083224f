"""Voices: make a voice prompt from a dataset clip or an uploaded recording (the whole clip or a
5-12 s span of it), listen to the span, name it, delete it. Making one is a `voice` job (it loads
the token models); this tab only submits it and watches its row."""
from __future__ import annotations

import gradio as gr
import numpy as np

from studio import voices as V
from studio.errors import UserError
from studio.training_presets import BASE_MODELS
from studio.ui import job_view, live
from studio.workspace import Workspace

TITLE = "Voices"
VOICE_COLUMNS = ["name", "seconds", "model", "source", "span", "created_at"]


def clip_choices(ws: Workspace) -> list[tuple[str, str]]:
    """(label, clip id) for every clip of every dataset."""
    from studio.datasets.store import list_clips, list_datasets

    out = []
    for d in list_datasets(ws.db):
        for c in list_clips(ws.db, d["name"]):
            out.append((f"{d['name']} / {c['name']} ({c['duration']:.1f} s)", str(c["id"])))
    return out


def source_path(ws: Workspace, clip: str | None, upload: str | None) -> str:
    """What the voice job reads: a clip id, or the upload stored in the workspace by content hash."""
    if upload:
        from pathlib import Path

        from studio.audio.decode import AudioError, decode_file, display_name

        # Check here, while the upload still has its own name: the job reads the content-hash copy,
        # and an error naming that hash would not tell the user which file was wrong.
        try:
            decode_file(upload, label=display_name(upload))
        except AudioError as exc:
            raise gr.Error(str(exc)) from None
        _, stored = ws.store_file(Path(upload))
        return str(stored)
    if clip:
        return str(clip)
    raise gr.Error("choose a dataset clip or upload a recording")


def _audio_file(ws: Workspace, source: str):
    from pathlib import Path

    if str(source).isdigit():
        from studio.datasets.store import get_clip

        return ws.root / get_clip(ws.db, int(source))["blob"]
    path = Path(source)
    return path if path.is_absolute() else ws.root / path


def span_audio(ws: Workspace, source: str, start, end):
    """(sample_rate, samples) of a span of a source, read with soundfile (no model needed)."""
    import soundfile as sf

    path = _audio_file(ws, source)
    try:
        info = sf.info(str(path))
        a = int(float(start or 0) * info.samplerate)
        b = int(float(end) * info.samplerate) if end not in (None, "", 0) else info.frames
        data, sr = sf.read(str(path), start=max(0, a), stop=min(info.frames, max(a + 1, b)), dtype="float32")
    except (OSError, RuntimeError, ValueError) as exc:
        raise gr.Error(f"{path.name}: cannot read audio ({exc})") from None
    if data.ndim > 1:
        data = data.mean(axis=1)
    return sr, np.asarray(data, dtype=np.float32)


def voice_rows(ws: Workspace) -> list[list]:
    return [[v["name"], v["seconds"], v["model"], _source_name(ws, v), f"{v['span_start']:.2f}-{v['span_end']:.2f} s",
             v["created_at"]] for v in V.list_voices(ws)]


def _source_name(ws: Workspace, voice: dict) -> str:
    """What the user calls the voice's source: the clip's name, not where its bytes are stored."""
    from pathlib import Path

    from studio.datasets.store import get_clip

    if voice["source_clip_id"]:
        try:
            return get_clip(ws.db, voice["source_clip_id"])["name"]
        except UserError:
            return f"clip {voice['source_clip_id']} (deleted)"
    return Path(voice["source_path"]).name


def check_span(ws: Workspace, clip, upload, start, end) -> tuple[float, float]:
    """The 5-12 s rule, checked in the page before a job is queued (the job checks it again).
    End 0 or empty: to the end of the recording, at most 12 s after the start."""
    from models.constants import VOICE_MAX_SECONDS, VOICE_MIN_SECONDS

    path = _audio_file(ws, str(clip)) if not upload else upload
    label = _display(ws, clip, upload)
    import soundfile as sf

    try:
        duration = sf.info(str(path)).duration
    except (OSError, RuntimeError) as exc:
        raise UserError(f"{label}: cannot read audio ({exc})".splitlines()[0]) from None
    a = float(start or 0)
    b = float(end) if end not in (None, "", 0) else min(duration, a + VOICE_MAX_SECONDS)
    if a < 0 or b > duration + 1e-6 or b <= a:
        raise UserError(f"{label}: span {a:.2f}-{b:.2f} s is outside the recording (0-{duration:.2f} s)")
    if not VOICE_MIN_SECONDS - 1e-6 <= b - a <= VOICE_MAX_SECONDS + 1e-6:
        raise UserError(f"{label}: a voice prompt needs {VOICE_MIN_SECONDS:g}-{VOICE_MAX_SECONDS:g} s of speech, "
                        f"the span is {b - a:.2f} s")
    return a, b


def _display(ws: Workspace, clip, upload) -> str:
    from pathlib import Path

    if upload:
        from studio.audio.decode import display_name

        return display_name(upload)
    from studio.datasets.store import get_clip

    try:
        return get_clip(ws.db, int(clip))["name"]
    except (UserError, ValueError, TypeError):
        return str(Path(str(clip)).name)


def make_voice(ws: Workspace, name: str, clip, upload, start, end, model: str) -> int:
    from workers.dispatch import submit

    try:
        V.check_name(name)
        if not clip and not upload:
            raise UserError("choose a dataset clip or upload a recording")
        source = source_path(ws, clip, upload)  # an upload that is not audio is named first
        span_start, span_end = check_span(ws, clip, upload, start, end)
        params = {"name": name.strip(), "clip": source, "model": model or "tiny",
                  "start": span_start, "end": span_end, "label": _display(ws, clip, upload)}
        return submit(ws, "voice", params)["id"]
    except UserError as exc:
        raise gr.Error(str(exc)) from None


def listen_voice(ws: Workspace, name: str):
    """The span a saved voice was made from (a prompt is codes; this is the audio they encode)."""
    try:
        v = V.get_voice(ws, name)
    except UserError as exc:
        raise gr.Error(str(exc)) from None
    return span_audio(ws, str(v["source_clip_id"]) if v["source_clip_id"] else v["source_path"],
                      v["span_start"], v["span_end"])


def delete_voice(ws: Workspace, name: str) -> None:
    try:
        V.delete_voice(ws, name)
    except UserError as exc:
        raise gr.Error(str(exc)) from None


def build(ws: Workspace) -> None:
    job_state = gr.State(None)
    with gr.Row():
        with gr.Column():
            gr.Markdown("### Make a voice prompt")
            clip = gr.Dropdown(label="Dataset clip", choices=clip_choices(ws), value=None, elem_id="voices-clip")
            upload = gr.Audio(label="…or a recording", type="filepath", sources=["upload", "microphone"],
                              elem_id="voices-upload")
            with gr.Row():
                start = gr.Number(label="Span start (s)", value=0, elem_id="voices-start")
                end = gr.Number(label="Span end (s, 0 = to the end, at most 12 s)", value=0, elem_id="voices-end")
            preview_btn = gr.Button("Listen to the span", elem_id="voices-preview")
            preview = gr.Audio(label="Span", interactive=False, elem_id="voices-preview-audio")
            name = gr.Textbox(label="Voice name", elem_id="voices-name")
            model = gr.Dropdown(label="Token models", choices=BASE_MODELS, value=BASE_MODELS[0][1],
                                info="Use the model family you will generate with.", elem_id="voices-model")
            make_btn = gr.Button("Make voice", variant="primary", elem_id="voices-make")
            status = gr.Markdown(elem_id="voices-status")
        with gr.Column():
            gr.Markdown("### Voices")
            table = gr.Dataframe(headers=VOICE_COLUMNS, value=lambda: voice_rows(ws), interactive=False,
                                 elem_id="voices-table")
            chosen = gr.Textbox(label="Voice", elem_id="voices-chosen")
            with gr.Row():
                listen_btn = gr.Button("Listen", elem_id="voices-listen")
                delete_btn = gr.Button("Delete", variant="stop", elem_id="voices-delete")
            listen = gr.Audio(label="The span this voice was made from", interactive=False, elem_id="voices-audio")

    live.keep_current(clip, lambda: live.choices_update(clip_choices(ws)))

    def on_preview(c, u, a, b):
        if u:
            return span_audio(ws, u, a, b)
        if not c:
            raise gr.Error("choose a dataset clip or upload a recording")
        return span_audio(ws, c, a, b)

    preview_btn.click(on_preview, inputs=[clip, upload, start, end], outputs=preview)
    make_btn.click(lambda n, c, u, a, b, m: make_voice(ws, n, c, u, a, b, m),
                   inputs=[name, clip, upload, start, end, model], outputs=job_state)

    def poll(job_id):
        job = job_view.load_job(ws.db, job_id)
        return (job_view.summary_md(job) if job else ""), voice_rows(ws)

    gr.Timer(2.0).tick(poll, inputs=job_state, outputs=[status, table])

    def pick(evt: gr.SelectData):
        return evt.row_value[0] if evt.row_value else ""

    table.select(pick, outputs=chosen)
    listen_btn.click(lambda n: listen_voice(ws, n), inputs=chosen, outputs=listen)
    delete_btn.click(lambda n: delete_voice(ws, n), inputs=chosen).then(lambda: (voice_rows(ws), ""),
                                                                          outputs=[table, chosen])


if __name__ == "__main__":
    with gr.Blocks() as demo:
        build(Workspace.resolve())
    demo.launch()
