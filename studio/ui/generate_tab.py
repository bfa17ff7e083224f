"""Generate: text (with a palette of Bark's markers), a base model, a voice, one adapter or a
weighted mix of adapters, sampling settings and a seed, a batch of variants. Results play in the
page and are kept in the history (the `generations` table) with every parameter needed to
reproduce them; a result can be starred, sent to the emergent-behaviour log, or staged for a
listening session. Generating is a `generate` job; this tab submits it and watches its row."""
from __future__ import annotations

import hashlib
import secrets
import shutil
from pathlib import Path

import gradio as gr

from studio import voices as V
from studio.errors import UserError
from studio.inference import DEFAULT_MODEL, PRECISIONS, stored_inference
from studio.training_presets import BASE_MODELS
from studio.ui import builtin_voices, fields, job_view, live
from studio.ui.condition_controls import ConditionControls
from studio.ui.errors import page_errors
from studio.ui.fields import NO_ADAPTER, adapter_choices
from studio.workspace import Workspace

TITLE = "Generate"
MARKERS = ("[laughs]", "[laughter]", "[sighs]", "[gasps]", "[clears throat]", "[music]", "♪", "—", "...",
           "[MAN]", "[WOMAN]")
ADAPTER_SLOTS = 3
PLAYERS = 4
HISTORY_COLUMNS = ["id", "★", "text", "model", "voice", "adapters", "seed", "settings", "seconds", "created_at"]
NO_VOICE = "(no voice)"
ENGINES = [("Fast (batched, KV cache)", "fast"), ("Reference (model core loop)", "reference")]


# Domain calls -------------------------------------------------------------------------------------

def voice_choices(ws: Workspace, model: str | None = None) -> list[tuple[str, str]]:
    """(label, voice): no voice, the user's saved voices, then the model's downloaded built-in voices."""
    own = [NO_VOICE] + [v["name"] for v in V.list_voices(ws)]
    return [(name, name) for name in own] + builtin_voices.choices(model)


def generate_params(ws: Workspace, text: str, model: str, voice: str | None, adapters: list[tuple[str | None, float]],
                    sampling: dict, seed, variants, engine: str = "fast", precision: str = "auto") -> dict:
    """The `generate` job's parameters: everything needed to reproduce the result (the job stores
    the precision `auto` resolves to)."""
    from studio import training

    if not (text or "").strip():
        raise UserError("type some text to generate")
    mix = []
    for name, scale in adapters:
        if name and name != NO_ADAPTER:
            mix.append({"name": name, "path": str(training.adapter_folder(ws, name)), "scale": float(scale)})
    seed = fields.parse_int(seed, "the seed")
    if seed is None:  # empty: a random seed, stored with the result so it can be reproduced
        seed = secrets.randbelow(2 ** 31)
    params = {"text": text.strip(), "model": model or DEFAULT_MODEL, "seed": seed, "variants": int(variants or 1),
              "adapters": mix, "engine": engine or "fast", "precision": precision or "auto",
              **{k: v for k, v in sampling.items() if v not in (None, "")}}
    if voice and voice != NO_VOICE:
        params["voice"] = voice
    return params


def submit_generation(ws: Workspace, params: dict) -> int:
    from workers.dispatch import submit

    return submit(ws, "generate", params)["id"]


def history_rows(ws: Workspace, starred_only: bool = False) -> list[list]:
    rows = []
    for g in V.list_generations(ws, limit=200, starred=True if starred_only else None):
        mix = ", ".join(f"{a['name']}×{a.get('scale', 1.0):g}" for a in g["adapters"]) or "base"
        settings = ", ".join(f"{k}={v}" for k, v in sorted((g["params"] or {}).items()) if v is not None)
        rows.append([g["id"], "★" if g["starred"] else "", g["text"], g["model"], g["voice"] or "", mix, g["seed"],
                     settings, round(g["duration"], 2), g["created_at"]])
    return rows


