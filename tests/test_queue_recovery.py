"""Crash recovery, cancel, resume, SIGINT and the GPU lock, with a real `bark-studio worker`
process running real training jobs (the tiny preset, one stage) on SqliteHuey and on a real
redis-server, with a real prepare job beside them.

Heartbeats are shortened to HEARTBEAT_S through BARK_STUDIO_HEARTBEAT_S, so "interrupted within
three intervals" is checked in seconds. The out-of-memory case uses the documented fault switch
BARK_STUDIO_FAULT_OOM_AT_STEP (this machine has no GPU to exhaust): the real training job raises
torch.OutOfMemoryError at that step, as CUDA would, and everything after that is real."""
from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import timedelta

import pytest

from studio import jobs
from studio.db import utcnow
from tests.conftest import Consumer, RedisServer, cli
from tests.queue_support import (HEARTBEAT_S, checkpoints_of, copy_template, maps_torch,
                                 prepare_job, train_job, wait_status, wait_step)
from workers.dispatch import cancel, submit, wait_for
from workers.gpu_lock import GpuLock
from workers.queue import queue_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # generous: shared 2-core CI boxes are slow
LONG = 500  # steps of a job that is always stopped before it ends


@pytest.fixture
def tws(train_template, tmp_path, monkeypatch):
    """A workspace copied from the template (dataset prepared and tokenized), heartbeats short."""
    from studio.workspace import Workspace

    monkeypatch.setenv("BARK_STUDIO_HEARTBEAT_S", str(HEARTBEAT_S))
    monkeypatch.delenv("BARK_STUDIO_REDIS_URL", raising=False)
    home = copy_template(train_template, tmp_path / "home")
    monkeypatch.setenv("BARK_STUDIO_HOME", str(home))
    return Workspace.resolve(home)


def _gpu_lock_and_light_job_beside(ws, speech_dir, second_steps: int = 10) -> tuple[int, int]:
    """Two training jobs and a prepare job: the second training job waits for the GPU lock while
    the prepare job runs and ends beside the first. A third, queued, is cancelled (revoked)."""
    first = train_job(ws, LONG)
    wait_step(ws, first, 1)  # first holds the GPU before the others queue (two workers would race for it)
    second = train_job(ws, second_steps)
    revoked = train_job(ws, LONG)
    light = prepare_job(ws, speech_dir)
    out = json.loads(cli("jobs", "cancel", str(revoked), "--json", home=ws.root).stdout)
    assert (out["id"], out["status"]) == (revoked, "cancelled")  # queued: cancelled at once, delivery revoked
    light_done = wait_for(ws, light, poll=0.3, timeout=600)
    assert light_done["status"] == "succeeded", light_done
    now = {j: jobs.get_job(ws.db, j) for j in (first, second)}
    assert now[first]["status"] == "running", "the prepare job should have ended while training ran"
    assert now[second]["status"] == "queued" and "waiting for the GPU" in now[second]["message"]
    assert GpuLock(queue_for(ws)).holder() == first
    assert jobs.get_job(ws.db, revoked)["attempts"] == 0
    return first, second


def _cancel_running_with_checkpoint(ws, job: int) -> dict:
    out = cancel(ws, job)
    assert out["status"] == "running" and out["cancel_requested"]
    stopped = wait_status(ws, job, "cancelled", timeout=300)
    assert stopped["step"] < LONG and max(checkpoints_of(ws, job, rows_too=True)) == stopped["step"]  # saved there
    return stopped


