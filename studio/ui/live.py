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


PICKER_POLL_SECONDS = 4.0  # how soon a job's start or end shows in the pickers' labels


def job_picker(db, kinds: tuple[str, ...], job_state: gr.State, label: str = "Job", **kw) -> gr.Dropdown:
    """A dropdown of this tab's running and recent jobs (`kinds`, newest first, labelled by kind,
    name, status and age). Choosing one sets `job_state`, which the tab's job view follows; a job
    the tab launches (a new `job_state`) is shown chosen. The list is read afresh when the page
    loads, when the tab is opened, and when one of its jobs starts or ends."""
    from studio.ui import job_view

    picker = gr.Dropdown(label=label, choices=[], value=None, allow_custom_value=True,
                         info="Running and recent jobs of this tab; pick one to follow it", **kw)
    seen = gr.State(None)  # the jobs' (id, status) pairs the list was last read at

    def fill(current):
        return (gr.update(choices=job_view.job_choices(db, kinds), value=current if current else None),
                job_view.jobs_signature(db, kinds))

    def on_tick(current, signature):
        if job_view.jobs_signature(db, kinds) == signature:
            return gr.skip(), gr.skip()
        return fill(current)

    tab = enclosing_tab(get_render_context())
    for event in ([tab.select] if tab is not None else []) + (
            [Context.root_block.load] if Context.root_block is not None else []) + [job_state.change]:
        event(fill, inputs=job_state, outputs=[picker, seen], queue=False, show_progress="hidden")
    gr.Timer(PICKER_POLL_SECONDS).tick(on_tick, inputs=[job_state, seen], outputs=[picker, seen], queue=False,
                                       show_progress="hidden")  # a cheap read: not behind the queue's work
    picker.input(lambda job_id: job_id, inputs=picker, outputs=job_state)
    return picker
