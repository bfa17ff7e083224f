"""A prepare killed mid-way (SIGKILL to the `--wait` process that runs it) leaves its version marked
interrupted with the reason, not 'running' for good; resuming the job finishes that same version."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from studio.datasets.models import PreparedVersion, Segment
from studio.workspace import Workspace
from tests.curation_audio import long_speech, sox

# Short, so the killed run shows as interrupted soon; not shorter: a live run starved by a loaded box
# must not look dead (it is swept as interrupted 2.5 beats after its last one).
HEARTBEAT_S = 2.0


def _cli(env, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "studio.cli", *args, "--json"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_a_killed_prepare_is_marked_interrupted_and_resume_finishes_the_same_version(tmp_path, awb_wav, slt_wav):
    home = tmp_path / "home"
    env = {**os.environ, "BARK_STUDIO_HOME": str(home), "BARK_STUDIO_HEARTBEAT_S": str(HEARTBEAT_S)}
    speech = long_speech(tmp_path)
    louder = [sox(speech, tmp_path / f"take{i}.wav", "vol", str(0.5 + 0.1 * i)) for i in range(5)]
    _cli(env, "dataset", "create", "crash")
    _cli(env, "dataset", "import", "crash", str(awb_wav), str(slt_wav), *map(str, louder))
    ws = Workspace.resolve(home)

    prepare = subprocess.Popen([sys.executable, "-m", "studio.cli", "dataset", "prepare", "crash", "--wait"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while True:  # kill it once the first clip's segments are recorded, with clips still to go
        with ws.db.read() as s:
            recorded = s.scalar(select(func.count(Segment.id)))
        if recorded or prepare.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert prepare.poll() is None, "prepare finished before it could be killed"
    prepare.send_signal(signal.SIGKILL)
    prepare.wait()

    deadline = time.monotonic() + 3 * HEARTBEAT_S + 120  # each `dataset show` takes seconds at load 8
    while True:
        versions = _cli(env, "dataset", "show", "crash")["versions"]
        if versions[0]["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(HEARTBEAT_S / 2)
    [version] = versions
    assert version["status"] == "interrupted", version
    job_id = version["job_id"]
    assert f"prepare job {job_id} stopped (interrupted)" in version["interrupted"]
    assert f"bark-studio jobs resume {job_id}" in version["interrupted"]
    assert _cli(env, "jobs", "show", str(job_id))["status"] == "interrupted"

    resumed = _cli(env, "jobs", "resume", str(job_id), "--wait")
    assert resumed["status"] == "succeeded", resumed
    report = _cli(env, "dataset", "show", "crash")
    assert [(v["version"], v["status"]) for v in report["versions"]] == [(1, "ready")]
    assert report["prepared"]["stats"]["clips"] == 7
    with ws.db.read() as s:
        per_clip = s.execute(select(Segment.clip_id, Segment.index, func.count()).group_by(Segment.clip_id, Segment.index))
        assert all(n == 1 for _, _, n in per_clip)  # the clips done before the kill were not prepared twice
        assert s.scalar(select(func.count(PreparedVersion.id))) == 1
    assert all(o["segments"] for o in report["prepared_clips"])
    assert report["prepared"]["stats"]["segments"] == report["segments"]
