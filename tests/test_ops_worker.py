"""Worker supervision against a real `bark-studio serve` and real `bark-studio worker` processes:
the server restarts its embedded worker when it dies, the embedded worker stops when its server
is SIGKILLed, a new consumer keeps the GPU lock of a job that is still alive, and a job queued
with no live worker says so in the CLI and in the studio's job view."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from studio import jobs
from tests.conftest import Consumer, Server, cli
from workers.dispatch import submit, wait_for
from workers.gpu_lock import GpuLock
from workers.queue import queue_for

pytestmark = pytest.mark.timeout(300)
# Workers beat every 2 s here, so "no live worker" shows within 6 s; not shorter: the orphan's beat
# below comes from this test's own thread, which a loaded box may starve for seconds.
HEARTBEAT_S = 2.0


@pytest.fixture
def fast_ws(ws, monkeypatch):
    monkeypatch.setenv("BARK_STUDIO_HEARTBEAT_S", str(HEARTBEAT_S))
    return ws


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _live_worker_pid(ws, other_than: int | None = None, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(w.rsplit(":", 1)[1]) for w in jobs.live_workers(ws.db)]
        pids = [p for p in pids if p != other_than and _alive(p)]
        if pids:
            return pids[0]
        time.sleep(0.2)
    raise AssertionError(f"no live worker (other than {other_than}) within {timeout}s")


def _forked_children(pid: int, workers: int = 1, timeout: float = 90) -> list[int]:
    """The Huey processes a consumer forks (its workers and scheduler) once all have started: it
    registers as live before it forks them."""
    deadline = time.monotonic() + timeout
    while len(children := _children(pid)) < workers + 1:
        assert time.monotonic() < deadline, f"consumer {pid} forked {children} within {timeout}s"
        time.sleep(0.2)
    return children


def _wait_gone(pids: list[int], timeout: float) -> float:
    start = time.monotonic()
    while any(_alive(p) for p in pids):
        assert time.monotonic() - start < timeout, f"still running after {timeout}s: {[p for p in pids if _alive(p)]}"
        time.sleep(0.2)
    return time.monotonic() - start


@pytest.mark.slow
def test_serve_restarts_its_embedded_worker_after_a_sigkill_and_jobs_run_again(fast_ws):
    ws = fast_ws
    server = Server(ws, embedded_workers=1)
    try:
        first = _live_worker_pid(ws)
        huey_children = _forked_children(first)
        os.kill(first, signal.SIGKILL)  # only the consumer: as the kernel's OOM killer would
        _wait_gone(huey_children, timeout=30)  # its forked workers do not linger as orphans
        second = _live_worker_pid(ws, other_than=first, timeout=90)
        assert second != first and server.proc.poll() is None
        done = wait_for(ws, submit(ws, "noop")["id"], poll=0.2, timeout=60)
        assert done["status"] == "succeeded", done
    finally:
        server.stop()
    assert "the embedded worker exited with status -9; restarting it" in open(server.log.name).read()


@pytest.mark.slow
def test_the_embedded_worker_stops_when_its_server_is_sigkilled(fast_ws):
    ws = fast_ws
    server = Server(ws, embedded_workers=1)
    try:
        worker = _live_worker_pid(ws)
        family = [worker, *_forked_children(worker)]
        os.kill(server.proc.pid, signal.SIGKILL)  # the server alone, not its process group
        took = _wait_gone(family, timeout=30)
    finally:
        server.stop()
    assert took < 30
    assert jobs.live_workers(ws.db) == []  # it marked its own row stopped on the way out
    assert "that started this worker is gone; stopping" in open(server.log.name).read()


def test_a_new_consumer_keeps_the_gpu_lock_of_a_job_whose_heartbeat_is_fresh(fast_ws):
    """An orphaned worker still training holds the GPU lock; a consumer started beside it must not
    clear it (that let a second training job onto the same GPU)."""
    ws = fast_ws
    job = jobs.create_job(ws.db, "train", {"dataset": "voice"})
    token = jobs.claim(ws.db, job, "elsewhere:1")
    lock = GpuLock(queue_for(ws))
    assert lock.acquire(ws.db, job) is None and lock.holder() == job
    beating = threading.Event()

    def beat():  # the orphaned worker's heartbeat, still going
        while not beating.wait(HEARTBEAT_S / 2):
            jobs.JobContext(db=ws.db, job_id=job, run_token=token, params={}, workspace=ws).heartbeat()

    threading.Thread(target=beat, daemon=True).start()
    c = Consumer(ws, workers=1)
    try:
        deadline = time.monotonic() + 60
        while "left in place" not in c.output() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert f"held by job {job}, which is still running; left in place" in c.output(), c.output()
        assert lock.holder() == job
        assert jobs.get_job(ws.db, job)["status"] == "running"
    finally:
        beating.set()
        c.stop()


def test_a_job_queued_with_no_live_worker_warns_in_the_cli_and_the_job_view(fast_ws):
    from studio.ui import job_view

    ws = fast_ws
    out = cli("jobs", "ping", "--json", home=ws.root)
    warnings = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: job 1 is queued, but no worker is running"), out.stderr
    shown = job_view.summary_md(job_view.load_job(ws.db, 1))
    assert "no worker is running" in shown and "bark-studio worker" in shown

    c = Consumer(ws, workers=1)
    try:
        assert wait_for(ws, 1, poll=0.2, timeout=60)["status"] == "succeeded"
        quiet = cli("jobs", "ping", "--json", home=ws.root)
        assert quiet.stderr.strip() == ""
    finally:
        c.stop()
