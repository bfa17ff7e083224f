"""Jobs: every job's row, refreshed while the page is open."""
from __future__ import annotations

import gradio as gr

from studio import jobs
from studio.workspace import Workspace

TITLE = "Jobs"
COLUMNS = ["id", "kind", "status", "progress", "message", "error", "created_at"]


def rows(ws: Workspace) -> list[list]:
    return [[j["id"], j["kind"], j["status"], f"{100 * j['progress']:.0f}%", j["message"], j["error"] or "",
             j["created_at"]] for j in jobs.list_jobs(ws.db, limit=200)]


def build(ws: Workspace) -> None:
    table = gr.Dataframe(headers=COLUMNS, value=lambda: rows(ws), interactive=False, elem_id="jobs-table")
    gr.Timer(2.0).tick(lambda: rows(ws), outputs=table)


if __name__ == "__main__":
    with gr.Blocks() as demo:
        build(Workspace.resolve())
    demo.launch()
