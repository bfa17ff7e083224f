"""The Dataset tab's report: the summary (studio.datasets.report) and its three plots (segment
lengths, SNR, loudness), drawn as PNGs by the report module and shown as images."""
from __future__ import annotations

import gradio as gr

from studio.workspace import Workspace

# (the report's plot, its label, element id), in the order report_outputs returns them
PLOTS = (("lengths", "Lengths", "ds-plot-lengths"), ("snr", "SNR", "ds-plot-snr"),
         ("loudness", "Loudness", "ds-plot-lufs"))


def report_outputs(ws: Workspace, name: str | None):
    """(summary markdown, lengths, SNR, loudness images) of a dataset's report."""
    from io import BytesIO

    from PIL import Image

    from studio.datasets.report import build_report, plot_pngs, summary_markdown

    if not name:
        return "Pick or create a dataset.", None, None, None
    report = build_report(ws.db, name)
    pngs = plot_pngs(report)
    return (summary_markdown(report), *(Image.open(BytesIO(pngs[key])) for key, _, _ in PLOTS))


def build(ws: Workspace, ds: gr.Dropdown) -> list:
    """The report panel and its Refresh button; returns its outputs, in report_outputs' order."""
    with gr.Group():
        with gr.Row():
            gr.Markdown("### Report")
            report_btn = gr.Button("Refresh report", size="sm", elem_id="ds-report-refresh", scale=0)
        report_md = gr.Markdown(elem_id="ds-report")
        with gr.Row():
            plots = [gr.Image(label=label, type="pil", interactive=False, elem_id=elem_id)
                     for _, label, elem_id in PLOTS]
    outs = [report_md, *plots]
    report_btn.click(lambda name: report_outputs(ws, name), ds, outs)
    return outs
