"""Small widgets shared by the tabs. Gradio's Number shows 0 when it holds nothing, so an id or a
seed that the user has not chosen is a text box: empty, with a placeholder saying what goes there."""
from __future__ import annotations

import gradio as gr

from studio.errors import UserError


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
