"""The voice library (in the Voices tab): every speaker learned by an adapter trained with
`--condition speaker`, each with a generated sample (a `generate` job on a fixed line and seed,
made on demand and reused: a finished job with the same adapter, speaker, line and seed is the
cache) and a real reference clip (a clip of that speaker from the adapter's dataset, played
through the studio's authenticated file route). Two speakers of one adapter are chosen with a
slider between them that plays the interpolated voice (a `generate` job with the speaker mix);
"Use in Generate" fills the Generate tab's adapter and speaker controls and opens it."""
from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

import gradio as gr
from gradio.context import get_render_context

from studio import jobs
from studio.inference import DEFAULT_MODEL
from studio.ui import job_view, live, workspace_audio
from studio.ui.condition_controls import NO_SECOND, condition_params, conditioning_labels, hand_over, speakers_of
from studio.ui.errors import page_errors
from studio.workspace import Workspace

SAMPLE_LINE = "Hello! This is my voice, as the adapter learned it."
SAMPLE_SEED = 7
SAMPLE_MAX_TOKENS = 256  # semantic tokens, about 5 s: the line fits, a voice that never stops is cut
POLL_SECONDS = 1.5
CACHE_SCAN = 500  # recent generate jobs searched for a cached sample


# Domain calls -------------------------------------------------------------------------------------

def conditioned_adapters(ws: Workspace) -> list[dict]:
    """Adapter rows that learned speakers, newest first."""
    from studio import training

    return [a for a in training.list_adapters(ws)
            if speakers_of(((a["manifest"] or {}).get("conditioning") or {}).get("labels"))]


def adapter_speakers(ws: Workspace, adapter: str | None) -> list[str]:
    return speakers_of(conditioning_labels(ws, adapter))


def reference_clip(ws: Workspace, adapter: dict, speaker: str) -> dict | None:
    """A clip of `speaker` from the adapter's dataset (the first kept one), or None."""
    from studio.datasets.labels import clip_labels
    from studio.datasets.store import list_clips

    if not adapter.get("dataset"):
        return None
    try:
        clips = list_clips(ws.db, adapter["dataset"])
    except Exception:  # the dataset was deleted since: no reference to play
        return None
    mine = [c for c in clips if clip_labels(c).get("speaker") == speaker]
    return next((c for c in mine if c["state"] == "active"), mine[0] if mine else None)


def job_params(ws: Workspace, adapter: str, weights: dict[str, float], max_tokens=SAMPLE_MAX_TOKENS) -> dict:
    """The `generate` job of a library voice: the fixed line and seed, the adapter, a speaker mix."""
    from studio import training

    row = training.get_adapter(ws, adapter)
    return {"text": SAMPLE_LINE, "seed": SAMPLE_SEED, "model": row["base_model"] or DEFAULT_MODEL,
            "adapters": [{"name": adapter, "path": str(training.adapter_folder(ws, adapter)), "scale": 1.0}],
            "speaker": weights, "semantic_max_new_tokens": int(max_tokens or SAMPLE_MAX_TOKENS)}


def _same_voice(params: dict, wanted: dict) -> bool:
    return all(params.get(k) == wanted[k] for k in ("text", "seed", "model", "adapters", "speaker",
                                                    "semantic_max_new_tokens"))


def cached_job(ws: Workspace, wanted: dict, recent: list[dict] | None = None) -> dict | None:
    """The newest generate job of these exact params that succeeded or is still under way (among
    `recent`, the recent generate jobs, read here when not given)."""
    for job in recent if recent is not None else jobs.list_jobs(ws.db, kind="generate", limit=CACHE_SCAN):
        if job["status"] in ("succeeded", "queued", "running") and _same_voice(job["params"] or {}, wanted):
            if job["status"] != "succeeded" or _output(job):
                return job
    return None


