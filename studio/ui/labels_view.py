"""The Dataset tab's labels editor and the dataset's own tags. Per clip: its labels as one line
(`speaker=alice accent=0.3 emotion=angry`), saved as written. In bulk: pick clips (or select them
by a name glob) and apply labels to all of them, or unset names. The dataset's declared tags get
buttons in the transcript editor's palette. Handlers call studio.datasets.labels / .tags and turn
UserError into gr.Error (page_errors); mounted from dataset_tab.build()."""
from __future__ import annotations

import gradio as gr

from studio.datasets import store
from studio.datasets.labels import (clip_labels, format_labels, name_matches, replace_clip_labels, set_labels,
                                   split_tokens)
from studio.datasets.tags import bracketed, update_tags
from studio.errors import UserError
from studio.ui.errors import page_errors
from studio.workspace import Workspace

HELP = ("Labels are `name=value`: a number makes a numeric label (`accent=0.3`), anything else a category "
        "(`emotion=angry`); `speaker` is always a category. Training conditions on them with `--condition NAME`.")
# Insert a tag at the transcript's caret (the palette's own buttons do the same in clip_editor).
_INSERT_JS = """(text) => {{
  const ta = document.querySelector('#ds-text textarea');
  const v = (ta ? ta.value : text) || '';
  const a = ta ? ta.selectionStart : v.length, b = ta ? ta.selectionEnd : v.length;
  const pre = (a > 0 && !/\\s$/.test(v.slice(0, a))) ? ' ' : '';
  const post = (b < v.length && !/^\\s/.test(v.slice(b))) ? ' ' : '';
  return v.slice(0, a) + pre + {tok} + post + v.slice(b);
}}"""


def clip_choices(ws: Workspace, name: str | None) -> list[tuple[str, int]]:
    if not name:
        return []
    return [(f"{c['id']}: {c['name']}", c["id"]) for c in store.list_clips(ws.db, name)]


def clip_labels_text(ws: Workspace, clip_id: int | None) -> str:
    return format_labels(clip_labels(store.get_clip(ws.db, clip_id))) if clip_id else ""


def declared_tags(ws: Workspace, name: str | None) -> list[str]:
    return store.get_dataset(ws.db, name)["tags"] if name else []


def tag_palette(ws: Workspace, ds: gr.Dropdown, text: gr.Textbox) -> gr.State:
    """Buttons for the dataset's declared tags, beside Bark's markers. Returns the State that,
    when bumped, redraws them (after a tag is declared)."""
    version = gr.State(0)

    @gr.render(inputs=[ds, version])
    def _buttons(name, _version):
        tags = bracketed(declared_tags(ws, name))
        with gr.Row(elem_id="lb-tag-palette"):
            if not tags:
                gr.Markdown("No tags of this dataset's own yet: declare one under Labels and tags.", elem_id="lb-no-tags")
            for tag in tags:
                b = gr.Button(tag, size="sm", elem_classes=["ds-marker", "lb-tag"], min_width=60, scale=0)
                b.click(None, inputs=text, outputs=text, js=_INSERT_JS.format(tok=repr(tag)))

    return version


