"""The Experiments tab's sweep launcher: axes (adapter scales, temperatures, voices, the chosen
experiment's arms), prompts and seeds picked from lists filled from the workspace, the grid size
and a time estimate that follow the choices, one click to queue the `sweep` job, its job view, and
its metric plots once it ends. The request is the one `bark-studio sweep` sends (studio.experiments
.grid checks it); voices become arms, so each is a line of the plots."""
from __future__ import annotations

import gradio as gr

from studio import training, voices
from studio.errors import UserError
from studio.experiments import arms as arm_specs
from studio.experiments import grid, records, requests, sweeps
from studio.inference import DEFAULT_MODEL
from studio.training_presets import BASE_MODELS, EVAL_SENTENCES
from studio.ui import fields, job_view, live
from studio.ui.errors import page_errors
from studio.ui.fields import NO_ADAPTER, adapter_choices
from studio.workspace import Workspace

NO_VOICE, NO_ASR = "(no voice)", "(no WER)"
SCALES = ("0", "0.5", "1", "1.5", "2")
TEMPERATURES = ("0.3", "0.5", "0.7", "1.0", "1.2")
SEEDS = tuple(str(i) for i in range(8))
ASR_SIZES = (NO_ASR, "tiny", "base", "small", "medium")  # Whisper sizes; another may be typed
POLL_SECONDS = 1.5


# Lists filled from the workspace ---------------------------------------------------------------

def voice_choices(ws: Workspace) -> list[str]:
    return [NO_VOICE] + [v["name"] for v in voices.list_voices(ws)]


def _experiment(ws: Workspace, exp_id) -> dict | None:
    return records.get_experiment(ws, int(exp_id)) if exp_id not in (None, "") else None


def prompt_choices(ws: Workspace, exp_id=None) -> list[str]:
    """The experiment's test prompts, the training evaluation sentences, then recent generations' texts."""
    exp = _experiment(ws, exp_id)
    texts = [*(exp["prompts"] if exp else []), *EVAL_SENTENCES,
             *(g["text"] for g in voices.list_generations(ws, limit=30))]
    return list(dict.fromkeys(t.strip() for t in texts if t and t.strip()))[:20]


def arm_choices(ws: Workspace, exp_id) -> list[str]:
    exp = _experiment(ws, exp_id)
    return [a["name"] for a in exp["arms"]] if exp else []


# The request -------------------------------------------------------------------------------------

def _numbers(values, what: str) -> list[float]:
    try:
        return [float(v) for v in values or []]
    except (TypeError, ValueError):
        raise UserError(f"{what}: {values!r} are not numbers") from None


