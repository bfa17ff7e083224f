"""One training job over several ranks (models.distributed), tested without GPUs: torchrun starts 2
CPU ranks on the gloo backend (BARK_STUDIO_DIST_BACKEND=gloo, the documented test-only mode) and
runs the same recipe a GPU job runs, DDP for LoRA. Through the real CLI and a real `bark-studio
worker`: the loss curve equals the one-process run with the same global batch; cancel stops every
rank with a checkpoint; the run resumes at another world size (2 -> 1 -> 2 -> 1); a SIGKILLed rank,
or a SIGKILLed worker, ends the job interrupted with no process left behind. Also: N GPU locks taken together or not at
all by two real processes, the data order under N ranks, and the one-line refusal of --gpus 2 on
a machine without two GPUs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from studio import jobs
from tests.conftest import Consumer, cli
from tests.queue_support import HEARTBEAT_S, checkpoints_of, copy_template, wait_status, wait_step
from workers.gpu_lock import GpuLocks
from workers.queue import queue_for

GLOO = {"BARK_STUDIO_DIST_BACKEND": "gloo"}


# --- submit-time refusal --------------------------------------------------------------------------

def test_gpus_2_on_a_machine_without_two_gpus_is_refused_in_one_line(ws, monkeypatch):
    import gradio as gr

    from studio.ui import train_tab

    monkeypatch.delenv("BARK_STUDIO_DIST_BACKEND", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # whatever this machine has: none visible
    proc = cli("train", "--dataset", "voice", "--gpus", "2", home=ws.root, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: --gpus 2: this machine has no GPU; a training job over several ranks needs one per rank"]
    with pytest.raises(gr.Error, match="--gpus 2: this machine has no GPU"):
        train_tab.launch(ws, "voice", "tiny", ["coarse"], train_tab.DEFAULT_PRESET,
                         train_tab.preset_values(train_tab.DEFAULT_PRESET), gpus=2)
    assert jobs.list_jobs(ws.db) == []  # nothing queued

    from models.world import gpus_refusal

    assert "has 1 GPU(s)" in gpus_refusal(2, count=1)
    assert gpus_refusal(2, count=2) is None and gpus_refusal(1, count=0) is None
    monkeypatch.setenv("BARK_STUDIO_DIST_BACKEND", "gloo")  # the test-only CPU mode takes any number
    assert gpus_refusal(2, count=0) is None


# --- the data order -------------------------------------------------------------------------------

def test_ranks_see_each_example_once_per_epoch_and_together_the_one_process_batches():
    from models.distributed import rank_slice
    from models.training import StageSampler

    n, per_rank, world = 10, 2, 2  # 10 examples, a global micro-batch of 4: epochs end mid-batch
    one, ranks = StageSampler(n, seed=3, stage_index=1), [StageSampler(n, seed=3, stage_index=1) for _ in range(world)]
    seen = [[] for _ in range(world)]
    for _ in range(5):  # 5 micro-batches = 20 draws = 2 epochs
        whole = one.take(per_rank * world)
        parts = [rank_slice(ranks[r].take(per_rank * world), r, world) for r in range(world)]
        assert sorted(sum(parts, [])) == sorted(whole)  # the ranks split the one-process batch
        for r in range(world):
            seen[r] += parts[r]
    both = seen[0] + seen[1]
    assert sorted(both) == sorted(list(range(n)) * 2)  # each example once per epoch, between the ranks
    assert not set(seen[0][:per_rank]) & set(seen[1][:per_rank])


# --- N locks together or not at all ---------------------------------------------------------------

LOCKER = textwrap.dedent("""
    import json, sys, time
    from studio.workspace import Workspace
    from workers.gpu_lock import GpuLocks
    from workers.queue import queue_for

    home, job_id, order, out, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4], int(sys.argv[5])
    ws = Workspace.resolve(home)
    locks = GpuLocks(queue_for(ws), order)
    held, busy = [], 0
    deadline = time.monotonic() + 60
    while len(held) < rounds and time.monotonic() < deadline:
        if locks.acquire(ws.db, job_id) is None:
            start = time.time()
            assert locks.holders() == [job_id, job_id], locks.holders()
            time.sleep(0.02)
            held.append((start, time.time()))
            locks.release(job_id)
        else:
            busy += 1
            assert job_id not in locks.holders()  # a busy GPU: it let go of the one it had
        time.sleep(0.005)
    json.dump({"held": held, "busy": busy}, open(out, "w"))
