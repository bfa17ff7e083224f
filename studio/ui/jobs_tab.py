"""Jobs: every job's row, refreshed while the page is open; pick one to see its progress, error
(traceback folded away), log tail, and to cancel or resume it."""
from __future__ import annotations

import gradio as gr

from studio import fleet, jobs
from studio.ui import fields, job_view, models_panel
from studio.ui.errors import page_errors
from studio.workspace import Workspace

TITLE = "Jobs"
COLUMNS = ["id", "kind", "status", "progress", "message", "error", "created_at"]
WORKER_COLUMNS = ["worker", "host", "GPUs", "current job", "last heartbeat"]


def rows(ws: Workspace) -> list[list]:
    return [[j["id"], j["kind"], j["status"], f"{100 * j['progress']:.0f}%", j["message"], j["error"] or "",
             j["created_at"]] for j in jobs.list_jobs(ws.db, limit=200)]


def worker_rows(ws: Workspace) -> list[list]:
    """The live workers, as `bark-studio workers` lists them."""
    return [[w["id"], w["host"], ",".join(w["gpus"]) or "-",
             ", ".join(f"#{j['id']} {j['kind']}" for j in w["jobs"]) or "idle",
             f"{w['heartbeat_at']} ({w['heartbeat_age_s']:.0f}s ago)"] for w in fleet.live_workers(ws.db)]


def detail(ws: Workspace, job_id):
    job = job_view.load_job(ws.db, job_id)
    return job_view.summary_md(job), job_view.traceback_text(job), (job or {}).get("log_tail", "")


def cancel(ws: Workspace, job_id):
    from workers.dispatch import cancel as cancel_job

    with page_errors(TypeError, ValueError, default="choose a job first"):
        job = cancel_job(ws, int(job_id))
    gr.Info(f"job {job['id']}: {'cancelled' if job['status'] == 'cancelled' else 'stopping at its next step'}")


def resume(ws: Workspace, job_id):
    from workers.dispatch import resume as resume_job

    with page_errors(TypeError, ValueError, default="choose a job first"):
        job = resume_job(ws, int(job_id))
    gr.Info(f"job {job['id']} queued again; it continues from its last checkpoint")


def build(ws: Workspace) -> None:
    table = gr.Dataframe(headers=COLUMNS, value=lambda: rows(ws), interactive=False, elem_id="jobs-table")
    with gr.Row():
        job_id = fields.id_box("Job", placeholder="click a row above", elem_id="jobs-selected", scale=1)
        cancel_btn = gr.Button("Cancel job", elem_id="jobs-cancel", scale=0)
        resume_btn = gr.Button("Resume job", elem_id="jobs-resume", scale=0)
    summary = gr.Markdown(elem_id="jobs-summary")
    with gr.Accordion("Traceback", open=False):
        trace = gr.Code(label="Traceback", language=None, elem_id="jobs-traceback")
    with gr.Accordion("Log", open=False):
        log_tail = gr.Code(label="Log tail", language=None, elem_id="jobs-log")

    def pick(evt: gr.SelectData):
        return evt.row_value[0] if evt.row_value else None

    table.select(pick, outputs=job_id)
    show = lambda i: detail(ws, i)  # noqa: E731
    job_id.change(show, inputs=job_id, outputs=[summary, trace, log_tail])
    cancel_btn.click(lambda i: cancel(ws, i), inputs=job_id).then(show, job_id, [summary, trace, log_tail])
    resume_btn.click(lambda i: resume(ws, i), inputs=job_id).then(show, job_id, [summary, trace, log_tail])
    timer = gr.Timer(2.0)
    timer.tick(lambda: rows(ws), outputs=table)
    timer.tick(show, inputs=job_id, outputs=[summary, trace, log_tail])
    with gr.Accordion("Workers", open=True):
        worker_table = gr.Dataframe(headers=WORKER_COLUMNS, value=lambda: worker_rows(ws), interactive=False,
                                    elem_id="jobs-workers")
    timer.tick(lambda: worker_rows(ws), outputs=worker_table)
    models_panel.build()  # every preset: present or missing, size, where


if __name__ == "__main__":
    with gr.Blocks() as demo:
        build(Workspace.resolve())
    demo.launch()
