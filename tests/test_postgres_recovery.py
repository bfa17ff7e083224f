"""Queue recovery across hosts on PostgreSQL and Redis: two workers, each with its own mount path
of one shared workspace folder (bind mounts) and its own GPU. A training job runs on the first;
the first is SIGKILLed; the job turns interrupted, and resumed, the second worker continues it
from the checkpoint the first wrote, read through its own path."""
from __future__ import annotations

import json
import subprocess

import pytest

from studio import fleet, jobs
from studio.workspace import Workspace
from tests.conftest import Consumer, cli
from tests.queue_support import (HEARTBEAT_S, build_template, checkpoints_of, train_job, wait_status,
                                 wait_step)
from workers.dispatch import cancel

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
LONG = 500  # steps of a job that is always stopped before it ends


@pytest.fixture
def two_mounts(ws, tmp_path):
    """Two paths onto the workspace folder, as two hosts mount one NFS export (bind mounts: a
    symlink would resolve to the same path, which proves nothing about paths)."""
    ws.ensure()
    mounts = [tmp_path / "host-a" / "studio", tmp_path / "host-b" / "studio"]
    made = []
    try:
        for m in mounts:
            m.mkdir(parents=True)
            proc = subprocess.run(["mount", "--bind", str(ws.root), str(m)], capture_output=True, text=True)
            if proc.returncode != 0:
                pytest.skip(f"bind mounts need root here: {proc.stderr.strip()}")
            made.append(m)
        yield mounts
    finally:
        for m in reversed(made):
            subprocess.run(["umount", "-l", str(m)], check=False)


def test_a_killed_hosts_training_resumes_on_the_other_host_through_its_own_mount(
        ws, redis_url, postgres_url, two_mounts, speech_dir, monkeypatch):
    monkeypatch.setenv("BARK_STUDIO_HEARTBEAT_S", str(HEARTBEAT_S))
    build_template(ws.root, speech_dir)  # dataset rows in PostgreSQL, its files in the shared folder
    ws_a, ws_b = (Workspace.resolve(m) for m in two_mounts)
    assert ws_a.root != ws_b.root != ws.root
    a = Consumer(ws_a, workers=1, env={"BARK_STUDIO_GPU": "0"})
    b = None
    try:
        job = train_job(ws_a, LONG)  # submitted on host A
        wait_step(ws, job, 3)
        b = Consumer(ws_b, workers=1, env={"BARK_STUDIO_GPU": "1"})
        a.kill()  # host A is gone: its consumer, worker and training process
        row = wait_status(ws, job, "interrupted", timeout=6 * HEARTBEAT_S + 20)
        saved = checkpoints_of(ws, job)
        assert saved and "heartbeat" in row["error"]
        out = json.loads(cli("jobs", "resume", str(job), "--json", home=two_mounts[1]).stdout)
        assert (out["id"], out["status"]) == (job, "queued")
        running = wait_step(ws, job, row["step"] + 1)
        assert running["attempts"] == 2
        resumed = running["log_tail"].split("resuming from", 1)[1].splitlines()[0]
        assert f"at step {max(saved)}" in resumed  # the checkpoint host A wrote, found by host B
        (on_b,) = [w for w in fleet.live_workers(ws.db) if w["pid"] == b.proc.pid]
        assert [j["id"] for j in on_b["jobs"]] == [job] and on_b["gpus"] == ["1"]
        cancel(ws, job)
        stopped = wait_status(ws, job, "cancelled", timeout=300)
    finally:
        if b is not None:
            b.stop()
        a.stop()
    assert max(checkpoints_of(ws, job, rows_too=True)) == stopped["step"] > row["step"]
