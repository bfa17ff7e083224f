"""Assembles the studio from its tabs. Each tab module defines TITLE and build(ws), and keeps
per-user state in gr.State, never in module globals."""
from __future__ import annotations

import importlib

import gradio as gr

from studio.workspace import Workspace

# In the order a user walks through them.
TAB_MODULES = [
    "studio.ui.dataset_tab",
    "studio.ui.voices_tab",
    "studio.ui.train_tab",
    "studio.ui.generate_tab",
    "studio.ui.listen_tab",
    "studio.ui.experiments_tab",
    "studio.ui.jobs_tab",
]


def build_studio(ws: Workspace) -> gr.Blocks:
    with gr.Blocks(title="Bark Studio", analytics_enabled=False) as blocks:
        gr.Markdown("# Bark Studio")
        with gr.Tabs(overflow_behavior="wrap"):  # on a phone every tab stays in view, none behind "..."
            for name in TAB_MODULES:
                module = importlib.import_module(name)
                with gr.Tab(module.TITLE, id=module.TITLE.lower()):
                    module.build(ws)
    return blocks
