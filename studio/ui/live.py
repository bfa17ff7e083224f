"""Lists that stay current. A dropdown's choices are fixed when the page is built; `keep_current`
refreshes them when the page loads and whenever their tab is opened, so datasets, voices,
adapters, sessions and folders made since (in another tab, by a job, from the CLI) are there."""
from __future__ import annotations

from typing import Callable

import gradio as gr
from gradio.context import Context, get_render_context


def enclosing_tab(block) -> gr.Tab | None:
    while block is not None and not isinstance(block, gr.Tab):
        block = getattr(block, "parent", None)
    return block


def choices_update(choices: list) -> dict:
    """New choices for a dropdown, its chosen value kept (Gradio keeps it when it is still offered)."""
    return gr.update(choices=choices)


def keep_current(outputs, refresh: Callable) -> Callable:
    """Run `refresh()` (returning the outputs' updates) on page load and each time the tab being
    built is opened. Returns `refresh`, to chain after other events too (e.g. a job's end)."""
    tab = enclosing_tab(get_render_context())
    if tab is not None:
        tab.select(refresh, outputs=outputs, queue=False, show_progress="hidden")
    if Context.root_block is not None:
        Context.root_block.load(refresh, outputs=outputs, queue=False, show_progress="hidden")
    return refresh