def _sigkill_and_restart(ws, c: Consumer, job: int) -> tuple[Consumer, list[int], int]:
    """SIGKILL the consumer mid-training: the row turns interrupted within three heartbeats, and a
    new consumer flushes the GPU lock the killed one left behind. Returns it, the saved steps and
    the step the killed run had reached."""
    lock = GpuLock(queue_for(ws))  # made first: opening the queue may write to it
    wait_step(ws, job, 3)
    c.freeze()  # at once: on a fast box a short job could otherwise end before the kill
    assert jobs.get_job(ws.db, job)["status"] == "running" and lock.holder() == job
    c.kill()  # SIGKILL to the consumer, its workers and the training process
    # Three heartbeats after the last beat, which came before the kill, any read shows the job
    # interrupted. The read is started after that moment, so however slow a loaded box makes the
    # read itself, the timing holds (a wall-clock bound on polling would not). A read that a loaded
    # box delays past a laxer rule would hide that rule, so the rule itself is checked too.
    assert jobs.stale_after_seconds() <= 3 * HEARTBEAT_S
    with ws.db.read() as s:
        last_beat = s.get(jobs.Job, job).heartbeat_at
    time.sleep(max(0.0, (last_beat + timedelta(seconds=3 * HEARTBEAT_S) - utcnow()).total_seconds()) + 0.2)
    row = jobs.get_job(ws.db, job)
    assert row["status"] == "interrupted", f"still {row['status']} three heartbeats after its last one"
    assert "heartbeat" in row["error"] and row["attempts"] == 1
    saved = checkpoints_of(ws, job)
    assert saved and lock.holder() == job  # the killed consumer left its lock behind
    c = Consumer(ws, workers=2)
    try:
        # the worker registers as live before Huey's consumer flushes stale locks: wait for the flush
        deadline = time.monotonic() + 60
        while not re.search(r"Found stale locks: .*gpu:", c.output()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert re.search(r"Found stale locks: .*gpu:", c.output()), c.output()
        assert lock.holder() is None
    except BaseException:
        c.stop()  # the caller still holds the killed consumer: do not leave this one running
        raise
    return c, saved, row["step"]


def _resume_once(ws, job: int, saved: list[int], killed_step: int) -> None:
    out = json.loads(cli("jobs", "resume", str(job), "--json", home=ws.root).stdout)
    assert (out["id"], out["status"]) == (job, "queued")
    running = wait_step(ws, job, killed_step + 1)  # past where the killed run got to
    assert running["attempts"] == 2  # the killed run and exactly one resumed run
    resumed = running["log_tail"].split("resuming from", 1)[1].splitlines()[0]
    assert f"at step {max(saved)}" in resumed  # from the last checkpoint, not from scratch


def test_gpu_lock_cancel_sigkill_and_resume_on_sqlite(tws, speech_dir):
    ws = tws
    c = Consumer(ws, workers=2)
    try:
        first, second = _gpu_lock_and_light_job_beside(ws, speech_dir)
        assert maps_torch(c.proc.pid) is False  # the consumer parent never imported torch
        _cancel_running_with_checkpoint(ws, first)
        wait_step(ws, second, 1)
        with ws.db.read() as s:  # the second training job took the GPU only once the first let go
            assert s.get(jobs.Job, second).started_at >= s.get(jobs.Job, first).finished_at
        c, saved, killed_step = _sigkill_and_restart(ws, c, second)
        _resume_once(ws, second, saved, killed_step)
        done = wait_for(ws, second, poll=0.3, timeout=600)
    finally:
        c.stop()
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2 and done["log_tail"].count("running in a spawned process") == 2
    assert done["result"]["step"] == done["result"]["max_steps"] == 10
    listed = {j["id"]: j["status"] for j in json.loads(cli("jobs", "list", "--json", home=ws.root).stdout)}
    assert listed[first] == "cancelled" and listed[second] == "succeeded"


def test_gpu_lock_cancel_sigkill_resume_and_sigint_on_redis(tws, speech_dir, tmp_path, monkeypatch):
    server = RedisServer(tmp_path / "redis")
    monkeypatch.setenv("BARK_STUDIO_REDIS_URL", server.url)
    ws = tws
    assert type(queue_for(ws)).__name__ == "PriorityRedisHuey"
    c = Consumer(ws, workers=2)
    try:
        first, second = _gpu_lock_and_light_job_beside(ws, speech_dir, second_steps=LONG)
        _cancel_running_with_checkpoint(ws, first)
        c, saved, killed_step = _sigkill_and_restart(ws, c, second)
        _resume_once(ws, second, saved, killed_step)
        os.killpg(c.proc.pid, signal.SIGINT)  # Ctrl-C in the worker's terminal
        c.proc.wait(timeout=300)
    finally:
        c.stop()
        server.stop()
    after = jobs.get_job(ws.db, second)
    assert after["status"] == "interrupted" and after["step"] < LONG, after  # resumable, not failed
    assert max(checkpoints_of(ws, second, rows_too=True)) == after["step"]  # it saved the step it stopped at
    assert "torch imported in the parent: False" in c.output()
    assert not ws.queue_path.exists()  # the queue lived in Redis


def test_out_of_memory_fails_the_job_readably_and_the_worker_carries_on(tws, monkeypatch):
    ws = tws
    monkeypatch.setenv("BARK_STUDIO_FAULT_OOM_AT_STEP", "2")
    c = Consumer(ws, workers=1)
    try:
        job = train_job(ws, 20)
        failed = wait_for(ws, job, poll=0.3, timeout=600)
        after = wait_for(ws, submit(ws, "noop")["id"], poll=0.3, timeout=60)
    finally:
        c.stop()
    assert failed["status"] == "failed" and failed["failure_reason"] == "oom", failed
    assert failed["error"].startswith("out of memory") and "\n" not in failed["error"]
    assert "Traceback" in failed["error_detail"] and "OutOfMemoryError" in failed["error_detail"]
    assert after["status"] == "succeeded"  # the consumer survived and ran the next job

    shown = cli("jobs", "show", str(job), home=ws.root).stdout
    assert "error [oom]: out of memory" in shown and "Traceback" not in shown and "--traceback" in shown
    unfolded = cli("jobs", "show", str(job), "--traceback", home=ws.root).stdout
    assert "Traceback (most recent call last)" in unfolded
    as_json = json.loads(cli("jobs", "show", str(job), "--json", home=ws.root).stdout)
    assert (as_json["id"], as_json["status"], as_json["failure_reason"]) == (job, "failed", "oom")
    assert as_json["error"] == failed["error"] and as_json["error_detail"] == failed["error_detail"]
