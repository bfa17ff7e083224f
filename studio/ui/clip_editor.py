"""The Dataset tab's clip editor: the selected clip's waveform (trim_view), playback, trim,
exclude/delete and their undos, the transcript with Bark's marker palette, the linter's verdict,
the edit history and the clip's prepared segments (segments_view). Actions call studio.datasets.store."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from studio.datasets import store
from studio.datasets.lint import KNOWN_TAGS, lint
from studio.ui import labels_view, segments_view, trim_view
from studio.ui.errors import page_errors
from studio.workspace import Workspace

HISTORY_COLUMNS = ["#", "when", "by", "before", "after", "undone"]
NO_CLIP = "Select a clip in the table."
# Palette: (label, js action). Tags insert at the caret; ♪ wraps the selection (a sung line);
# CAPITALS upper-cases the selection (emphasis).
PALETTE = [(t, "insert") for t in KNOWN_TAGS] + [("♪ … ♪", "wrap"), ("—", "insert"), ("...", "insert"),
                                                 ("CAPITALS", "upper")]
_JS = """(text) => {{
  const ta = document.querySelector('#ds-text textarea');
  const v = (ta ? ta.value : text) || '';
  const a = ta ? ta.selectionStart : v.length, b = ta ? ta.selectionEnd : v.length;
  const sel = v.slice(a, b), mode = {mode}, tok = {tok};
  let mid;
  if (mode === 'wrap') mid = '♪ ' + (sel || '') + ' ♪';
  else if (mode === 'upper') mid = sel.toUpperCase();
  else {{ const pre = (a > 0 && !/\\s$/.test(v.slice(0, a))) ? ' ' : '';
         const post = (b < v.length && !/^\\s/.test(v.slice(b))) ? ' ' : ''; mid = pre + tok + post; }}
  return v.slice(0, a) + mid + v.slice(b);
}}"""


def history_rows(ws: Workspace, clip_id: int | None) -> list[list]:
    if not clip_id:
        return []
    return [[e["id"], e["at"], e["by"], e["before"] or "", e["after"], "yes" if e["undone"] else ""]
            for e in reversed(store.transcript_history(ws.db, clip_id))]


def lint_markdown(ws: Workspace, name: str | None, clip: dict | None) -> str:
    if not clip:
        return ""
    ds = store.get_dataset(ws.db, name) if name else {"allow_free_tags": False, "tags": []}
    issues = lint(clip.get("text"), clip.get("asr_text"), ds["allow_free_tags"], ds["tags"])
    if not issues:
        return "✓ no linter problems"
    return "\n".join(f"- **{i['severity']}**: {i['message']}" for i in issues)


def clip_view(ws: Workspace, name: str | None, clip_id: int | None) -> list:
    """The editor's values for a clip, in the order of build()'s `outs`."""
    if not clip_id:
        return [NO_CLIP, None, trim_view.value(ws, None), None, None, "", "", [],
                segments_view.segments_html(ws, name, None)]
    with page_errors():
        c = store.get_clip(ws.db, clip_id)
    start = c["trim_start"] or 0.0
    end = c["trim_end"] if c["trim_end"] is not None else c["duration"]
    title = (f"**Clip {c['id']}**: {c['name']} · {c['duration']:.2f} s · {c['sample_rate']} Hz · "
             f"{c['channels']} ch · {c['provenance']}" + (" · trimmed" if c["can_undo_trim"] or c["trim_start"] or c["trim_end"] else "")
             + {"excluded": " · **excluded** (Include clip takes it back)",
                "deleted": " · **deleted** (Undo delete restores it)"}.get(c["state"], ""))
    return [title, str(ws.root / c["blob"]), trim_view.value(ws, c), round(start, 3), round(end, 3), c["text"] or "",
            lint_markdown(ws, name, c), history_rows(ws, clip_id), segments_view.segments_html(ws, name, clip_id)]


def build(ws: Workspace, ds: gr.Dropdown) -> SimpleNamespace:
    """The editor's widgets. Returns them, with `outs` (what clip_view fills) and `text` (the
    transcript box); wire() connects the actions once the tab's refresh exists."""
    with gr.Group():
        clip_title = gr.Markdown(NO_CLIP, elem_id="ds-clip-title")
        wave = trim_view.component()  # drag to trim; plays the kept region
        audio = gr.Audio(type="filepath", interactive=False, label="Original (playback)", elem_id="ds-audio")
        with gr.Row():
            trim_start = gr.Number(label="Keep from (s)", elem_id="ds-trim-start", minimum=0)
            trim_end = gr.Number(label="Keep to (s)", elem_id="ds-trim-end", minimum=0)
            trim_btn = gr.Button("Apply trim", elem_id="ds-trim-apply")
            untrim_btn = gr.Button("Undo trim", elem_id="ds-trim-undo")
        segments = segments_view.component()
        with gr.Row():
            exclude_btn = gr.Button("Exclude clip", size="sm", elem_id="ds-exclude")
            include_btn = gr.Button("Include clip", size="sm", elem_id="ds-include")
            delete_btn = gr.Button("Delete clip", size="sm", variant="stop", elem_id="ds-delete")
            undelete_btn = gr.Button("Undo delete", size="sm", elem_id="ds-undelete")
        text = gr.Textbox(label="Transcript (Tab reaches the marker buttons and Save; each button works with Enter)", lines=3,
                          elem_id="ds-text", max_lines=8)
        with gr.Row(elem_id="ds-palette"):
            for label, mode in PALETTE:
                b = gr.Button(label, size="sm", elem_classes=["ds-marker"], min_width=60)
                token = "♪" if mode == "wrap" else label
                b.click(None, inputs=text, outputs=text, js=_JS.format(mode=repr(mode), tok=repr(token)))
            free_tag = gr.Textbox(placeholder="[free tag]", show_label=False, scale=1, elem_id="ds-free-tag", min_width=120)
            free_btn = gr.Button("Insert tag", size="sm", elem_id="ds-free-insert", min_width=60)
        palette_version = labels_view.tag_palette(ws, ds, text)  # the dataset's own tags, as buttons
        with gr.Row():
            save_btn = gr.Button("Save transcript", variant="primary", elem_id="ds-text-save")
            checked_btn = gr.Button("Mark checked", elem_id="ds-text-checked")
            undo_btn = gr.Button("Undo last edit", elem_id="ds-text-undo")
        lint_md = gr.Markdown(elem_id="ds-lint")
        with gr.Accordion("Edit history", open=False):
            history = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, wrap=True, elem_id="ds-history")

    def insert_free(t, tag):
        tag = (tag or "").strip().strip("[]")
        if not tag:
            raise gr.Error("type a tag, e.g. thunder")
        return f"{(t or '').rstrip()} [{tag}]".strip(), ""

    free_btn.click(insert_free, [text, free_tag], [text, free_tag])
    # (button, store action on the clip id and the button's extra inputs, extra inputs)
    actions = [
        (trim_btn, lambda cid, a, b: store.set_trim(ws.db, cid, a, b), [trim_start, trim_end]),
        (untrim_btn, lambda cid: store.undo_trim(ws.db, cid), []),
        (save_btn, lambda cid, t: store.set_transcript(ws.db, cid, t or ""), [text]),
        (exclude_btn, lambda cid: store.exclude_clip(ws.db, cid), []),
        (include_btn, lambda cid: store.exclude_clip(ws.db, cid, undo=True), []),
        (delete_btn, lambda cid: store.delete_clip(ws.db, cid), []),
        (undelete_btn, lambda cid: store.delete_clip(ws.db, cid, undo=True), []),
        (checked_btn, lambda cid: store.mark_checked(ws.db, cid), []),
        (undo_btn, lambda cid: store.undo_transcript(ws.db, cid), []),
    ]
    return SimpleNamespace(outs=[clip_title, audio, wave, trim_start, trim_end, text, lint_md, history, segments],
                           text=text, palette_version=palette_version, actions=actions)


def wire(editor: SimpleNamespace, ds: gr.Dropdown, current_clip: gr.State, after_change, change_outs: list) -> None:
    """Connect the editor's actions: each acts on the selected clip, then `after_change(name, clip_id)`
    refreshes `change_outs`."""
    def guarded(action):
        def run(name, clip_id, *args):
            if not clip_id:
                raise gr.Error("select a clip first")
            with page_errors():
                action(clip_id, *args)
            return after_change(name, clip_id)
        return run

    for button, action, extra in editor.actions:
        button.click(guarded(action), [ds, current_clip, *extra], change_outs)
