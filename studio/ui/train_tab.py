"""Train: pick a dataset (its report's warnings shown), a base model, stages and a preset; see what
the run will cost; launch it in one click; watch train and validation loss, lr and grad-norm live;
listen to each checkpoint's evaluation audio; promote a checkpoint to an adapter, delete one,
cancel the run, or resume it from a chosen checkpoint.

The web process never imports torch: the presets' values live in studio.training_presets (a test
keeps them equal to models.training.PRESETS), and everything heavy is the `train` job."""
from __future__ import annotations

import gradio as gr

from studio import jobs, train_cost
from studio.errors import UserError
from studio.training_presets import ADVANCED, BASE_MODELS, PRESET_LABELS, PRESETS, STAGES
from studio.ui import job_view
from studio.workspace import Workspace

TITLE = "Train"
POLL_SECONDS = 1.5
CHECKPOINT_COLUMNS = ["step", "best", "val_loss", "train_loss", "path"]


# Domain calls (thin; each turns UserError into gr.Error) -----------------------------------------

def dataset_choices(ws: Workspace) -> list[str]:
    from studio.datasets.store import list_datasets

    return [d["name"] for d in list_datasets(ws.db)]


def dataset_info(ws: Workspace, name: str | None) -> tuple[str, dict]:
    """The report summary with its warnings, and the numbers the estimate needs."""
    if not name:
        return "_Choose a dataset._", {"n_items": 0, "seconds": 0.0}
    from studio.datasets.report import build_report

    try:
        report = build_report(ws.db, name)
    except UserError as exc:
        raise gr.Error(str(exc)) from None
    lines = [f"**{name}**: {report['clips']} clips, {report['training_segments']} training segments, "
             f"{report['training_duration_s'] / 60:.1f} min of trainable audio"]
    lines += [f"- ⚠️ {w}" for w in report["warnings"]]
    return "\n".join(lines), {"n_items": report["training_segments"], "seconds": report["training_duration_s"]}


def preset_values(label: str) -> list:
    values = PRESETS[PRESET_LABELS[label]]
    return [values.get(f.name, f.default) for f in ADVANCED]


def settings_from(preset_label: str, advanced: list) -> dict:
    """The preset, overridden by every advanced field whose value differs from it."""
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


def launch(ws: Workspace, dataset: str, base: str, stages: list[str], preset_label: str, advanced: list) -> int:
    from workers.dispatch import submit

    if not dataset:
        raise gr.Error("choose a dataset to train on")
    if not stages:
        raise gr.Error("choose at least one stage to train")
    params = {"dataset": dataset, "base_model": base, "stages": list(stages), "preset": PRESET_LABELS[preset_label],
              "config": settings_from(preset_label, advanced)}
    try:
        return submit(ws, "train", params)["id"]
    except UserError as exc:
        raise gr.Error(str(exc)) from None


def checkpoints(ws: Workspace, job_id) -> list[dict]:
    from studio import training

    if job_id in (None, ""):
        return []
    return training.list_checkpoints(ws, int(job_id))


def checkpoint_rows(cps: list[dict]) -> list[list]:
    return [[c["step"], "★ best" if c.get("is_best") else "", _num(c.get("val_loss")), _num(c.get("train_loss")),
             c["path"]] for c in cps]


def _num(x) -> str:
    return "" if x is None else f"{x:.4f}"


def eval_audio(ws: Workspace, job_id, step) -> list[tuple[str, str]]:
    """(file, caption) of the chosen checkpoint's evaluation clips (fixed sentences and seeds)."""
    for c in checkpoints(ws, job_id):
        if step not in (None, "") and c["step"] == int(step):
            return [(str(ws.root / a["path"]), a.get("text", "")) for a in c.get("eval_audio") or []]
    return []


# The tab -----------------------------------------------------------------------------------------

