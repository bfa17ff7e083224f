"""Playback URLs for stored audio, for pages that play it with their own <audio> elements.

Gradio's file route serves the workspace's audio folder (an allowed path) to the logged-in owner
only, as it does for every gr.Audio; a URL is built here from a row's stored blob path, never from
anything a browser sent."""
from __future__ import annotations

from urllib.parse import quote

from studio.workspace import Workspace

FILE_ROUTE = "gradio_api/file="  # relative: resolves under the studio's own mount point


def url(ws: Workspace, blob: str) -> str:
    """The URL of a stored audio file (`blob`: relative to the workspace, inside its audio folder)."""
    path = ws.inside(blob)
    if ws.audio_dir.resolve() not in path.parents:
        raise ValueError(f"{blob!r} is not stored audio")  # a bug, not user input: rows hold audio paths
    return FILE_ROUTE + quote(str(path))
