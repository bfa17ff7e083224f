"""Train: pick a dataset (its report's warnings shown), a base model, stages and a preset; see what
the run will cost; launch it in one click; watch train and validation loss, lr and grad-norm live;
listen to a checkpoint on fixed sentences with a fixed seed; promote a checkpoint to an adapter,
delete one, cancel the run, or resume it from a chosen checkpoint.

The web process never imports torch: the presets are models.training_config's (torch-free, shown
through studio.training_presets), and everything heavy is a job (`train`, `generate`)."""
from __future__ import annotations

import gradio as gr

from models.training_config import VOICE_PROMPT_MODES
from models.world import gpus_refusal
from studio import jobs, train_cost
from studio.errors import UserError
from studio.inference import DEFAULT_MODEL
from studio.training_presets import (ADVANCED, BASE_MODELS, EVAL_SEED, EVAL_SENTENCES, PRESET_LABELS, PRESETS,
                                     STAGES)
from studio.ui import fields, job_view, live
from studio.ui.errors import page_errors
from studio.workspace import Workspace

TITLE = "Train"
DEFAULT_PRESET = "Quick LoRA"
POLL_SECONDS = 1.5
# d3 SI prefixes: 2e-4 reads "200µ". The default read 0.000000, and the page's axis has room for
# about four characters (a longer label, "1.5e-4", is cut at the plot's left edge).
LR_AXIS_FORMAT = "~s"
CHECKPOINT_COLUMNS = ["checkpoint", "step", "best", "val_loss", "train_loss", "path"]


# Domain calls (thin; UserError becomes gr.Error) --------------------------------------------------

def dataset_choices(ws: Workspace) -> list[str]:
    from studio.datasets.store import list_datasets

    return [d["name"] for d in list_datasets(ws.db)]


def dataset_info(ws: Workspace, name: str | None) -> tuple[str, dict]:
    """The dataset report's summary and warnings, and the numbers the estimate needs."""
    if not name:
        return "_Choose a dataset._", {}
    from studio.datasets.report import build_report

    with page_errors():
        report = build_report(ws.db, name)
    lines = [f"**{name}**: {report['clips']} clips, {report['training_segments']} training segments, "
             f"{report['training_duration_s'] / 60:.1f} min of trainable audio"]
    lines += [f"- ⚠️ {w}" for w in report["warnings"]]
    return "\n".join(lines), {"n_items": report["training_segments"], "seconds": report["training_duration_s"]}


def label_names(ws: Workspace, name: str | None) -> list[str]:
    """What training can condition on: the labels the dataset's clips carry (speaker first)."""
    from studio.datasets.labels import clip_labels
    from studio.datasets.store import list_clips

    if not name:
        return []
    with page_errors():
        return list(dict.fromkeys(k for c in list_clips(ws.db, name) for k in clip_labels(c)))


def preset_values(label: str) -> list:
    values = PRESETS[PRESET_LABELS[label]]
    return [values.get(f.name, f.default) for f in ADVANCED]


def settings_from(preset_label: str, advanced: list) -> dict:
    """The advanced fields whose value differs from the preset's (what the job overrides)."""
    preset = PRESETS[PRESET_LABELS[preset_label]]
    out: dict = {}
    for f, value in zip(ADVANCED, advanced):
        value = f.parse(value)
        if value != f.parse(preset.get(f.name, f.default)):
            out[f.name] = value
    return out


def estimate_md(ws: Workspace, info: dict, base: str, stages: list[str], preset_label: str, advanced: list) -> str:
    if not info or not info.get("n_items"):
        return "_Cost estimate: choose a prepared dataset with transcribed segments._"
    settings = {**PRESETS[PRESET_LABELS[preset_label]], **settings_from(preset_label, advanced)}
    est = train_cost.estimate(ws.db, n_items=info["n_items"], audio_seconds=info["seconds"], base_model=base,
                              stages=stages, settings=settings)
    return "**Cost estimate:** " + est.markdown()


def launch(ws: Workspace, dataset: str, base: str, stages: list[str], preset_label: str, advanced: list,
           name: str = "", voice_prompts: str = "auto", gpus: int = 1, condition: list[str] | None = None) -> int:
    from studio.datasets.fit import check_transcripts_fit
    from workers.dispatch import submit

    if not dataset:
        raise gr.Error("choose a dataset to train on")
    if not stages:
        raise gr.Error("choose at least one stage to train")
    params = {"dataset": dataset, "model": base, "stages": list(stages), "preset": PRESET_LABELS[preset_label],
              **settings_from(preset_label, advanced)}
    if voice_prompts and voice_prompts != "auto":  # like the advanced fields: only what differs from the default
        params["voice_prompts"] = voice_prompts
    if (name or "").strip():
        params["name"] = name.strip()
    if condition:
        params["condition"] = list(condition)
    gpus = int(gpus or 1)
    if gpus != 1:
        params["gpus"] = gpus
    refusal = gpus_refusal(gpus, remote_workers=bool(ws.redis_url))
    if refusal:
        raise gr.Error(refusal)
    with page_errors():
        check_transcripts_fit(ws, dataset)
        return submit(ws, "train", params)["id"]


