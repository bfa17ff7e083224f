"""The one adapter between the studio's errors and Gradio's: a UserError (one clear line naming
what was wrong) raised in a handler is shown in the page as a gr.Error, without a traceback.

    with page_errors():
        job = submit(ws, "train", params)
"""
from __future__ import annotations

import contextlib

import gradio as gr

from studio.errors import UserError


class page_errors(contextlib.ContextDecorator):  # noqa: N801 - used as `with page_errors():`, like a function
    """Turn UserError (and any of `also`) into gr.Error; an empty message reads `default`.
    Anything else is a real fault: it propagates, and Gradio logs its traceback."""

    def __init__(self, *also: type[BaseException], default: str = ""):
        self.kinds = (UserError, *also)
        self.default = default

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is not None and isinstance(exc, self.kinds):
            raise gr.Error(str(exc) or self.default) from None
        return False
