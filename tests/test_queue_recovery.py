"""Crash recovery, cancel, SIGINT and the GPU lock, with a real `bark-studio worker` process
running real training jobs (the tiny preset) on SqliteHuey and on a real redis-server.

Heartbeats are shortened to HEARTBEAT_S through BARK_STUDIO_HEARTBEAT_S, so "interrupted within
three intervals" is checked in seconds. The out-of-memory case uses the documented fault switch
BARK_STUDIO_FAULT_OOM_AT_STEP (this machine has no GPU to exhaust): the real training job raises
torch.OutOfMemoryError at that step, exactly as CUDA would."""
from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from studio import jobs
from tests.conftest import Consumer, cli
from tests.queue_support import (HEARTBEAT_S, checkpoints_of, maps_torch, train_job, wait_status,
                                 wait_step)
from workers.dispatch import cancel, resume, submit, wait_for
from workers.gpu_lock import GpuLock
from workers.queue import queue_for

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def short_heartbeat(monkeypatch):
    monkeypatch.setenv("BARK_STUDIO_HEARTBEAT_S", str(HEARTBEAT_S))


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_sigkill_then_resume_runs_once_from_the_last_checkpoint(backend, ws, request):
    if backend == "redis":
        request.getfixturevalue("redis_url")
    c = Consumer(ws, workers=2)
    job = train_job(ws, steps=400)
    wait_step(ws, job, 12)
    lock = GpuLock(queue_for(ws))
    assert lock.holder() == job  # the GPU lock is held by the running training job
    c.kill()  # SIGKILL to the consumer, its workers and the training process
    killed_at = time.monotonic()
    row = wait_status(ws, job, "interrupted", timeout=6 * HEARTBEAT_S + 10)
    assert time.monotonic() - killed_at <= 3 * HEARTBEAT_S + 1.5, "not marked interrupted within three heartbeats"
    assert "heartbeat" in row["error"]
    saved = checkpoints_of(ws, job)
    assert saved, "the killed run had saved no checkpoint"
    assert lock.holder() == job  # the killed consumer left its lock behind

    c = Consumer(ws, workers=2)
    try:
        assert re.search(r"Found stale locks: .*gpu:", c.output()), c.output()  # flushed at start
        assert lock.holder() is None
        out = json.loads(cli("jobs", "resume", str(job), "--json", home=ws.root).stdout)
        assert out["id"] == job and out["status"] == "queued"
        done = wait_for(ws, job, poll=0.3, timeout=240)
    finally:
        c.stop()
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2  # the killed run and exactly one resumed run
    assert done["log_tail"].count("running in a spawned process") == 2
    assert done["result"]["step"] == 400 and done["result"]["resumed_from_step"] >= min(s for s in saved)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_second_training_job_waits_for_the_gpu_while_prepare_runs_beside(backend, ws, request, speech_dir):
    if backend == "redis":
        request.getfixturevalue("redis_url")
    from tests.queue_support import prepare_job

    c = Consumer(ws, workers=2)
    try:
        first = train_job(ws, steps=120)
        second = train_job(ws, steps=20)
        wait_step(ws, first, 2)
        light = prepare_job(ws, speech_dir)
        light_done = wait_for(ws, light, poll=0.3, timeout=120)
        first_now = jobs.get_job(ws.db, first)
        second_now = jobs.get_job(ws.db, second)
        done = [wait_for(ws, j, poll=0.3, timeout=240) for j in (first, second)]
    finally:
        c.stop()
    assert light_done["status"] == "succeeded", light_done
    assert first_now["status"] == "running", "prepare should have finished while training ran"
    assert second_now["status"] == "queued" and "waiting for the GPU" in second_now["message"]
    assert [d["status"] for d in done] == ["succeeded", "succeeded"]
    with ws.db.read() as s:
        a, b = s.get(jobs.Job, first), s.get(jobs.Job, second)
        assert b.started_at >= a.finished_at, "two training jobs ran on one GPU at once"


def test_cancel_and_sigint_stop_at_a_step_with_a_checkpoint_and_the_parent_never_loads_torch(ws):
    c = Consumer(ws, workers=2)
    queued_behind = None
    try:
        running = train_job(ws, steps=400)
        queued_behind = train_job(ws, steps=400)
        wait_step(ws, running, 6)
        assert maps_torch(c.proc.pid) is False  # the consumer parent never imported torch
        revoked = json.loads(cli("jobs", "cancel", str(queued_behind), "--json", home=ws.root).stdout)
        assert revoked["status"] == "cancelled"  # queued: cancelled at once, its delivery revoked
        out = cancel(ws, running)
        assert out["status"] == "running" and out["cancel_requested"]
        stopped = wait_status(ws, running, "cancelled", timeout=60)
        assert stopped["step"] < 400 and checkpoints_of(ws, running)
        assert max(checkpoints_of(ws, running)) == stopped["step"]  # it saved the step it stopped at

        sigint_job = train_job(ws, steps=400)
        wait_step(ws, sigint_job, 6)
        os.killpg(c.proc.pid, signal.SIGINT)  # Ctrl-C in the worker's terminal
        c.proc.wait(timeout=90)
    finally:
        c.stop()
    after = jobs.get_job(ws.db, sigint_job)
    assert after["status"] == "interrupted" and after["step"] < 400
    assert max(checkpoints_of(ws, sigint_job)) == after["step"]
    assert "torch imported in the parent: False" in c.output()
    assert jobs.get_job(ws.db, queued_behind)["attempts"] == 0


def test_out_of_memory_fails_the_job_readably_and_the_worker_carries_on(ws, monkeypatch):
    monkeypatch.setenv("BARK_STUDIO_FAULT_OOM_AT_STEP", "3")
    c = Consumer(ws, workers=1)
    try:
        job = train_job(ws, steps=50)
        failed = wait_for(ws, job, poll=0.3, timeout=120)
        after = wait_for(ws, submit(ws, "noop")["id"], poll=0.3, timeout=60)
    finally:
        c.stop()
    assert failed["status"] == "failed" and failed["failure_reason"] == "oom"
    assert failed["error"].startswith("out of memory") and "\n" not in failed["error"]
    assert "Traceback" in failed["error_detail"] and "OutOfMemoryError" in failed["error_detail"]
    assert after["status"] == "succeeded"  # the consumer survived and ran the next job

    shown = cli("jobs", "show", str(job), home=ws.root).stdout
    assert "error [oom]: out of memory" in shown and "Traceback" not in shown and "--traceback" in shown
    unfolded = cli("jobs", "show", str(job), "--traceback", home=ws.root).stdout
    assert "Traceback (most recent call last)" in unfolded
    as_json = json.loads(cli("jobs", "show", str(job), "--json", home=ws.root).stdout)
    assert (as_json["id"], as_json["status"], as_json["failure_reason"]) == (job, "failed", "oom")
    listed = json.loads(cli("jobs", "list", "--json", home=ws.root).stdout)
    assert {j["id"]: j["status"] for j in listed}[job] == "failed"
    assert Path(ws.root).exists()