def build(ws: Workspace) -> None:
    job_state = gr.State(None)  # the job this browser watches
    info_state = gr.State({})
    with gr.Row():
        with gr.Column(scale=2):
            dataset = gr.Dropdown(label="Dataset", choices=dataset_choices(ws), elem_id="train-dataset")
            dataset_md = gr.Markdown(elem_id="train-dataset-report")
            base = gr.Dropdown(label="Base model", choices=BASE_MODELS, value=BASE_MODELS[0], allow_custom_value=True,
                               info="A preset, a hub id or a local folder. `tiny` is a random test model, never a voice.",
                               elem_id="train-base")
            stages = gr.CheckboxGroup(label="Stages", choices=list(STAGES), value=list(STAGES),
                                      info="semantic: what is said and how; coarse + fine: the voice and sound.",
                                      elem_id="train-stages")
            preset = gr.Radio(label="Preset", choices=list(PRESET_LABELS), value="Quick LoRA", elem_id="train-preset")
            with gr.Accordion("Advanced settings", open=False):
                advanced = [f.component() for f in ADVANCED]
            estimate = gr.Markdown(elem_id="train-estimate")
            launch_btn = gr.Button("Launch training", variant="primary", elem_id="train-launch")
        with gr.Column(scale=3):
            status = gr.Markdown("_No training job yet._", elem_id="train-status")
            with gr.Row():
                watch = gr.Number(label="Watching job", precision=0, elem_id="train-job")
                cancel_btn = gr.Button("Cancel", elem_id="train-cancel", scale=0)
            loss_plot = gr.LinePlot(x="step", y="loss", color="series", title="Loss (train and validation)",
                                    elem_id="train-loss-plot", height=260)
            with gr.Row():
                lr_plot = gr.LinePlot(x="step", y="lr", title="Learning rate", elem_id="train-lr-plot", height=200)
                gn_plot = gr.LinePlot(x="step", y="grad_norm", title="Gradient norm", elem_id="train-gn-plot", height=200)
            with gr.Accordion("Traceback", open=False):
                trace = gr.Code(label="Traceback", language=None, elem_id="train-traceback")
            gr.Markdown("### Checkpoints")
            cp_table = gr.Dataframe(headers=CHECKPOINT_COLUMNS, interactive=False, elem_id="train-checkpoints")
            with gr.Row():
                cp_step = gr.Number(label="Checkpoint step", precision=0, elem_id="train-cp-step")
                adapter_name = gr.Textbox(label="Adapter name", elem_id="train-adapter-name")
            with gr.Row():
                promote_btn = gr.Button("Promote to adapter", elem_id="train-promote")
                delete_btn = gr.Button("Delete checkpoint", elem_id="train-delete")
                resume_btn = gr.Button("Resume from this checkpoint", elem_id="train-resume")
            eval_gallery = gr.Column()
            with eval_gallery:
                eval_audio_1 = gr.Audio(label="Evaluation audio 1", interactive=False, elem_id="train-eval-1")
                eval_audio_2 = gr.Audio(label="Evaluation audio 2", interactive=False, elem_id="train-eval-2")

    est_inputs = [info_state, base, stages, preset, *advanced]

    def on_dataset(name):
        md, info = dataset_info(ws, name)
        return md, info

    def on_estimate(info, b, st, p, *adv):
        return estimate_md(ws, info, b, st, p, list(adv))

    dataset.focus(lambda: gr.update(choices=dataset_choices(ws)), outputs=dataset)
    dataset.change(on_dataset, inputs=dataset, outputs=[dataset_md, info_state]).then(
        on_estimate, inputs=est_inputs, outputs=estimate)
    preset.change(preset_values, inputs=preset, outputs=advanced).then(on_estimate, inputs=est_inputs, outputs=estimate)
    for comp in (base, stages, *advanced):
        comp.change(on_estimate, inputs=est_inputs, outputs=estimate)

    def on_launch(d, b, st, p, *adv):
        job_id = launch(ws, d, b, st, p, list(adv))
        gr.Info(f"training job {job_id} queued")
        return job_id, job_id

    launch_btn.click(on_launch, inputs=[dataset, base, stages, preset, *advanced], outputs=[job_state, watch])
    watch.change(lambda j: j, inputs=watch, outputs=job_state)

    def refresh(job_id):
        job = job_view.load_job(ws.db, job_id)
        losses, lr, gn = job_view.curves(ws.db, job_id) if job else job_view.curves(ws.db, None)
        try:
            cps = checkpoints(ws, job_id) if job else []
        except UserError:
            cps = []
        return (job_view.summary_md(job) if job else "_No training job yet._", losses, lr, gn,
                job_view.traceback_text(job), checkpoint_rows(cps))

    outputs = [status, loss_plot, lr_plot, gn_plot, trace, cp_table]
    gr.Timer(POLL_SECONDS).tick(refresh, inputs=job_state, outputs=outputs)
    job_state.change(refresh, inputs=job_state, outputs=outputs)

    def pick_checkpoint(evt: gr.SelectData):
        return evt.row_value[0] if evt.row_value else None

    cp_table.select(pick_checkpoint, outputs=cp_step)

    def show_eval(job_id, step):
        files = eval_audio(ws, job_id, step)
        first = files[0][0] if files else None
        second = files[1][0] if len(files) > 1 else None
        return first, second

    cp_step.change(show_eval, inputs=[job_state, cp_step], outputs=[eval_audio_1, eval_audio_2])

    def on_cancel(job_id):
        from workers.dispatch import cancel

        if job_id in (None, ""):
            raise gr.Error("no training job to cancel")
        job = cancel(ws, int(job_id))
        gr.Info("cancelled" if job["status"] == "cancelled" else "stopping after this step (a checkpoint is saved)")

    def on_promote(job_id, step, name):
        from studio import training

        try:
            adapter = training.promote(ws, int(job_id), int(step), name)
        except (UserError, TypeError, ValueError) as exc:
            raise gr.Error(str(exc) or "choose a checkpoint and a name") from None
        gr.Info(f"adapter {adapter['name']} saved")

    def on_delete(job_id, step):
        from studio import training

        try:
            training.delete_checkpoint(ws, int(job_id), int(step))
        except (UserError, TypeError, ValueError) as exc:
            raise gr.Error(str(exc) or "choose a checkpoint") from None
        gr.Info(f"checkpoint at step {int(step)} deleted")

    def on_resume(job_id, step):
        from workers.dispatch import resume

        try:
            job = resume(ws, int(job_id), params_update={"resume_from_step": int(step)} if step not in (None, "") else None)
        except (UserError, TypeError, ValueError) as exc:
            raise gr.Error(str(exc) or "choose a job") from None
        gr.Info(f"job {job['id']} resumes from step {int(step) if step not in (None, '') else 'its last checkpoint'}")

    cancel_btn.click(on_cancel, inputs=job_state)
    promote_btn.click(on_promote, inputs=[job_state, cp_step, adapter_name])
    delete_btn.click(on_delete, inputs=[job_state, cp_step]).then(refresh, inputs=job_state, outputs=outputs)
    resume_btn.click(on_resume, inputs=[job_state, cp_step])


if __name__ == "__main__":
    with gr.Blocks() as demo:
        build(Workspace.resolve())
    demo.launch()