def generation(ws: Workspace, generation_id) -> dict:
    wanted = fields.parse_int(generation_id, "the generation id")
    if wanted is None:
        raise UserError("choose a generation in the history first")
    for g in V.list_generations(ws, limit=100_000):
        if g["id"] == wanted:
            return g
    raise UserError(f"no generation with id {generation_id}")


def send_to_emergent_log(ws: Workspace, generation_id: int, notes: str = "") -> dict:
    """Add a generation from the history to the emergent-behaviour log (the experiments room's)."""
    from studio.experiments.emergent import add_entry

    return add_entry(ws, generation_id=int(generation_id), notes=notes)


def listening_folder(ws: Workspace, system: str) -> Path:
    """Where generations staged for a listening session wait, one folder per system; a session
    is made from such folders (`bark-studio listen create`, or the Listening tab)."""
    system = (system or "").strip()
    if not V.NAME_RE.match(system):
        raise UserError(f"system name {system!r}: use letters, digits, '.', '_' or '-'")
    return ws.exports_dir / "listening" / system


def send_to_listening(ws: Workspace, generation_id: int, system: str) -> Path:
    """Stage a generation's WAV for a listening session under `system`. The item name comes from
    the text and seed, so the same sentence and seed from two systems pair up in an A/B trial."""
    g = generation(ws, generation_id)
    src = ws.inside(g["audio_path"])
    item = hashlib.sha256(g["text"].encode()).hexdigest()[:10] + f"-s{g['seed']}"
    folder = listening_folder(ws, system)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{item}.wav"
    tmp = folder / f".{item}.wav.tmp"
    shutil.copyfile(src, tmp)
    tmp.replace(target)
    (folder / f"{item}.txt").write_text(g["text"] + "\n")
    return target


def result_files(ws: Workspace, job_id, shown):
    """Once the generate job has ended: its files for the players, once (`shown` remembers the
    job whose files are in the players, so a clip that is playing is not reset by the next poll)."""
    job = job_view.load_job(ws.db, job_id)
    if job is None or job["status"] in ("queued", "running") or job["id"] == shown:
        return [gr.skip()] * (PLAYERS + 1)
    if job["status"] != "succeeded":
        gr.Warning(f"generate job {job['id']} {job['status']}" + (f": {job['error']}" if job["error"] else ""))
        return [*([None] * PLAYERS), job["id"]]
    files = ((job.get("result") or {}).get("files") or []) + [None] * PLAYERS
    return [*files[:PLAYERS], job["id"]]


# The tab -----------------------------------------------------------------------------------------