def checkpoints(ws: Workspace, job_id) -> list[dict]:
    from studio import training

    return training.list_checkpoints(ws, int(job_id)) if job_id not in (None, "") else []


def checkpoint_rows(ws: Workspace, job_id) -> list[list]:
    cps = checkpoints(ws, job_id)
    if not cps:
        return []
    train_loss = dict(jobs.metric_series(ws.db, int(job_id)).get("loss", []))
    return [[c["id"], c["step"], "★ best" if c["is_best"] else "", _num(c["val_loss"]), _num(train_loss.get(c["step"])),
             c["path"]] for c in cps]


def _num(x) -> str:
    return "" if x is None else f"{x:.4f}"


def stage_loss_frame(series: dict[str, list[tuple[int, float]]]):
    """Train and validation loss of each stage as one long table ("coarse train", "coarse
    validation", ...): each stage has its own schedule and its own best. A job recorded before
    per-stage series shows its overall train and validation loss."""
    import pandas as pd

    rows = [(step, value, f"{stage} {label}") for stage in STAGES
            for key, label in (("loss", "train"), ("val_loss", "validation"))
            for step, value in series.get(f"{key}_{stage}", [])]
    if not rows:
        return job_view.loss_frame(series)
    return pd.DataFrame(rows, columns=["step", "loss", "series"])


def best_steps_md(ws: Workspace, job_id) -> str:
    """Which step each stage's best checkpoint is at (the adapter takes each stage from there)."""
    best = {}
    for c in checkpoints(ws, job_id):
        for stage in (c.get("metrics") or {}).get("best_stages") or []:
            best[stage] = (c["step"], ((c.get("metrics") or {}).get("val_loss_stages") or {}).get(stage))
    if not best:
        return ""
    series = jobs.metric_series(ws.db, int(job_id))  # each stage's epochs so far (its own schedule)
    epochs = {s: series[f"epoch_{s}"][-1][1] for s in STAGES if series.get(f"epoch_{s}")}

    def detail(stage, val):
        parts = ([f"val {val:.4f}"] if val is not None else []) + (
            [f"{epochs[stage]:.2f} epochs trained"] if stage in epochs else [])
        return f" ({', '.join(parts)})" if parts else ""
    return "Best checkpoint per stage: " + " · ".join(
        f"{stage} step {step}{detail(stage, val)}" for stage, (step, val) in ((s, best[s]) for s in STAGES if s in best))


def _checkpoint(ws: Workspace, checkpoint_id) -> dict:
    from studio import training

    with page_errors():
        checkpoint_id = fields.parse_int(checkpoint_id, "the checkpoint id")
        if checkpoint_id is None:
            raise UserError("choose a checkpoint in the list first")
        return training.get_checkpoint(ws, checkpoint_id)


def render_eval_audio(ws: Workspace, checkpoint_id) -> int:
    """Queue a `generate` job: the checkpoint's adapter on the fixed sentences with the fixed seed."""
    from workers.dispatch import submit

    ck = _checkpoint(ws, checkpoint_id)
    adapter = ws.inside(ck["path"]) / "adapter"
    with ws.db.read() as s:
        model = (s.get(jobs.Job, ck["job_id"]).params or {}).get("model") or DEFAULT_MODEL
    with page_errors():
        return submit(ws, "generate", {"texts": list(EVAL_SENTENCES), "seed": EVAL_SEED, "model": model,
                                       "adapters": [{"name": f"job {ck['job_id']} step {ck['step']}",
                                                     "path": str(adapter), "scale": 1.0}]})["id"]


def eval_files(ws: Workspace, job_id):
    """Once the eval-audio job has ended: its two files (and stop watching it); until then, no
    change (so a clip that is playing is not reset)."""
    job = job_view.load_job(ws.db, job_id)
    if job is None or job["status"] in ("queued", "running"):
        return gr.skip(), gr.skip(), gr.skip()
    if job["status"] != "succeeded":
        gr.Warning(f"evaluation audio job {job['id']} {job['status']}: {job['error'] or ''}")
        return None, None, None
    files = ((job.get("result") or {}).get("files") or []) + [None, None]
    return files[0], files[1], None


# The tab -----------------------------------------------------------------------------------------

