"""A file a handler takes is a file the user uploaded: every handler with a file input, called through
Gradio's real API on a running `bark-studio serve`, refuses server paths (the database, the queue,
the owner's password, system files, a folder beside the workspace) without copying them anywhere
and without naming a server path, and still takes a real upload."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from studio import jobs
from tests.conftest import Server

FILE_COMPONENTS = {"File", "Audio", "Image", "Video", "Gallery", "UploadButton", "Model3D"}
MARK = "zebra-secret-7c1f"  # in every planted secret, to find copies of it anywhere


@pytest.fixture(scope="module")
def site(tmp_path_factory, awb_wav):
    root = tmp_path_factory.mktemp("security-files")
    from studio.datasets import store
    from studio.workspace import Workspace

    ws = Workspace.resolve(root / "home")
    store.create_dataset(ws.db, "probe")
    (ws.root / "owner_password").write_text(f"{MARK}-password\n")
    beside = root / "private"  # a folder outside the workspace: a clip and its transcript
    beside.mkdir()
    shutil.copyfile(awb_wav, beside / "clip.wav")
    (beside / "clip.txt").write_text(f"{MARK} transcript\n")
    cache = root / "gradio-cache"
    server = Server(ws, env={"GRADIO_TEMP_DIR": str(cache)})
    yield ws, server, beside, cache, root
    server.stop()


def _file(path) -> dict:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


def _call(client: httpx.Client, api_name: str, data: list) -> tuple[str, dict]:
    """(event, payload) of one call through Gradio's HTTP API."""
    res = client.post(f"/gradio_api/call/{api_name}", json={"data": data})
    assert res.status_code == 200, res.text
    stream = client.get(f"/gradio_api/call/{api_name}/{res.json()['event_id']}").text
    events = [line.split(": ", 1)[1] for line in stream.splitlines() if line.startswith("event: ")]
    payloads = [line.split(": ", 1)[1] for line in stream.splitlines() if line.startswith("data: ")]
    return events[-1], json.loads(payloads[-1]) if payloads else {}


def _file_endpoints(client: httpx.Client) -> dict[str, list[dict]]:
    info = client.get("/gradio_api/info").json()["named_endpoints"]
    return {name.lstrip("/"): ep["parameters"] for name, ep in info.items()
            if any(p.get("component") in FILE_COMPONENTS for p in ep["parameters"])}


def _inputs(params: list[dict], file_value) -> list:
    out = []
    for p in params:
        example = p.get("example_input")
        if p.get("component") in FILE_COMPONENTS:
            out.append([file_value] if isinstance(example, list) else file_value)
        elif p.get("component") == "Textbox":
            out.append("probe_voice")  # a valid voice name, so a handler would get as far as the file
        else:
            out.append(example)
    return out


def test_every_file_input_refuses_server_paths(site):
    ws, server, beside, cache, root = site
    owner = server.owner_client()
    endpoints = _file_endpoints(owner)
    # The Voices tab (preview, make) and the Dataset tab's import: grow this when a tab gains a file input.
    assert {"on_preview", "on_import"} <= set(endpoints) and len(endpoints) >= 3, sorted(endpoints)
    targets = [ws.db_path, ws.queue_path, ws.root / "owner_password", Path("/etc/passwd"),
               Path("/proc/self/environ"), beside / "clip.wav", beside / "clip.txt",
               f"{ws.audio_dir}/../studio.db"]
    for name, params in endpoints.items():
        for target in targets:
            event, payload = _call(owner, name, _inputs(params, _file(target)))
            assert event == "error", (name, target, event, payload)
            message = json.dumps(payload)
            for leak in (str(root), "/etc/", "/proc/", str(cache), "/tmp/"):
                assert leak not in message, (name, target, message)
    copies = [p for p in cache.rglob("*") if p.is_file()]
    for p in copies:
        data = p.read_bytes()
        assert MARK.encode() not in data and b"root:x:0:0" not in data and b"BARK_STUDIO_PASSWORD" not in data \
            and not data.startswith(b"SQLite format 3"), f"{p} is a copy of a server file"
    with ws.db.read() as s:
        assert s.query(jobs.Job).count() == 0  # nothing was imported or made from them


def test_a_real_upload_still_works(site, awb_wav):
    ws, server, _, _, _ = site
    owner = server.owner_client()
    uploaded = owner.post("/gradio_api/upload", files={"files": ("take.wav", awb_wav.read_bytes(), "audio/wav")})
    assert uploaded.status_code == 200, uploaded.text
    path = uploaded.json()[0]
    event, payload = _call(owner, "on_preview", [None, {**_file(path), "orig_name": "take.wav"}, 0, 1])
    assert event == "complete", payload
    assert payload[0]["url"] and payload[0]["path"] != path  # the span, as a new file
