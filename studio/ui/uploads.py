"""Files a handler receives from the page.

The one rule: such a file is something the user uploaded through the page, so it lies in Gradio's
upload folder (GRADIO_TEMP_DIR, which `serve` makes the workspace's own owner-only tmp/gradio).
Gradio applies the same rule before a handler runs (the studio marks its Blocks launched,
studio.server); the check at each file input keeps it if that ever stops, and its message names the
file, never a server path. Once a job's copy is staged, Gradio's copy goes."""
from __future__ import annotations

import os
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


def discard_upload(path: str | os.PathLike) -> None:
    """Delete a file Gradio received (and its per-upload folder once empty); paths outside the
    upload folder are left alone."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()).resolve()
    p = Path(path).resolve()
    if folder not in p.parents:
        return
    p.unlink(missing_ok=True)
    if p.parent != folder:
        try:
            p.parent.rmdir()
        except OSError:
            pass  # not empty