def build(ws: Workspace, ds: gr.Dropdown, clips: gr.Dataframe, current_clip: gr.State, palette_version: gr.State,
          after_change, change_outs: list) -> None:
    """The labels and tags editor. `after_change(name, clip_id)` refreshes `change_outs` (the clip
    table, the clip view and the report) after labels change."""
    with gr.Accordion("Labels and tags", open=True, elem_id="lb-panel"):
        gr.Markdown(HELP)
        clip_md = gr.Markdown("Select a clip to edit its labels.", elem_id="lb-clip-title")
        with gr.Row():
            clip_box = gr.Textbox(label="Selected clip's labels", placeholder="speaker=alice accent=0.3",
                                  elem_id="lb-clip-labels", scale=4)
            save_btn = gr.Button("Save clip labels", elem_id="lb-clip-save", scale=1)
        with gr.Row():
            picked = gr.Dropdown(choices=[], value=[], multiselect=True, label="Clips to label in bulk",
                                 elem_id="lb-bulk-clips", scale=4)
            glob = gr.Textbox(label="Select by name", placeholder="p225_*", elem_id="lb-glob", scale=1)
            glob_btn = gr.Button("Select matching", elem_id="lb-glob-select", scale=1)
        with gr.Row():
            bulk_box = gr.Textbox(label="Labels to apply (name=value ...), or names to unset",
                                  placeholder="emotion=angry intensity=0.9", elem_id="lb-bulk-labels", scale=4)
            apply_btn = gr.Button("Apply to selected", variant="primary", elem_id="lb-bulk-apply", scale=1)
            unset_btn = gr.Button("Unset from selected", elem_id="lb-bulk-unset", scale=1)
        with gr.Row():
            new_tag = gr.Textbox(label="Declare a tag of this dataset", placeholder="rain intensifies",
                                 elem_id="lb-tag-new", scale=4)
            declare_btn = gr.Button("Declare tag", elem_id="lb-tag-declare", scale=1)
        tags_md = gr.Markdown(elem_id="lb-tags")
        status = gr.Markdown(elem_id="lb-status")

    def tags_line(name):
        tags = bracketed(declared_tags(ws, name))
        return f"Declared tags: {' '.join(tags)}" if tags else "Declared tags: none"

    def refresh_choices(name, chosen):
        choices = clip_choices(ws, name)
        ids = {cid for _, cid in choices}
        return gr.Dropdown(choices=choices, value=[c for c in (chosen or []) if c in ids]), tags_line(name)

    for source in (clips, ds):  # an import, a delete, another dataset, a page load
        source.change(refresh_choices, [ds, picked], [picked, tags_md])

    def show_clip(clip_id):
        if not clip_id:
            return "Select a clip to edit its labels.", ""
        c = store.get_clip(ws.db, clip_id)
        return f"Labels of clip {c['id']} ({c['name']}):", format_labels(clip_labels(c))

    current_clip.change(show_clip, current_clip, [clip_md, clip_box])

    def select_matching(name, pattern, chosen):
        pattern = (pattern or "").strip()
        if not pattern:
            raise gr.Error("type a name glob such as p225_*")
        hits = [c["id"] for c in store.list_clips(ws.db, name) if name_matches(c["name"], pattern)]
        if not hits:
            raise gr.Error(f"no clip of {name} matches {pattern!r}")
        return sorted(set(chosen or []) | set(hits))

    glob_btn.click(select_matching, [ds, glob, picked], picked)

    def save(name, clip_id, text):
        if not clip_id:
            raise gr.Error("select a clip first")
        with page_errors():
            row = replace_clip_labels(ws.db, clip_id, text or "")
        return [format_labels(row["labels"]), f"clip {clip_id}: {format_labels(row['labels']) or 'no labels'}",
                *after_change(name, clip_id)]

    save_btn.click(save, [ds, current_clip, clip_box], [clip_box, status, *change_outs])

    def bulk(unset: bool):
        def run(name, chosen, text, clip_id):
            if not chosen:
                raise gr.Error("pick the clips to label first (or select them by name)")
            with page_errors():
                tokens = split_tokens(text)
                if not tokens:
                    raise UserError("type labels to apply (emotion=angry intensity=0.9) or names to unset")
                rows = set_labels(ws.db, name, [str(c) for c in chosen], [] if unset else tokens, tokens if unset else ())
            done = f"{'unset' if unset else 'labelled'} {len(rows)} clip(s): {text}"
            return [done, clip_labels_text(ws, clip_id), *after_change(name, clip_id)]
        return run

    apply_btn.click(bulk(False), [ds, picked, bulk_box, current_clip], [status, clip_box, *change_outs])
    unset_btn.click(bulk(True), [ds, picked, bulk_box, current_clip], [status, clip_box, *change_outs])

    def declare(name, tag, version, clip_id):
        if not name:
            raise gr.Error("pick a dataset first")
        with page_errors():
            update_tags(ws.db, name, add=[tag or ""])
        return ["", version + 1, tags_line(name), *after_change(name, clip_id)]  # the linter now accepts it

    declare_btn.click(declare, [ds, new_tag, palette_version, current_clip],
                      [new_tag, palette_version, tags_md, *change_outs])