def build(ws: Workspace) -> None:
    job_state = gr.State(None)  # the generate job this browser started last
    shown_state = gr.State(None)  # the job whose files are in the players
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label="Text", lines=3, elem_id="gen-text",
                              placeholder="Hello there [laughs] — how are you?")
            with gr.Row(elem_id="gen-markers"):
                marker_btns = [gr.Button(m, size="sm", min_width=40) for m in MARKERS]
            with gr.Row():
                model = gr.Dropdown(label="Base model", choices=BASE_MODELS, value=DEFAULT_MODEL,
                                    allow_custom_value=True, elem_id="gen-model")
                voice = gr.Dropdown(label="Voice", choices=voice_choices(ws, DEFAULT_MODEL), value=NO_VOICE,
                                    elem_id="gen-voice")
            gr.Markdown("Adapters: one, or a weighted mix (scale 1 = as trained, 0 = off, negative = away from it).")
            adapter_inputs = []
            for i in range(ADAPTER_SLOTS):
                with gr.Row():
                    name = gr.Dropdown(label=f"Adapter {i + 1}", choices=adapter_choices(ws), value=NO_ADAPTER,
                                       elem_id=f"gen-adapter-{i + 1}")
                    scale = gr.Slider(-2, 2, value=1.0, step=0.05, label="Scale", elem_id=f"gen-scale-{i + 1}")
                adapter_inputs += [name, scale]
            cond = ConditionControls()  # shown for an adapter trained with --condition
            with gr.Accordion("Sampling", open=False):
                with gr.Row():
                    sem_t = gr.Slider(0, 1.5, value=0.7, step=0.05, label="Semantic temperature",
                                      info="What is said and how; 0 = greedy.")
                    coarse_t = gr.Slider(0, 1.5, value=0.7, step=0.05, label="Coarse temperature",
                                         info="Voice and prosody variety.")
                    fine_t = gr.Slider(0, 1.5, value=0.5, step=0.05, label="Fine temperature", info="Fine detail.")
                with gr.Row():
                    min_eos = gr.Slider(0, 1, value=0.2, step=0.05, label="min EOS probability",
                                        info="Lower ends sentences sooner.")
                    top_k = gr.Number(label="top-k (0 = off)", value=0, precision=0)
                    top_p = gr.Number(label="top-p (0 = off)", value=0)
                    max_tokens = gr.Number(label="Max semantic tokens", value=768, precision=0,
                                           info="About 50 per second of speech; caps each sentence's length.",
                                           elem_id="gen-max-tokens")
                with gr.Row():
                    engine = gr.Dropdown(label="Engine", choices=ENGINES, value="fast", elem_id="gen-engine",
                                         info="Fast: same tokens as the reference when greedy in fp32.")
                    precision = gr.Dropdown(label="Precision", choices=PRECISIONS, value="auto",
                                            elem_id="gen-precision",
                                            info="auto = bf16 on GPUs and bf16-capable CPUs, else fp32.")
            with gr.Row():
                seed = fields.id_box("Seed (empty: random, stored with the result)", placeholder="random",
                                     elem_id="gen-seed")
                variants = gr.Slider(1, 8, value=1, step=1, label="Variants (seeds seed, seed+1, …)",
                                     elem_id="gen-variants")
            go = gr.Button("Generate", variant="primary", elem_id="gen-go")
            status = gr.Markdown(elem_id="gen-status")
            live.job_picker(ws.db, ("generate",), job_state, label="Generate jobs", elem_id="gen-job")
        with gr.Column(scale=2):
            players = [gr.Audio(label=f"Variant {i + 1}", interactive=False, elem_id=f"gen-out-{i + 1}")
                       for i in range(PLAYERS)]
    gr.Markdown("### History")
    with gr.Row():
        starred_only = gr.Checkbox(label="Starred only", value=False)
        chosen = fields.id_box("Generation", placeholder="click a row of the history", elem_id="gen-chosen")
        system = gr.Textbox(label="Listening system name", placeholder="e.g. my-adapter", elem_id="gen-system")
    with gr.Row():
        star_btn = gr.Button("★ Star / unstar", elem_id="gen-star")
        reuse_btn = gr.Button("Reuse its settings", elem_id="gen-reuse")
        emergent_btn = gr.Button("Send to emergent-behaviour log", elem_id="gen-emergent")
        listen_btn = gr.Button("Stage for a listening session", elem_id="gen-listening")
    history_player = gr.Audio(label="Chosen generation", interactive=False, elem_id="gen-history-audio")
    history = gr.Dataframe(headers=HISTORY_COLUMNS, value=lambda: history_rows(ws), interactive=False,
                           wrap=True, elem_id="gen-history")

    for btn, marker in zip(marker_btns, MARKERS):
        btn.click(None, inputs=text, outputs=text, js=fields.insert_at_caret_js("gen-text", marker))
    adapter_names = adapter_inputs[::2]
    live.keep_current([voice, *adapter_names], lambda: [live.choices_update(voice_choices(ws)),
                                                       *[live.choices_update(adapter_choices(ws))] * ADAPTER_SLOTS])
    # Built-in voices depend on the chosen model: read them again when the voice list is opened.
    voice.focus(lambda m: gr.update(choices=voice_choices(ws, m)), inputs=model, outputs=voice)

    def on_generate(t, m, v, st, ct, ft, me, tk, tp, mt, eng, prec, sd, n, *adapters):
        sampling = {"semantic_temperature": st, "coarse_temperature": ct, "fine_temperature": ft, "min_eos_p": me,
                    "top_k": int(tk) if tk else None, "top_p": float(tp) if tp else None,
                    "semantic_max_new_tokens": int(mt) if mt else None}
        adapters, conditions = adapters[:2 * ADAPTER_SLOTS], adapters[2 * ADAPTER_SLOTS:]
        pairs = list(zip(adapters[::2], adapters[1::2]))
        with page_errors():
            params = {**generate_params(ws, t, m, v, pairs, sampling, sd, n, eng, prec), **cond.params(conditions)}
            job_id = submit_generation(ws, params)
        return job_id

    go.click(on_generate, inputs=[text, model, voice, sem_t, coarse_t, fine_t, min_eos, top_k, top_p, max_tokens,
                                  engine, precision, seed, variants, *adapter_inputs, *cond.inputs],
             outputs=job_state)
    cond.wire(ws, adapter_names)
    cond.receive_handovers(ws, model, adapter_names[0])

    def poll(job_id, only_starred):
        job = job_view.load_job(ws.db, job_id)
        return (job_view.summary_md(job) if job else ""), history_rows(ws, only_starred)

    timer = gr.Timer(1.5)
    timer.tick(poll, inputs=[job_state, starred_only], outputs=[status, history])
    timer.tick(lambda j, shown: result_files(ws, j, shown), inputs=[job_state, shown_state],
               outputs=[*players, shown_state])
    starred_only.change(lambda s: history_rows(ws, s), inputs=starred_only, outputs=history)

    def pick(evt: gr.SelectData):
        return evt.row_value[0] if evt.row_value else None

    def play(gid):
        try:
            return str(ws.inside(generation(ws, gid)["audio_path"])) if gid not in (None, "") else None
        except UserError:
            return None

    history.select(pick, outputs=chosen)
    chosen.change(play, inputs=chosen, outputs=history_player)

    def on_star(gid, only_starred):
        with page_errors():
            g = generation(ws, gid)
            V.set_starred(ws, g["id"], not g["starred"])
        return history_rows(ws, only_starred)

    def on_reuse(gid):
        with page_errors():
            g = generation(ws, gid)
        p = g["params"] or {}
        slots = []
        for i in range(ADAPTER_SLOTS):
            a = g["adapters"][i] if i < len(g["adapters"]) else None
            # choices first: a voice or adapter made since the page was built is a valid value
            slots += [gr.update(choices=adapter_choices(ws), value=a["name"] if a else NO_ADAPTER),
                      a.get("scale", 1.0) if a else 1.0]
        return [g["text"], g["model"], gr.update(choices=voice_choices(ws), value=g["voice"] or NO_VOICE), p.get("semantic_temperature", 0.7),
                p.get("coarse_temperature", 0.7), p.get("fine_temperature", 0.5), p.get("min_eos_p", 0.2),
                p.get("top_k") or 0, p.get("top_p") or 0, p.get("semantic_max_new_tokens") or 768,
                *stored_inference(p), g["seed"], 1, *slots]

    def on_emergent(gid):
        with page_errors():
            entry = send_to_emergent_log(ws, generation(ws, gid)["id"])
        gr.Info(f"added to the emergent-behaviour log (entry {entry['id']})")

    def on_listening(gid, sys_name):
        with page_errors():
            path = send_to_listening(ws, gid, sys_name)
        gr.Info(f"staged as {ws.relative(path)}")

    star_btn.click(on_star, inputs=[chosen, starred_only], outputs=history)
    reuse_btn.click(on_reuse, inputs=chosen, outputs=[text, model, voice, sem_t, coarse_t, fine_t, min_eos, top_k,
                                                      top_p, max_tokens, engine, precision, seed, variants,
                                                      *adapter_inputs])
    emergent_btn.click(on_emergent, inputs=chosen)
    listen_btn.click(on_listening, inputs=[chosen, system])


if __name__ == "__main__":
    with gr.Blocks() as demo:
        build(Workspace.resolve())
    demo.launch()