""")


def test_two_jobs_that_each_want_two_gpus_take_them_in_turn_without_deadlock(ws, tmp_path):
    a, b = (jobs.create_job(ws.db, "train", {"dataset": "x", "gpus": 2}) for _ in range(2))
    procs = [subprocess.Popen([sys.executable, "-c", LOCKER, str(ws.root), str(job), order, str(tmp_path / f"{job}.json"), "15"])
             for job, order in ((a, "0,1"), (b, "1,0"))]
    for p in procs:
        assert p.wait(timeout=120) == 0
    runs = {job: json.loads((tmp_path / f"{job}.json").read_text()) for job in (a, b)}
    assert all(len(r["held"]) == 15 for r in runs.values()), runs  # both got through: no deadlock
    spans = sorted(span for r in runs.values() for span in r["held"])
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(spans, spans[1:]))  # never both at once
    assert GpuLocks(queue_for(ws), ["0", "1"]).holders() == [None, None]


def test_a_job_resumed_at_fewer_gpus_frees_the_locks_its_new_run_cannot_take(ws, monkeypatch):
    """The old delivery of a job resumed at once (before that delivery let go) keeps the locks the
    newer delivery may count as its own, and frees the others: 2 ranks resumed at 1 frees GPU 1."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("BARK_STUDIO_GPU", "0")
    job_id = jobs.create_job(ws.db, "train", {"dataset": "x", "gpus": 2})
    locks = GpuLocks(queue_for(ws), ["0", "1"])
    assert locks.acquire(ws.db, job_id) is None
    claimed = jobs.claim(ws.db, job_id, "test")
    jobs.finish(ws.db, job_id, claimed, "interrupted", error="a training rank died")
    jobs.requeue(ws.db, job_id, {"gpus": 1})  # resumed at once, at one GPU: this worker's, GPU 0
    locks.release_when_ended(ws.db, job_id)
    assert locks.holders() == [job_id, None]
    jobs.claim(ws.db, job_id, "test")  # running again at 1 GPU: still only GPU 0 is its own
    locks.release_when_ended(ws.db, job_id)
    assert locks.holders() == [job_id, None]
    other = jobs.create_job(ws.db, "train", {"dataset": "x", "gpus": 2})
    assert GpuLocks(queue_for(ws), ["0", "1"]).acquire(ws.db, other) == job_id  # GPU 0 is in use


LINGERING_CHILD = """#!{python}
import sys, time
from studio import jobs
from studio.workspace import Workspace

root, job_id, token = sys.argv[3:6]  # as runner starts it: -m workers.child ROOT JOB_ID TOKEN
jobs.finish(Workspace(root).db, int(job_id), token, "interrupted", error="a training rank died")
time.sleep(60)  # the job has ended; its process has not exited (a slow teardown, a hang)
"""


