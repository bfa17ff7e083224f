"""Gradio hardened, through the running studio: its file routes serve the workspace's audio and
nothing else (not the database, not `../` or `%2e%2e` paths or their case variants, even for the
logged-in owner), and an upload one byte over the limit is refused."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Server

LIMIT_MB = 1


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """One workspace and one server for both tests (a studio start costs seconds)."""
    from studio.workspace import Workspace

    return Workspace.resolve(tmp_path_factory.mktemp("curation-server"))


@pytest.fixture(scope="module")
def server(ws, awb_wav):
    ws.store_file(awb_wav)
    s = Server(ws, env={"BARK_STUDIO_MAX_UPLOAD_MB": str(LIMIT_MB)})
    yield s
    s.stop()


def test_file_routes_serve_audio_only(ws, server, awb_wav):
    client = server.owner_client()
    _, blob = ws.store_file(awb_wav)
    audio = str(ws.audio_dir)
    ok = client.get(f"/gradio_api/file={blob}")
    assert ok.status_code == 200 and ok.content == awb_wav.read_bytes()  # the route works for audio
    db = ws.db_path.read_bytes()[:16]
    forbidden = [str(ws.db_path), str(ws.queue_path), f"{audio}/../studio.db", f"{audio}/%2e%2e/studio.db",
                 f"{audio}/%2E%2E/studio.db", f"{audio}/%2e%2e%2fstudio.db", f"{audio}/..%2fstudio.db",
                 f"{audio}/%252e%252e/studio.db", str(ws.root / "STUDIO.DB"), str(ws.root / "Studio.db"),
                 f"{audio}/../STUDIO.DB", f"{audio}/../studio.db-wal", f"{audio}/../owner_password", "/etc/passwd",
                 f"{audio}/../../../../etc/passwd"]
    for path in forbidden:
        for prefix in ("/gradio_api/file=", "/file=", "/gradio_api/file/", "/static/../"):
            res = client.get(prefix + path)
            assert res.status_code >= 400, (prefix, path, res.status_code)
            assert not res.content.startswith(db) and b"root:" not in res.content
    anonymous = server.owner_client()
    anonymous.cookies.clear()
    assert anonymous.get(f"/gradio_api/file={blob}").status_code >= 400  # nobody else gets the audio either


def test_upload_one_byte_over_the_limit_is_refused(server):
    client = server.owner_client()
    limit = LIMIT_MB * 1024 * 1024
    at = client.post("/gradio_api/upload", files={"files": ("ok.wav", b"\0" * limit, "audio/wav")})
    assert at.status_code == 200, at.text
    (kept,) = map(Path, at.json())
    assert kept.name == "ok.wav" and kept.stat().st_size == limit  # the upload at the limit is stored whole
    over = client.post("/gradio_api/upload", files={"files": ("big.wav", b"\0" * (limit + 1), "audio/wav")})
    assert over.status_code in (400, 413), over.text
    assert "big.wav" not in over.text  # no stored path handed back for the refused upload
    assert list(kept.parents[1].rglob("big.wav")) == []  # and nothing of it left in the upload folder
