"""The one rule for a file a handler receives: it is something the user uploaded through the page,
so it lies in Gradio's upload folder. Gradio applies the same rule before a handler runs (the
studio marks its Blocks launched, studio.server); this check at each file input keeps it if that
ever stops, and its message names the file, never a server path."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

REFUSED = "only files uploaded through this page are accepted"


def uploaded_file(path) -> str:
    """The path of a file the user uploaded, or gr.Error."""
    from gradio.utils import get_upload_folder, is_in_or_equal

    raw = path if isinstance(path, str) else getattr(path, "path", None) or getattr(path, "name", None)
    if not raw:
        raise gr.Error(REFUSED)
    resolved = Path(raw).resolve()
    if not is_in_or_equal(resolved, Path(get_upload_folder()).resolve()) or not resolved.is_file():
        raise gr.Error(f"{Path(raw).name}: {REFUSED}")
    return str(resolved)


def uploaded_files(paths) -> list[str]:
    return [uploaded_file(p) for p in paths or []]
