"""Leftovers: uploads live in the studio's own owner-only folder and go once staged for their job;
what killed imports left in tmp/ is cleaned when a worker starts (not what a live job or process
still owns); symlinks in an imported folder are named as skipped; a voice upload is decoded in
its job, not in the web process, and its staged copy goes with the job."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import time

import pytest

from studio import jobs
from studio.datasets import store
from tests.conftest import Consumer, Server, cli

pytestmark = pytest.mark.timeout(300)


def test_symlinks_in_an_imported_folder_are_named_as_skipped(ws, awb_wav, slt_wav, tmp_path):
    folder = tmp_path / "takes"
    folder.mkdir()
    (folder / "real.wav").write_bytes(awb_wav.read_bytes())
    (folder / "linked.wav").symlink_to(slt_wav)
    cli("dataset", "create", "voice", home=ws.root)
    out = cli("dataset", "import", "voice", str(folder), home=ws.root)
    assert "imported 1 clip(s)" in out.stdout
    assert "skipped: takes/linked.wav: a symbolic link: links are not followed" in out.stdout, out.stdout
    report = json.loads(cli("dataset", "import", "voice", str(folder), "--json", home=ws.root).stdout)
    assert [s["file"] for s in report["skipped"]] == ["takes/linked.wav"]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_worker_start_cleans_what_killed_imports_left_but_not_what_is_still_owned(ws):
    old = time.time() - 3600
    dead_work = ws.tmp_dir / f"import-{_dead_pid()}-abc"
    live_work = ws.tmp_dir / f"import-{os.getpid()}-def"  # this process is alive: still importing
    orphan = ws.tmp_dir / "uploads" / "0rphan"
    queued = ws.tmp_dir / "uploads" / "qu3ued"
    fresh = ws.tmp_dir / "uploads" / "fr3sh"  # staged a moment ago; its job row may not exist yet
    for d in (dead_work, live_work, orphan, queued, fresh):
        (d / "upload").mkdir(parents=True)
        (d / "upload" / "a.wav").write_bytes(b"RIFF")
    for d in (orphan, queued):
        os.utime(d, (old, old))
    store.create_dataset(ws.db, "voice")
    jobs.create_job(ws.db, "import", {"dataset": "voice", "paths": ["tmp/uploads/qu3ued/upload"], "staged": True})
    c = Consumer(ws, workers=1)
    try:
        deadline = time.monotonic() + 120   # the consumer's start on a 2-core box at load 8
        while (dead_work.exists() or orphan.exists()) and time.monotonic() < deadline:  # two clean-ups, either order
            time.sleep(0.2)
    finally:
        c.stop()
    assert not dead_work.exists() and not orphan.exists()
    assert live_work.exists() and queued.exists() and fresh.exists()
    assert "removed what killed jobs left in tmp/" in c.output()


def test_a_voice_upload_is_decoded_in_its_job_and_its_staged_copy_goes(ws, tmp_path):
    from studio.ui import voices_tab
    from workers.runner import execute

    notes = tmp_path / "notes.wav"
    notes.write_text("these are my notes, not a recording\n")
    job_id = voices_tab.make_voice(ws, "bogus", None, str(notes), 0, 0, "tiny")  # the web process: no decoding
    staged = ws.inside(jobs.get_job(ws.db, job_id)["params"]["clip"])
    assert staged.read_bytes() == notes.read_bytes()
    done = execute(ws, job_id)  # the worker's part
    assert done["status"] == "failed" and done["error"].startswith("notes.wav: not an audio file"), done
    assert not staged.exists() and not list((ws.tmp_dir / "uploads").glob("*"))


@pytest.mark.slow
def test_serve_keeps_uploads_private_and_drops_them_once_staged(ws, awb_wav):
    leftover = ws.tmp_dir / "gradio" / "previous-server" / "take.wav"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"RIFF")
    store.create_dataset(ws.db, "voice")
    server = Server(ws)
    try:
        client = server.owner_client()
        with open(awb_wav, "rb") as f:
            up = client.post("/gradio_api/upload", files=[("files", (awb_wav.name, f, "audio/wav"))])
        assert up.status_code == 200, up.text
        (uploaded,) = up.json()
        private = ws.tmp_dir / "gradio"
        assert os.path.commonpath([uploaded, private]) == str(private)  # not the shared /tmp/gradio
        assert stat.S_IMODE(private.stat().st_mode) == 0o700 and not leftover.exists()
        event = client.post("/gradio_api/call/on_import", json={"data": [
            "voice", [{"path": uploaded, "meta": {"_type": "gradio.FileData"}}], "", "", "", "human"]})
        assert event.status_code == 200, event.text
        stream = client.get(f"/gradio_api/call/on_import/{event.json()['event_id']}").text
    finally:
        server.stop()
    assert "event: complete" in stream, stream
    assert not os.path.exists(uploaded)  # the job reads its staged copy; Gradio's is gone
    (job,) = jobs.list_jobs(ws.db, kind="import")
    staged = [ws.inside(p) for p in job["params"]["paths"]]
    assert staged and all(p.exists() for p in staged)