def sweep_request(ws: Workspace, *, exp_id=None, model=DEFAULT_MODEL, adapter=None, scales=(), voice_names=(),
                  arm_names=(), semantic=(), coarse=(), fine=(), prompts=(), more_prompts="", seeds=("0",),
                  max_new_semantic=None, asr=None, name="", condition_axis="") -> dict:
    """What the form says, as the request `bark-studio sweep` would send (not yet checked by grid).
    `condition_axis` is the CLI's --axis for an adapter trained with --condition: speaker_mix=A:B:STEPS
    or label:NAME=LOW:HIGH:STEPS, read by the same parser."""
    exp = _experiment(ws, exp_id)
    adapter = None if adapter in (None, "", NO_ADAPTER) else adapter
    adapter_path = arm_specs.adapter_specs(adapter, "adapter", ws)[0]["path"] if adapter else None
    if scales and not adapter_path:
        raise UserError("choose an adapter to sweep its scale")
    axes: dict = {}
    for axis, values in (("semantic_temperature", semantic), ("coarse_temperature", coarse),
                         ("fine_temperature", fine), ("adapter_scale", scales)):
        if values:
            axes[axis] = sorted(_numbers(values, axis.replace("_", " ")))
    spec = (condition_axis or "").strip()
    if spec:
        axis, values = requests.parse_axis(spec)
        if axis != grid.SPEAKER_MIX and not axis.startswith(grid.LABEL_AXIS):
            raise UserError(f"--axis {spec!r}: the conditioning axis is speaker_mix=A:B:STEPS or "
                            f"label:NAME=LOW:HIGH:STEPS")
        axes[axis] = values
    fixed_adapter = [{"path": adapter_path, "scale": 1.0}] if adapter_path else []
    arms = [a for a in (exp["arms"] if exp else []) if a["name"] in (arm_names or [])]
    picked = list(voice_names or [])
    voice = None
    if len(picked) == 1 and not arms:  # one voice: fixed for every output, no arm line
        voice = None if picked[0] == NO_VOICE else _voice(ws, picked[0])
    else:
        for v in picked:  # several: each is an arm of the plots
            arms.append({"name": v, "kind": "base" if v == NO_VOICE else "voice_prompt", "model": model,
                         "voice": None if v == NO_VOICE else _voice(ws, v), "adapters": fixed_adapter})
    if arms:
        axes["arm"] = [a["name"] for a in arms]
    texts = [*(prompts or []), *(line.strip() for line in (more_prompts or "").splitlines())]
    return {"mode": "grid", "prompts": [t for t in texts if t], "seeds": [int(s) for s in seeds or []] or [0],
            "axes": axes, "model": model or DEFAULT_MODEL, "voice": voice, "adapter": adapter_path, "arms": arms,
            "max_new_semantic": fields.parse_int(max_new_semantic, "the max semantic tokens"),
            "asr": None if asr in (None, "", NO_ASR) else asr, "name": (name or "").strip(), "flag": True,
            "experiment_id": exp["id"] if exp else None, "references": [], "real_audio": [], "real_texts": [],
            "speaker_mix": requests.speaker_mix_ends([spec])}


def _voice(ws: Workspace, name: str) -> str:
    path = arm_specs.voice_file(name, ws)
    if path is None:
        raise UserError(f"voice {name}: no such saved voice")
    return path


def estimate(ws: Workspace, **form) -> str:
    try:
        request = sweep_request(ws, **form)
        requests.checked(ws, request)  # a conditioning axis the adapter cannot take shows before launch
        return requests.estimate_md(ws.db, request)
    except UserError as exc:
        return f"⚠️ {exc}"


@page_errors()
def launch(ws: Workspace, **form) -> int:
    from workers.dispatch import submit

    request = requests.checked(ws, sweep_request(ws, **form))  # a bad request fails here, before a job row exists
    return submit(ws, "sweep", request)["id"]


def sweep_plots(ws: Workspace, job: dict | None) -> list[str]:
    sweep = sweeps.sweep_for_job(ws, job["id"]) if job else None
    return [str(ws.root / p) for p in (sweep or {}).get("plots") or []]


# The section -----------------------------------------------------------------------------------

FORM = ("exp_id", "model", "adapter", "scales", "voice_names", "arm_names", "semantic", "coarse", "fine", "prompts",
        "more_prompts", "seeds", "max_new_semantic", "asr", "name", "condition_axis")


