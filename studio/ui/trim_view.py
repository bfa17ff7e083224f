"""The Dataset tab's waveform: drag on it to choose what a clip keeps, play just that region.

The drawing and the dragging run in the browser (static/trim_view.js) from the envelope the import
job stored, so the web process decodes no audio. A drag writes the "Keep from / Keep to" fields and
typing in them moves the region; "Apply trim" stores them through store.set_trim as before, which
checks them. The clip plays from the workspace through Gradio's owner-only file route."""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from studio.ui import workspace_audio
from studio.workspace import Workspace

SCRIPT = Path(__file__).resolve().parents[2] / "static" / "trim_view.js"
TEMPLATE = """<div class="tv">
  <canvas class="tv-canvas" aria-label="Waveform: drag to choose the kept region"></canvas>
  <div class="tv-bar">
    <button type="button" class="tv-play" disabled>▶ Play kept region</button>
    <span class="tv-info"></span>
    <span class="tv-hint">drag across the waveform to choose what to keep; drag an edge to move it</span>
  </div>
  <audio class="tv-audio" preload="metadata"></audio>
</div>"""
CSS = """
.tv { width: 100%; }
.tv-canvas { display: block; width: 100%; height: 120px; cursor: crosshair; touch-action: none;
  border: 1px solid var(--border-color-primary); border-radius: 6px; background: var(--background-fill-primary); }
.tv-bar { display: flex; flex-wrap: wrap; align-items: center; gap: 10px; margin-top: 6px; }
.tv-play { padding: 4px 12px; border-radius: 6px; border: 1px solid var(--border-color-primary);
  background: var(--button-secondary-background-fill); color: var(--body-text-color); cursor: pointer; }
.tv-play:disabled { opacity: 0.5; cursor: default; }
.tv-info { font-size: 13px; color: var(--body-text-color); }
.tv-hint { font-size: 12px; font-style: italic; color: var(--body-text-color); }
"""


def value(ws: Workspace, clip: dict | None) -> str:
    """The component's value for a clip (from store.get_clip): its envelope, kept region and audio URL."""
    if not clip:
        return ""
    start = clip["trim_start"] or 0.0
    end = clip["trim_end"] if clip["trim_end"] is not None else clip["duration"]
    return json.dumps({"duration": clip["duration"], "peaks": clip.get("peaks") or [], "start": round(start, 3),
                       "end": round(end, 3), "src": workspace_audio.url(ws, clip["blob"])})


def component() -> gr.HTML:
    return gr.HTML("", html_template=TEMPLATE, css_template=CSS, js_on_load=SCRIPT.read_text(),
                   label="Waveform (drag to choose the kept region)", elem_id="ds-wave")
