"""The Dataset tab's segment player: the selected clip's segments in the newest prepared version,
each playable, with its cut times, length, SNR and, for a dropped one, why it was dropped.

Rows come from studio.datasets.segments (the same as `bark-studio dataset segments`); each
<audio> plays a stored segment through Gradio's owner-only file route, its URL built here from
the segment's row."""
from __future__ import annotations

import html

import gradio as gr

from studio.datasets.segments import clip_segments, segment_status
from studio.errors import UserError
from studio.ui import workspace_audio
from studio.workspace import Workspace

CSS = """
.sv-table { width: 100%; border-collapse: collapse; font-size: 13px; }
.sv-table th, .sv-table td { padding: 4px 6px; border-bottom: 1px solid var(--border-color-primary); text-align: left;
  vertical-align: middle; }
.sv-table th { white-space: nowrap; }
.sv-table td.sv-outcome { min-width: 11em; }
.sv-table td.sv-text { min-width: 14em; }
.sv-table td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.sv-table audio { height: 32px; width: 210px; max-width: 42vw; }
.sv-why { color: #b45309; font-weight: 600; }
.sv-note { font-size: 13px; margin: 4px 0; }
.sv-wrap { overflow-x: auto; }
"""
# one segment plays at a time
ONE_AT_A_TIME = """element.addEventListener('play', (evt) => {
  element.querySelectorAll('audio').forEach((a) => { if (a !== evt.target) a.pause(); });
}, true);"""


def _text(value) -> str:
    """Escaped for HTML, and braces and dollars too: the value goes through Gradio's template."""
    return html.escape(str(value)).replace("{", "&#123;").replace("}", "&#125;").replace("$", "&#36;")


def _seconds(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def segments_html(ws: Workspace, dataset: str | None, clip_id: int | None) -> str:
    if not dataset or not clip_id:
        return '<p class="sv-note">Select a clip to list its prepared segments.</p>'
    try:
        out = clip_segments(ws.db, dataset, clip_id)
    except UserError as exc:
        return f'<p class="sv-note">{_text(exc)}</p>'
    if not out["segments"]:
        return f'<p class="sv-note">{_text(out["note"])}</p>'
    kept = sum(1 for g in out["segments"] if g["kept"])
    rows = []
    for g in out["segments"]:
        status = segment_status(g)
        outcome = "kept" if g["kept"] else f'<span class="sv-why">{_text(status)}</span>'
        src = _text(workspace_audio.url(ws, g["blob"]))
        rows.append(
            f'<tr class="{"sv-kept" if g["kept"] else "sv-dropped"}" data-index="{g["index"]}">'
            f'<td class="num">{g["index"] + 1}</td><td class="num">{_seconds(g["start"])}</td>'
            f'<td class="num">{_seconds(g["end"])}</td><td class="num">{_seconds(g["duration"])} s</td>'
            f'<td class="num">{_seconds(g["snr_db"], 1)}</td><td class="sv-outcome">{outcome}</td>'
            f'<td><audio controls preload="none" src="{src}"></audio></td><td class="sv-text">{_text(g["text"] or "")}</td></tr>')
    return (f'<p class="sv-note">Version {out["version"]}: {kept} of {len(out["segments"])} segment(s) kept. '
            f'Times (s) are on the original clip.</p><div class="sv-wrap"><table class="sv-table">'
            f'<thead><tr><th>#</th><th>from</th><th>to</th><th>length</th><th>SNR dB</th><th>outcome</th>'
            f'<th>play</th><th>text</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def component() -> gr.HTML:
    with gr.Accordion("Prepared segments of this clip", open=True, elem_id="ds-segments-box"):
        return gr.HTML(segments_html(None, None, None), css_template=CSS, js_on_load=ONE_AT_A_TIME,
                       elem_id="ds-segments")