@pytest.mark.timeout(120)
def test_a_jobs_gpu_locks_go_when_it_ends_not_when_its_process_exits(ws, tmp_path, monkeypatch):
    """A job's process that records its ending and then lingers: its delivery frees both GPU locks
    at once, not when the process exits, and kills it CHILD_EXIT_GRACE_SECONDS after the ending."""
    import threading
    import types

    from workers import runner
    from workers.queue import run_delivery

    grace = 8.0  # the lingering process is killed then: the locks must be free well before
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = tmp_path / "python"
    fake.write_text(LINGERING_CHILD.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setattr(runner, "sys", types.SimpleNamespace(executable=str(fake)))
    monkeypatch.setattr(runner, "CHILD_EXIT_GRACE_SECONDS", grace, raising=False)
    job_id = jobs.create_job(ws.db, "train", {"dataset": "x", "gpus": 2})
    locks = GpuLocks(queue_for(ws), ["0", "1"])
    delivery = threading.Thread(target=run_delivery, args=(ws, job_id))
    delivery.start()
    deadline = time.monotonic() + 60
    lingering = []
    while not lingering and time.monotonic() < deadline:
        lingering = [p for p in psutil.process_iter(["cmdline"]) if str(fake) in (p.info["cmdline"] or [])]
        time.sleep(0.05)
    assert len(lingering) == 1
    wait_status(ws, job_id, "interrupted", timeout=60)
    ended = time.monotonic()
    while locks.holders() != [None, None] and time.monotonic() < ended + 60:
        time.sleep(0.05)
    freed = time.monotonic() - ended
    # before the process was killed (the old release waited for its exit: 60 s here), and before
    # the heartbeat of a silent running holder would go stale (stale_after_seconds(): 12.5 s)
    assert locks.holders() == [None, None] and freed < min(grace, jobs.stale_after_seconds()), (locks.holders(), freed)
    delivery.join(timeout=60)
    assert not delivery.is_alive()
    assert not lingering[0].is_running() or lingering[0].status() == psutil.STATUS_ZOMBIE  # killed, not left
    assert jobs.get_job(ws.db, job_id)["status"] == "interrupted"


def test_a_job_over_two_gpus_locks_and_sees_the_hosts_first_two():
    from workers.gpu_lock import JOB_GPUS_ENV, job_gpus, pin_job_gpu

    assert job_gpus({"gpus": 2}, env={"CUDA_VISIBLE_DEVICES": "4,5,6"}) == ["4", "5"]
    assert job_gpus({"gpus": 2}, env={}) == ["0", "1"]
    env = {JOB_GPUS_ENV: "4,5", "BARK_STUDIO_GPU": "0", "CUDA_VISIBLE_DEVICES": "4,5,6"}
    assert pin_job_gpu(env) == "4,5" and env["CUDA_VISIBLE_DEVICES"] == "4,5"  # its process sees both


# --- the distributed job end to end --------------------------------------------------------------

LONG = 500  # steps of a job that is always stopped before it ends


@pytest.fixture
def tws(train_template, tmp_path, monkeypatch):
    from studio.workspace import Workspace

    monkeypatch.setenv("BARK_STUDIO_HEARTBEAT_S", str(HEARTBEAT_S))
    monkeypatch.delenv("BARK_STUDIO_REDIS_URL", raising=False)
    for key, value in GLOO.items():
        monkeypatch.setenv(key, value)
    home = copy_template(train_template, tmp_path / "home")
    monkeypatch.setenv("BARK_STUDIO_HOME", str(home))
    return Workspace.resolve(home)


def _job_processes(job_id: int) -> list[psutil.Process]:
    """The job's own process (workers.child), torchrun and the ranks (their command lines name its
    spec folder)."""
    def of_job(cmd: list[str]) -> bool:
        own = "workers.child" in cmd and len(cmd) >= 2 and cmd[-2] == str(job_id)
        return own or any(f"dist-job{job_id}-" in part for part in cmd)

    return [p for p in psutil.process_iter(["cmdline"]) if of_job(p.info["cmdline"] or [])]


def _rank(job_id: int, rank: int, timeout: float = 60) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in _job_processes(job_id):
            try:
                if proc.environ().get("RANK") == str(rank):
                    return proc
            except psutil.Error:
                continue
        time.sleep(0.1)
    raise AssertionError(f"no rank {rank} of job {job_id} found")


def _none_left(job_id: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while _job_processes(job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [(p.pid, p.info["cmdline"]) for p in _job_processes(job_id)]
    assert not left, f"processes of job {job_id} left behind: {left}"


def _wait_trained(ws, job_id: int, step: int, timeout: float = 600) -> None:
    """Until the job has reported the loss of `step` (its row's step also counts tokenizing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if max((s for s, _ in jobs.metric_series(ws.db, job_id).get("loss", [])), default=0) >= step:
            return
        wait_step(ws, job_id, 0)  # fails at once if the job ended
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not train step {step} in {timeout}s")


def _cancel_at(ws, job_id: int, step: int) -> int:
    _wait_trained(ws, job_id, step)
    out = json.loads(cli("jobs", "cancel", str(job_id), "--json", home=ws.root).stdout)
    assert out["cancel_requested"]
    stopped = wait_status(ws, job_id, "cancelled", timeout=300)
    assert max(checkpoints_of(ws, job_id, rows_too=True)) == stopped["step"]  # every rank stopped there, saved once
    return stopped["step"]


def _baseline_losses(ws, params: dict, steps: int) -> dict[int, float]:
    """The one-process run with the same global batch, for `steps` steps (same data, same config)."""
    from models import presets
    from models.lora import parse_stages
    from models.training import TrainingRecipe
    from studio.datasets.api import training_items
    from workers.handlers.tokens import token_items
    from workers.handlers.train import _config

    records = training_items(ws, "voice")
    items = token_items(ws, "voice", "tiny", records)
    config = _config({**params, "batch_size": params["batch_size"] * 2}, parse_stages(params["stages"]), "lora")
    recipe = TrainingRecipe(config, presets.load_bark("tiny"), items, ws.root / "baseline",
                            speakers=[r.get("speaker") for r in records], should_stop=lambda: recipe.step >= steps)
    return {h["step"]: h["loss"] for h in recipe.train().history}


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_two_gloo_ranks_cancel_resume_across_world_sizes_and_a_killed_rank(tws):
    ws = tws
    c = Consumer(ws, env=GLOO)
    try:
        out = cli("train", "--dataset", "voice", "--model", "tiny", "--stages", "coarse", "--preset", "quick",
                  "--max-steps", str(LONG), "--batch-size", "2", "--grad-accum", "1", "--dropout", "0",
                  "--save-every", "2", "--eval-every", "2", "--patience", "0", "--precision", "fp32",
                  "--gpus", "2", "--json", home=ws.root)
        job_id = json.loads(out.stdout)["id"]
        params = jobs.get_job(ws.db, job_id)["params"]
        assert params["gpus"] == 2

        from workers.dispatch import resume

        # 2 ranks, cancelled: every rank stops at the same step, one checkpoint, no rank left
        s1 = _cancel_at(ws, job_id, 2)
        _none_left(job_id)
        # resumed at 1 rank (the same global batch), cancelled again
        cli("jobs", "resume", str(job_id), "--gpus", "1", "--batch-size", "4", home=ws.root)
        s2 = _cancel_at(ws, job_id, s1 + 2)
        # resumed at 2 ranks; rank 1 SIGKILLed mid-run: torchrun ends rank 0, the job is interrupted
        resume(ws, job_id, params_update={"gpus": 2, "batch_size": 2})
        _wait_trained(ws, job_id, s2 + 2)
        assert GpuLocks(queue_for(ws), ["0", "1"]).holders() == [job_id, job_id]  # both GPUs' locks, held
        _rank(job_id, 1).send_signal(signal.SIGKILL)
        killed = wait_status(ws, job_id, "interrupted", timeout=120)
        ended = time.monotonic()
        assert "a training rank died" in killed["error"], killed
        locks = GpuLocks(queue_for(ws), ["0", "1"])
        while locks.holders() != [None, None] and time.monotonic() < ended + 60:
            time.sleep(0.1)
        # freed with the job, while the worker runs on; nothing would free the lock of an ended job
        # by itself (the next job asking breaks it), and a silent running holder's goes stale after
        # stale_after_seconds() (10 s here)
        freed = time.monotonic() - ended
        print(f"job {job_id}: both GPU locks free {freed:.1f}s after it ended interrupted")
        assert locks.holders() == [None, None] and freed < jobs.stale_after_seconds(), (locks.holders(), freed)
        _none_left(job_id, timeout=60)  # its process is killed CHILD_EXIT_GRACE_SECONDS after the job ended
        assert c.proc.poll() is None
        s3 = max(checkpoints_of(ws, job_id))
        # ... and resumed from its last checkpoint at 1 rank
        resume(ws, job_id, params_update={"gpus": 1, "batch_size": 4})
        s4 = _cancel_at(ws, job_id, s3 + 2)
        job = jobs.get_job(ws.db, job_id)
        assert f"resuming from checkpoints/{job_id}/step-{s3:07d} at step {s3}" in job["log_tail"]
        assert "cpu x 2 ranks" in job["log_tail"]
        # resumed at 2 ranks; the whole worker SIGKILLed: its job's process, torchrun and the ranks go
        # with it, and the job turns interrupted when its heartbeat stops
        resume(ws, job_id, params_update={"gpus": 2, "batch_size": 2})
        _wait_trained(ws, job_id, s4 + 1)
        _rank(job_id, 1)
        c.kill()
        _none_left(job_id)
        wait_status(ws, job_id, "interrupted", timeout=6 * HEARTBEAT_S + 20)
    finally:
        c.stop()
    assert s1 < s2 < s3 + 2 <= s4 < LONG

    # the curve: every recorded step (those a killed run repeated after its checkpoint too) equals
    # the one-process run with the same global batch
    series = jobs.metric_series(ws.db, job_id)["loss"]
    last = max(step for step, _ in series)
    assert last > s4 and sorted({step for step, _ in series}) == list(range(1, last + 1))
    baseline = _baseline_losses(ws, {**params, "dropout": 0.0}, last)
    for step, loss in series:
        assert loss == pytest.approx(baseline[step], abs=1e-5), (step, loss, baseline[step])

