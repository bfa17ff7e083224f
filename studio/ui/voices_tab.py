"""Voices: make a voice prompt from a dataset clip or an uploaded recording (the whole clip or a
5-12 s span of it), listen to the span, name it, delete it. Making one is a `voice` job (it loads
the token models); this tab only submits it and watches its row. Bark's built-in voices are listed
beside the user's own, each with a sample (a `generate` job)."""
from __future__ import annotations

import gradio as gr
import numpy as np

from studio import voices as V
from studio.errors import UserError
from studio.inference import DEFAULT_MODEL
from studio.training_presets import BASE_MODELS
from studio.ui import builtin_voices, job_view, live
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
    except (OSError, RuntimeError, ValueError):
        raise gr.Error(f"{path.name}: cannot read audio") from None  # the library's text names server paths
    if data.ndim > 1:
        data = data.mean(axis=1)
    return sr, np.asarray(data, dtype=np.float32)


def voice_rows(ws: Workspace) -> list[list]:
    return [[v["name"], v["seconds"], v["model"], v["source_path"], f"{v['span_start']:.2f}-{v['span_end']:.2f} s",
             v["created_at"]] for v in V.list_voices(ws)]


def make_voice(ws: Workspace, name: str, clip, upload, start, end, model: str) -> int:
    from workers.dispatch import submit

    try:
        V.check_name(name)
        params = {"name": name.strip(), "clip": source_path(ws, clip, upload), "model": model or DEFAULT_MODEL}
        if start not in (None, ""):
            params["start"] = float(start)
        if end not in (None, "", 0):
            params["end"] = float(end)
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


def _builtin_section():
    """Bark's built-in voices, beside the user's own: the list (or what to download), a sample."""
    gr.Markdown("### Bark's built-in voices")
    status = gr.Markdown(lambda: builtin_voices.status_md(DEFAULT_MODEL), elem_id="voices-builtin-status")
    pick = gr.Dropdown(label="Built-in voice", choices=builtin_voices.choices(DEFAULT_MODEL), value=None,
                       elem_id="voices-builtin")
    sample_btn = gr.Button("Sample", elem_id="voices-builtin-sample")
    sample_status = gr.Markdown(elem_id="voices-builtin-job")
    audio = gr.Audio(label="Sample", interactive=False, elem_id="voices-builtin-audio")
    return status, pick, sample_btn, sample_status, audio


def _wire_builtin(ws: Workspace, model, status, pick, sample_btn, sample_status, audio) -> None:
    """The list follows the model picker; a sample is a `generate` job, played once it has ended."""
    sample_job, shown = gr.State(None), gr.State(None)
    relist = lambda m: (builtin_voices.status_md(m), gr.update(choices=builtin_voices.choices(m)))  # noqa: E731
    model.change(relist, inputs=model, outputs=[status, pick])
    pick.focus(lambda m: gr.update(choices=builtin_voices.choices(m)), inputs=model, outputs=pick)

    def on_sample(name, m):
        try:
            return builtin_voices.sample(ws, name, m)
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    sample_btn.click(on_sample, inputs=[pick, model], outputs=sample_job)

    def poll(job_id, seen):
        job = job_view.load_job(ws.db, job_id)
        wav = builtin_voices.sample_file(job)
        if wav is None or seen == job_id:  # nothing new: leave a playing sample alone
            return (job_view.summary_md(job) if job else ""), gr.update(), seen
        return job_view.summary_md(job), str(wav), job_id

    gr.Timer(2.0).tick(poll, inputs=[sample_job, shown], outputs=[sample_status, audio, shown])


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
            model = gr.Dropdown(label="Token models", choices=BASE_MODELS, value=DEFAULT_MODEL,
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
            builtin_ui = _builtin_section()

    live.keep_current(clip, lambda: live.choices_update(clip_choices(ws)))

    from studio.ui.uploads import uploaded_file

    def on_preview(c, u, a, b):
        if u:
            return span_audio(ws, uploaded_file(u), a, b)
        if not c:
            raise gr.Error("choose a dataset clip or upload a recording")
        return span_audio(ws, c, a, b)

    preview_btn.click(on_preview, inputs=[clip, upload, start, end], outputs=preview)
    make_btn.click(lambda n, c, u, a, b, m: make_voice(ws, n, c, u and uploaded_file(u), a, b, m),
                   inputs=[name, clip, upload, start, end, model], outputs=job_state)

    def poll(job_id):
        job = job_view.load_job(ws.db, job_id)
        return (job_view.summary_md(job) if job else ""), voice_rows(ws)

    gr.Timer(2.0).tick(poll, inputs=job_state, outputs=[status, table])

    def pick(evt: gr.SelectData):
        return evt.row_value[0] if evt.row_value else ""

    table.select(pick, outputs=chosen)
    _wire_builtin(ws, model, *builtin_ui)
    listen_btn.click(lambda n: listen_voice(ws, n), inputs=chosen, outputs=listen)
    delete_btn.click(lambda n: delete_voice(ws, n), inputs=chosen).then(lambda: (voice_rows(ws), ""),
                                                                          outputs=[table, chosen])


if __name__ == "__main__":
    with gr.Blocks() as demo:
        build(Workspace.resolve())
    demo.launch()