def build(ws: Workspace, exp: gr.Dropdown) -> gr.State:
    """The launcher, under the tab's experiment picker `exp` (its arms and prompts are offered).
    Returns a State that takes the id of each sweep job that ends, for the tab to redraw its page."""
    job_state = gr.State(None)  # the sweep this browser follows
    shown = gr.State(None)  # the ended job whose plots are in the gallery
    with gr.Accordion("Launch a sweep", open=True, elem_id="sweep-launcher"):
        gr.Markdown("Every combination of the values ticked below is generated and measured, and each metric is "
                    "plotted against each axis that varies. Pick an experiment above to sweep its arms and "
                    "record the sweep on its page.")
        with gr.Row():
            model = gr.Dropdown(label="Model", choices=BASE_MODELS, value=DEFAULT_MODEL, allow_custom_value=True,
                                elem_id="sweep-model")
            adapter = gr.Dropdown(label="Adapter", choices=adapter_choices(ws), value=NO_ADAPTER,
                                  elem_id="sweep-adapter")
            asr = gr.Dropdown(label="WER through Whisper", choices=ASR_SIZES, value=NO_ASR, allow_custom_value=True,
                              elem_id="sweep-asr")
        scales = gr.CheckboxGroup(SCALES, value=[], label="Adapter scales (1 = as trained, 0 = off)",
                                  elem_id="sweep-scales")
        voice_names = gr.CheckboxGroup(voice_choices(ws), value=[], label="Voices (two or more: one arm each)",
                                       elem_id="sweep-voices")
        arm_names = gr.CheckboxGroup([], value=[], label="The experiment's arms", elem_id="sweep-arms")
        with gr.Row():
            semantic = gr.CheckboxGroup(TEMPERATURES, value=["0.7"], label="Semantic temperature",
                                        elem_id="sweep-semantic")
            coarse = gr.CheckboxGroup(TEMPERATURES, value=["0.7"], label="Coarse temperature", elem_id="sweep-coarse")
            fine = gr.CheckboxGroup(TEMPERATURES, value=["0.5"], label="Fine temperature", elem_id="sweep-fine")
        prompts = gr.CheckboxGroup(prompt_choices(ws), value=[], label="Prompts", elem_id="sweep-prompts")
        more_prompts = gr.Textbox(label="More prompts, one per line", lines=2, elem_id="sweep-more-prompts")
        seeds = gr.CheckboxGroup(SEEDS, value=["0"], label="Seeds", elem_id="sweep-seeds")
        condition_axis = gr.Textbox(label="Conditioning axis (an adapter trained with --condition)",
                                    placeholder="speaker_mix=alice:bob:5 or label:accent=0:1:5",
                                    elem_id="sweep-condition-axis")
        with gr.Row():
            max_new = fields.id_box("Max semantic tokens per output", placeholder="empty: up to 768 (~15 s)",
                                    elem_id="sweep-max-semantic")
            name = gr.Textbox(label="Sweep name (optional)", elem_id="sweep-name")
        estimate_md = gr.Markdown(elem_id="sweep-estimate")
        launch_btn = gr.Button("Launch sweep", variant="primary", elem_id="sweep-launch")
        live.job_picker(ws.db, ("sweep", "eval"), job_state, label="Sweep jobs", elem_id="sweep-job")
        status = gr.Markdown(elem_id="sweep-status")
        gallery = gr.Gallery(label="This sweep's metric plots", columns=2, height="auto", object_fit="contain",
                             preview=False, elem_id="sweep-plots")

    form = [exp, model, adapter, scales, voice_names, arm_names, semantic, coarse, fine, prompts, more_prompts, seeds,
            max_new, name, condition_axis]
    form_keys = [k for k in FORM if k != "asr"]

    def on_estimate(*values):
        return estimate(ws, **dict(zip(form_keys, values)))

    for comp in form:
        comp.change(on_estimate, inputs=form, outputs=estimate_md, show_progress="hidden")

    def on_experiment(exp_id):
        arms = arm_choices(ws, exp_id)
        exp_prompts = (_experiment(ws, exp_id) or {}).get("prompts") or []
        return (gr.update(choices=arms, value=arms), gr.update(choices=prompt_choices(ws, exp_id), value=exp_prompts))

    exp.change(on_experiment, inputs=exp, outputs=[arm_names, prompts])
    live.keep_current([adapter, voice_names], lambda: [live.choices_update(adapter_choices(ws)),
                                                       live.choices_update(voice_choices(ws))])

    def on_launch(asr_size, *values):
        job_id = launch(ws, asr=asr_size, **dict(zip(form_keys, values)))
        gr.Info(f"sweep job {job_id} queued")
        return job_id

    launch_btn.click(on_launch, inputs=[asr, *form], outputs=job_state)

    ended = gr.State(None)  # the id of the last followed sweep that ended

    def poll(job_id, shown_id):
        job = job_view.load_job(ws.db, job_id)
        if job is None:
            return "", gr.skip(), gr.skip(), gr.skip()
        if job["status"] in job_view.LIVE or job["id"] == shown_id:
            return job_view.summary_md(job), gr.skip(), gr.skip(), gr.skip()
        return job_view.summary_md(job), sweep_plots(ws, job), job["id"], job["id"]

    gr.Timer(POLL_SECONDS).tick(poll, inputs=[job_state, shown], outputs=[status, gallery, shown, ended],
                                show_progress="hidden")
    return ended