def build(ws: Workspace) -> None:
    job_state = gr.State(None)  # the training job this browser watches
    eval_state = gr.State(None)  # the eval-audio job of the chosen checkpoint
    info_state = gr.State({})
    with gr.Row():
        with gr.Column(scale=2):
            dataset = gr.Dropdown(label="Dataset", choices=dataset_choices(ws), value=None, elem_id="train-dataset")
            dataset_md = gr.Markdown(elem_id="train-dataset-report")
            base = gr.Dropdown(label="Base model", choices=BASE_MODELS, value=DEFAULT_MODEL, allow_custom_value=True,
                               info="A preset, a hub id or a local folder. `tiny` is a random test model, never a voice.",
                               elem_id="train-base")
            stages = gr.CheckboxGroup(label="Stages", choices=list(STAGES), value=list(STAGES),
                                      info="semantic: what is said and how; coarse + fine: the voice and its sound.",
                                      elem_id="train-stages")
            preset = gr.Radio(label="Preset", choices=list(PRESET_LABELS), value=DEFAULT_PRESET, elem_id="train-preset")
            voice_prompts = gr.Radio(label="Voice prompts in training", choices=list(VOICE_PROMPT_MODES), value="auto",
                                     info="Train each clip with a voice prompt from another clip of its speaker, as "
                                          "generation uses them (auto: when the dataset has several clips per speaker).",
                                     elem_id="train-voice-prompts")
            condition = gr.Dropdown(label="Condition on", choices=[], value=[], multiselect=True,
                                    elem_id="train-condition",
                                    info="Clip labels to learn a vector for (one adapter, many voices or a dial).")
            gpus = gr.Number(label="GPUs", value=1, minimum=1, precision=0, elem_id="train-gpus",
                             info="GPUs of one worker host to train on: LoRA runs under DDP, a full fine-tune "
                                  "under FSDP (its weights sharded across the cards).")
            with gr.Accordion("Advanced settings", open=False, elem_id="train-advanced"):
                advanced = [f.component(PRESET_LABELS[DEFAULT_PRESET]) for f in ADVANCED]
            name = gr.Textbox(label="Adapter name (optional)", info="The best checkpoint is saved under this name.",
                              elem_id="train-name")
            estimate = gr.Markdown(elem_id="train-estimate")
            launch_btn = gr.Button("Launch training", variant="primary", elem_id="train-launch")
        with gr.Column(scale=3):
            status = gr.Markdown("_No training job yet._", elem_id="train-status")
            with gr.Row():
                live.job_picker(ws.db, ("train",), job_state, label="Watching job", elem_id="train-job")
                cancel_btn = gr.Button("Cancel", elem_id="train-cancel", scale=0)
            loss_plot = gr.LinePlot(x="step", y="loss", color="series", title="Loss: train and validation",
                                    elem_id="train-loss-plot", height=260)
            latest = gr.Markdown(elem_id="train-loss-latest")
            with gr.Row():
                lr_plot = gr.LinePlot(x="step", y="lr", title="Learning rate (m = 1e-3, µ = 1e-6)", height=200,
                                      elem_id="train-lr-plot", y_axis_format=LR_AXIS_FORMAT)
                gn_plot = gr.LinePlot(x="step", y="grad_norm", title="Gradient norm", elem_id="train-gn-plot",
                                      height=200)
            with gr.Accordion("Traceback", open=False):
                trace = gr.Code(label="Traceback", language=None, elem_id="train-traceback")
            gr.Markdown("### Checkpoints")
            cp_table = gr.Dataframe(headers=CHECKPOINT_COLUMNS, interactive=False, elem_id="train-checkpoints")
            with gr.Row():
                cp_id = fields.id_box("Checkpoint", placeholder="click a row above", elem_id="train-cp")
                adapter_name = gr.Textbox(label="Adapter name", elem_id="train-adapter-name")
            with gr.Row():
                listen_btn = gr.Button("Render evaluation audio", elem_id="train-listen")
                promote_btn = gr.Button("Promote to adapter", elem_id="train-promote")
                delete_btn = gr.Button("Delete checkpoint", elem_id="train-delete")
                resume_btn = gr.Button("Resume from this checkpoint", elem_id="train-resume")
            gr.Markdown(f"Evaluation sentences (seed {EVAL_SEED}): " + " / ".join(EVAL_SENTENCES))
            with gr.Row():
                eval_1 = gr.Audio(label="Evaluation 1", interactive=False, elem_id="train-eval-1")
                eval_2 = gr.Audio(label="Evaluation 2", interactive=False, elem_id="train-eval-2")

    est_inputs = [info_state, base, stages, preset, *advanced]

    def on_estimate(info, b, st, p, *adv):
        return estimate_md(ws, info, b, st, p, list(adv))

    live.keep_current(dataset, lambda: live.choices_update(dataset_choices(ws)))
    dataset.change(lambda d: gr.update(choices=label_names(ws, d), value=[]), inputs=dataset, outputs=condition)
    condition.focus(lambda d: gr.update(choices=label_names(ws, d)), inputs=dataset, outputs=condition)  # labels edited since
    dataset.change(lambda d: dataset_info(ws, d), inputs=dataset, outputs=[dataset_md, info_state]).then(
        on_estimate, inputs=est_inputs, outputs=estimate)
    preset.change(preset_values, inputs=preset, outputs=advanced).then(on_estimate, inputs=est_inputs, outputs=estimate)
    for comp in (base, stages, *advanced):
        comp.change(on_estimate, inputs=est_inputs, outputs=estimate)

    def on_launch(d, b, st, p, n, vp, g, cond, *adv):
        job_id = launch(ws, d, b, st, p, list(adv), n, vp, g, cond)
        gr.Info(f"training job {job_id} queued")
        return job_id

    launch_btn.click(on_launch, inputs=[dataset, base, stages, preset, name, voice_prompts, gpus, condition,
                                        *advanced], outputs=job_state)

    drawn_state = gr.State(None)  # what the plots show: (job, points); redrawn only when it changes

    def refresh(job_id, drawn):
        job = job_view.load_job(ws.db, job_id)
        losses, lr, gn, latest_md = job_view.curves(ws.db, job_id if job else None)
        series = jobs.metric_series(ws.db, int(job_id)) if job else {}
        if job:  # per-stage curves, and where each stage's best checkpoint is
            losses = stage_loss_frame(series)
            latest_md = "\n\n".join(x for x in (latest_md, best_steps_md(ws, job_id)) if x)
        # no points: no chart. A coloured chart first drawn empty keeps an empty colour domain, so the
        # loss lines that come later are never drawn (Gradio's LinePlot sets its domain on first draw).
        losses, lr, gn = (None if getattr(f, "empty", False) else f for f in (losses, lr, gn))
        shown = [job_id if job else None, sum(map(len, series.values()))]
        if shown == drawn:  # a redraw of the same points blanks the plots for a moment on every poll
            losses, lr, gn = gr.skip(), gr.skip(), gr.skip()
        return (job_view.summary_md(job) if job else "_No training job yet._", losses, latest_md, lr, gn,
                job_view.traceback_text(job), checkpoint_rows(ws, job_id) if job else [], shown)

    outputs = [status, loss_plot, latest, lr_plot, gn_plot, trace, cp_table, drawn_state]
    timer = gr.Timer(POLL_SECONDS)
    timer.tick(refresh, inputs=[job_state, drawn_state], outputs=outputs)
    job_state.change(refresh, inputs=[job_state, drawn_state], outputs=outputs)

    def pick_checkpoint(evt: gr.SelectData):
        return evt.row_value[0] if evt.row_value else None

    cp_table.select(pick_checkpoint, outputs=cp_id)

    def on_cancel(job_id):
        from workers.dispatch import cancel

        if job_id in (None, ""):
            raise gr.Error("no training job to cancel")
        job = cancel(ws, int(job_id))
        gr.Info("cancelled" if job["status"] == "cancelled" else "stopping after this step; a checkpoint is saved")

    def on_listen(checkpoint_id):
        job_id = render_eval_audio(ws, checkpoint_id)
        gr.Info(f"rendering evaluation audio (job {job_id})")
        return job_id

    def on_promote(checkpoint_id, adapter):
        from studio import training

        ck = _checkpoint(ws, checkpoint_id)
        with page_errors():
            row = training.promote_checkpoint(ws, ck["id"], adapter)
        gr.Info(f"adapter {row['name']} saved from step {ck['step']}")

    def on_delete(checkpoint_id):
        from studio import training

        ck = _checkpoint(ws, checkpoint_id)
        with page_errors():
            training.delete_checkpoint(ws, ck["id"])
        gr.Info(f"checkpoint at step {ck['step']} deleted")

    def on_resume(checkpoint_id):
        from workers.dispatch import resume

        ck = _checkpoint(ws, checkpoint_id)
        with page_errors():
            job = resume(ws, ck["job_id"], params_update={"resume_from": ck["path"]})
        gr.Info(f"job {job['id']} resumes from step {ck['step']}")
        return job["id"]

    cancel_btn.click(on_cancel, inputs=job_state)
    listen_btn.click(on_listen, inputs=cp_id, outputs=eval_state)
    timer.tick(lambda j: eval_files(ws, j), inputs=eval_state, outputs=[eval_1, eval_2, eval_state])
    promote_btn.click(on_promote, inputs=[cp_id, adapter_name])
    delete_btn.click(on_delete, inputs=cp_id).then(refresh, inputs=[job_state, drawn_state], outputs=outputs)
    resume_btn.click(on_resume, inputs=cp_id, outputs=job_state)


if __name__ == "__main__":
    with gr.Blocks() as demo:
        build(Workspace.resolve())
    demo.launch()