def voice_job(ws: Workspace, adapter: str | None, weights: dict[str, float], max_tokens=SAMPLE_MAX_TOKENS) -> int:
    """The job that renders this voice: a cached one, or a new `generate` job."""
    from workers.dispatch import submit

    if not adapter:
        raise gr.Error("choose an adapter of the voice library first")
    if not weights:
        raise gr.Error("choose a speaker first")
    with page_errors():
        wanted = job_params(ws, adapter, weights, max_tokens)
        job = cached_job(ws, wanted)
        return job["id"] if job else submit(ws, "generate", wanted)["id"]


def _output(job: dict | None) -> Path | None:
    files = ((job or {}).get("result") or {}).get("files") or []
    return Path(files[0]) if job and job["status"] == "succeeded" and files and Path(files[0]).is_file() else None


def _generated_url(ws: Workspace, path: Path) -> str:
    """A generated file's URL (the generated folder is one of the file route's allowed paths)."""
    path = ws.inside(path)
    if ws.generated_dir.resolve() not in path.parents:
        raise ValueError(f"{path} is not generated audio")
    return workspace_audio.FILE_ROUTE + quote(str(path))


def _audio_tag(url: str | None, label: str) -> str:
    if not url:
        return f"<em>{html.escape(label)}</em>"
    return f'<audio controls preload="none" src="{html.escape(url)}" aria-label="{html.escape(label)}"></audio>'


