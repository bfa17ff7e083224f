"""Models on this machine: every real preset's components, present or missing, their size and where
they live (models.catalog reads only files: the web process loads no model). Read again each time
the tab holding the panel opens, so a `models download` run meanwhile shows up."""
from __future__ import annotations

import gradio as gr
from gradio.context import Context

from models import catalog

COLUMNS = ["preset", "component", "repo / size name", "state", "size", "where"]


def preset_rows() -> list[list]:
    rows = []
    for preset in catalog.REAL_PRESETS:
        for s in catalog.state(preset):
            state = "present" if s["present"] else "missing: " + ", ".join(s["missing"])
            size = catalog.human_bytes(s["bytes"] if s["present"] else s["approx_bytes"])
            rows.append([preset, s["label"], s["repo"], state, size if s["present"] else f"{size} to download",
                         s["where"]])
    return rows


def summary_md() -> str:
    lines = []
    for preset in catalog.REAL_PRESETS:
        missing = [s["label"] for s in catalog.state(preset) if not s["present"]]
        total = catalog.human_bytes(catalog.total_bytes(preset))
        lines.append(f"- **{preset}**: " + (f"ready (about {total})" if not missing else
                                             f"missing {', '.join(missing)} (about {total} in all): run "
                                             f"`{catalog.DOWNLOAD_HINT.format(preset=preset)}`"))
    lines.append(f"- **{catalog.TINY}**: the test model (random weights, not a voice); nothing to download")
    return "\n".join(lines)


def build() -> None:
    """The panel, inside the current tab (refreshed whenever that tab is selected)."""
    tab = Context.block
    with gr.Accordion("Models on this machine", open=False, elem_id="models-panel"):
        summary = gr.Markdown(summary_md, elem_id="models-summary")
        table = gr.Dataframe(headers=COLUMNS, value=preset_rows, interactive=False, wrap=True,
                             elem_id="models-table")
        refresh = gr.Button("Check again", elem_id="models-refresh", size="sm")
    read = lambda: (summary_md(), preset_rows())  # noqa: E731
    refresh.click(read, outputs=[summary, table])
    if isinstance(tab, gr.Tab):
        tab.select(read, outputs=[summary, table])
