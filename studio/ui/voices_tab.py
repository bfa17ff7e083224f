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
from studio.ui import builtin_voices, job_view, live, voice_library
from studio.ui.errors import page_errors
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


def source_params(ws: Workspace, clip: str | None, upload: str | None) -> dict:
    """What the voice job reads: a clip id, or the upload staged in the workspace undecoded (the
    job decodes it, never this web process; its errors name `upload_name`, the user's file)."""
    if upload:
        from studio.ui.uploads import discard_upload

        staged, name = V.stage_upload(ws, upload)
        discard_upload(upload)
        return {"clip": staged, "upload_name": name}
    if clip:
        return {"clip": str(clip)}
    raise gr.Error("choose a dataset clip or upload a recording")


def _audio_file(ws: Workspace, source: str):
    from pathlib import Path

    if str(source).isdigit():
        from studio.datasets.store import get_clip

        return ws.root / get_clip(ws.db, int(source))["blob"]
    path = Path(source)
    return path if path.is_absolute() else ws.root / path


PREVIEW_MAX_RATE = 192_000
PREVIEW_MAX_CHANNELS = 8


def span_audio(ws: Workspace, source: str, start, end):
    """(sample_rate, samples) of a span of a source, read with soundfile (no model needed).

    Only a voice-sized span is ever read (at most PREVIEW_MAX_SECONDS, at sane rates and channel
    counts), so a long or forged file cannot make this web process hold more than a few MB."""
    import soundfile as sf

    from models.constants import VOICE_MAX_SECONDS

    path = _audio_file(ws, source)
    try:
        info = sf.info(str(path))
    except (OSError, RuntimeError, ValueError):
        raise gr.Error(f"{path.name}: cannot read audio") from None  # the library's text names server paths
    if info.samplerate > PREVIEW_MAX_RATE or info.channels > PREVIEW_MAX_CHANNELS:
        raise gr.Error(f"{path.name}: {info.samplerate} Hz x {info.channels} channels is not a recording "
                       "this preview plays")
    try:
        a = int(float(start or 0) * info.samplerate)
        b = int(float(end) * info.samplerate) if end not in (None, "", 0) else info.frames
        b = min(b, a + int((VOICE_MAX_SECONDS + 1) * info.samplerate))  # a voice span, never the whole file
        data, sr = sf.read(str(path), start=max(0, a), stop=min(info.frames, max(a + 1, b)), dtype="float32")
    except (OSError, RuntimeError, ValueError):
        raise gr.Error(f"{path.name}: cannot read audio") from None  # the library's text names server paths
    if data.ndim > 1:
        data = data.mean(axis=1)
    return sr, np.asarray(data, dtype=np.float32)


def voice_rows(ws: Workspace) -> list[list]:
    return [[v["name"], v["seconds"], v["model"], _source_name(ws, v), f"{v['span_start']:.2f}-{v['span_end']:.2f} s",
             v["created_at"]] for v in V.list_voices(ws)]


def _source_name(ws: Workspace, voice: dict) -> str:
    """What the user calls the voice's source: the clip's name, not where its bytes are stored."""
    from pathlib import Path

    from studio import jobs
    from studio.datasets.store import get_clip

    if voice["source_clip_id"]:
        try:
            return get_clip(ws.db, voice["source_clip_id"])["name"]
        except UserError:
            return f"clip {voice['source_clip_id']} (deleted)"
    if voice["job_id"]:  # an upload is stored by content hash; its job kept the user's file name
        try:
            upload_name = (jobs.get_job(ws.db, voice["job_id"])["params"] or {}).get("upload_name")
        except jobs.NotFound:
            upload_name = None
        if upload_name:
            return upload_name
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
    check_span_length(label, a, b)
    return a, b


def check_span_length(label: str, a: float, b: float) -> None:
    """The 5-12 s rule on a span's bounds alone (an upload's length is known only to the job)."""
    from models.constants import VOICE_MAX_SECONDS, VOICE_MIN_SECONDS

    if a < 0 or b <= a:
        raise UserError(f"{label}: span {a:.2f}-{b:.2f} s is not a span (the end must come after the start)")
    if not VOICE_MIN_SECONDS - 1e-6 <= b - a <= VOICE_MAX_SECONDS + 1e-6:
        raise UserError(f"{label}: a voice prompt needs {VOICE_MIN_SECONDS:g}-{VOICE_MAX_SECONDS:g} s of speech, "
                        f"the span is {b - a:.2f} s")


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

    with page_errors():
        V.check_name(name)
        if not clip and not upload:
            raise UserError("choose a dataset clip or upload a recording")
        label = _display(ws, clip, upload)
        if upload:  # the job decodes the upload and checks the span against its length, never this process
            params = {"start": float(start or 0)}
            if end not in (None, "", 0):
                params["end"] = float(end)
                check_span_length(label, params["start"], params["end"])
        else:  # a stored clip's header says its length: the 5-12 s rule is checked before queuing
            span_start, span_end = check_span(ws, clip, None, start, end)
            params = {"start": span_start, "end": span_end}
        params.update(name=name.strip(), **source_params(ws, clip, upload), model=model or DEFAULT_MODEL, label=label)
        return submit(ws, "voice", params)["id"]


def listen_voice(ws: Workspace, name: str):
    """The span a saved voice was made from (a prompt is codes; this is the audio they encode)."""
    with page_errors():
        v = V.get_voice(ws, name)
    return span_audio(ws, str(v["source_clip_id"]) if v["source_clip_id"] else v["source_path"],
                      v["span_start"], v["span_end"])


def delete_voice(ws: Workspace, name: str) -> None:
    with page_errors():
        V.delete_voice(ws, name)


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
        with page_errors():
            return builtin_voices.sample(ws, name, m)

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
            live.job_picker(ws.db, ("voice",), job_state, label="Voice jobs", elem_id="voices-job")
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
    voice_library.build(ws)  # every learned speaker: samples, reference clips, a mix, "Use in Generate"

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