def library_html(ws: Workspace, max_tokens=SAMPLE_MAX_TOKENS) -> str:
    """Every learned speaker: adapter, speaker, its sample (once made) and its reference clip."""
    rows, recent = [], jobs.list_jobs(ws.db, kind="generate", limit=CACHE_SCAN)
    for adapter in conditioned_adapters(ws):
        present = (ws.root / adapter["path"]).is_dir()
        for speaker in speakers_of(adapter["manifest"]["conditioning"]["labels"]):
            wanted = job_params(ws, adapter["name"], {speaker: 1.0}, max_tokens) if present else None
            sample = _output(cached_job(ws, wanted, recent)) if wanted else None
            clip = reference_clip(ws, adapter, speaker)
            sample_tag = _audio_tag(_generated_url(ws, sample) if sample else None, "not made yet: Play it below")
            ref_tag = _audio_tag(workspace_audio.url(ws, clip["blob"]) if clip else None, "no clip of this speaker")
            clip_name = f"<br><small>{html.escape(clip['name'])}</small>" if clip else ""
            rows.append(f'<tr data-adapter="{html.escape(adapter["name"])}" data-speaker="{html.escape(speaker)}">'
                        f"<td>{html.escape(adapter['name'])}</td><td><strong>{html.escape(speaker)}</strong></td>"
                        f"<td class='vl-sample'>{sample_tag}</td><td class='vl-ref'>{ref_tag}{clip_name}</td></tr>")
    if not rows:
        return ("<p><em>No learned speakers yet: label clips with a speaker in the Dataset tab and train with "
                "“Condition on: speaker” in the Train tab.</em></p>")
    return ("<table class='voice-library'><thead><tr><th>adapter</th><th>speaker</th><th>generated sample</th>"
            "<th>reference clip</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def adapter_choices(ws: Workspace) -> list[str]:
    return [a["name"] for a in conditioned_adapters(ws)]


def player_file(ws: Workspace, job_id, shown):
    """(status, audio update, shown): the job's file once it ended, once (a playing clip is left alone)."""
    job = job_view.load_job(ws.db, job_id)
    if job is None:
        return "", gr.skip(), shown
    summary = job_view.summary_md(job)
    if job["status"] in ("queued", "running") or job["id"] == shown:
        return summary, gr.skip(), shown
    wav = _output(job)
    return summary, (str(wav) if wav else None), job["id"]


# The section --------------------------------------------------------------------------------------

def build(ws: Workspace) -> None:
    gr.Markdown("### Voice library\nEvery speaker learned by an adapter trained with “Condition on: speaker”: a "
                f"generated sample (“{SAMPLE_LINE}”, seed {SAMPLE_SEED}) and a real clip of the speaker.")
    table = gr.HTML(lambda: library_html(ws), elem_id="voice-library")
    with gr.Row():
        adapter = gr.Dropdown(label="Adapter", choices=adapter_choices(ws), value=None, elem_id="vl-adapter")
        first = gr.Dropdown(label="Speaker A", choices=[], value=None, elem_id="vl-speaker-a")
        second = gr.Dropdown(label="Speaker B", choices=[], value=None, elem_id="vl-speaker-b")
    with gr.Row():
        play_a = gr.Button("Play A", elem_id="vl-play-a")
        play_b = gr.Button("Play B", elem_id="vl-play-b")
    with gr.Row():
        mix = gr.Slider(0, 1, value=0.5, step=0.05, label="A ← mix → B", elem_id="vl-mix")
        play_mix = gr.Button("Play the mix", variant="primary", elem_id="vl-play-mix")
        use_btn = gr.Button("Use in Generate", elem_id="vl-use")
        max_tokens = gr.Number(label="Max semantic tokens", value=SAMPLE_MAX_TOKENS, precision=0, minimum=1,
                               info="About 50 per second of speech.", elem_id="vl-max-tokens")
    status = gr.Markdown(elem_id="vl-status")
    with gr.Row():
        audio_a = gr.Audio(label="A", interactive=False, elem_id="vl-audio-a")
        audio_b = gr.Audio(label="B", interactive=False, elem_id="vl-audio-b")
        audio_mix = gr.Audio(label="Mix", interactive=False, elem_id="vl-audio-mix")
    players = [(gr.State(None), gr.State(None), audio) for audio in (audio_a, audio_b, audio_mix)]  # job, shown
    handover = gr.State(None)

    live.keep_current([adapter, table], lambda: (live.choices_update(adapter_choices(ws)), library_html(ws)))

    def on_adapter(name):
        speakers = adapter_speakers(ws, name)
        return (gr.update(choices=speakers, value=speakers[0] if speakers else None),
                gr.update(choices=speakers, value=speakers[1] if len(speakers) > 1 else None))

    adapter.change(on_adapter, inputs=adapter, outputs=[first, second])
    play_a.click(lambda ad, a, n: voice_job(ws, ad, {a: 1.0} if a else {}, n), inputs=[adapter, first, max_tokens],
                 outputs=players[0][0])
    play_b.click(lambda ad, b, n: voice_job(ws, ad, {b: 1.0} if b else {}, n), inputs=[adapter, second, max_tokens],
                 outputs=players[1][0])

    def on_mix(ad, a, b, t, n):
        if not a or not b or a == b:
            raise gr.Error("choose two different speakers to mix")
        return voice_job(ws, ad, condition_params(a, b, t, {}).get("speaker", {}), n)

    play_mix.click(on_mix, inputs=[adapter, first, second, mix, max_tokens], outputs=players[2][0])

    timer = gr.Timer(POLL_SECONDS)
    for job_state, shown_state, audio in players:
        timer.tick(lambda j, s: player_file(ws, j, s) if j is not None else (gr.skip(), gr.skip(), s),
                   inputs=[job_state, shown_state], outputs=[status, audio, shown_state], show_progress="hidden")
        shown_state.change(lambda n: library_html(ws, n), inputs=max_tokens, outputs=table, show_progress="hidden")  # a sample joins it

    # "Use in Generate": the Generate tab (built after this one) applies `handover` to its controls
    # (condition_controls.receive_handovers); this click also opens that tab.
    tab = live.enclosing_tab(get_render_context())
    tabs = tab.parent if tab is not None and isinstance(getattr(tab, "parent", None), gr.Tabs) else None

    def on_use(ad, a, b, t):
        if not ad or not a:
            raise gr.Error("choose an adapter and a speaker first")
        chosen = {"adapter": ad, "speaker": a, "second": b if b and b != a else NO_SECOND, "mix": float(t)}
        return (chosen, gr.update(selected="generate")) if tabs is not None else chosen

    event = use_btn.click(on_use, inputs=[adapter, first, second, mix],
                          outputs=[handover, tabs] if tabs is not None else handover)
    hand_over(event, handover)
