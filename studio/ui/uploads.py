"""Browser uploads: Gradio keeps each in its upload folder (GRADIO_TEMP_DIR, which `serve` makes
the workspace's own owner-only tmp/gradio). Once a job's copy is staged, Gradio's copy goes."""
from __future__ import annotations

import os
from pathlib import Path


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
