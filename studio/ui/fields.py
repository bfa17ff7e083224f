"""Small widgets shared by the tabs. Gradio's Number shows 0 when it holds nothing, so an id or a
seed that the user has not chosen is a text box: empty, with a placeholder saying what goes there."""
from __future__ import annotations

import json

import gradio as gr

from studio.errors import UserError


NO_ADAPTER = "(none)"  # an adapter slot left (or set back to) empty


def adapter_choices(ws) -> list[str]:
    """An adapter slot's choices: empty, then every installed adapter."""
    from studio import training

    return [NO_ADAPTER] + [a["name"] for a in training.list_adapters(ws)]


def id_box(label: str, placeholder: str = "pick a row above", **kw) -> gr.Textbox:
    return gr.Textbox(label=label, placeholder=placeholder, max_lines=1, **kw)


def parse_int(value, what: str) -> int | None:
    """'' or None -> None; digits -> int; anything else is the user's mistake, named."""
    if value in (None, ""):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise UserError(f"{what} must be a whole number, not {value!r}") from None


def insert_at_caret_js(elem_id: str, token: str) -> str:
    """A button's client-side handler: put `token` at the caret of the text box `elem_id` (spaced
    from its neighbours) and leave the caret after it. No server round trip, so nothing typed
    meanwhile is lost."""
    return """(text) => {
  const ta = document.querySelector('#%s textarea');
  const v = ta ? ta.value : (text || '');
  const a = ta ? ta.selectionStart : v.length, b = ta ? ta.selectionEnd : v.length;
  const pre = (a > 0 && !/\\s$/.test(v.slice(0, a))) ? ' ' : '';
  const post = ' ';  // the caret lands after it, ready for the next word
  const out = v.slice(0, a) + pre + %s + post + v.slice(b);
  if (ta) {
    const caret = a + pre.length + %d + post.length;
    ta.value = out;
    ta.dispatchEvent(new Event('input', {bubbles: true}));
    ta.focus();
    ta.setSelectionRange(caret, caret);
    requestAnimationFrame(() => { ta.focus(); ta.setSelectionRange(caret, caret); });
  }
  return out;
}""" % (elem_id, json.dumps(token), len(token))
