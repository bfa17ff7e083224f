"""The queue's plumbing with a real consumer process: priorities, revoking queued jobs, the Redis
path on a real redis-server, the compose file, and the CLI telling the same story as the rows."""
from __future__ import annotations

import json

import pytest
import yaml

from studio import jobs
from tests.conftest import REPO, Consumer, cli
from workers.dispatch import cancel, submit, wait_for
from workers.queue import queue_for


def _queued_noops(ws, priorities):
    return [submit(ws, "noop", {"n": i}, priority=p)["id"] for i, p in enumerate(priorities)]


def test_higher_priority_jobs_run_first(ws):
    ids = _queued_noops(ws, [0, 10, 5])  # queued while no worker runs
    c = Consumer(ws, workers=1)
    try:
        done = [wait_for(ws, i, poll=0.2, timeout=60) for i in ids]
    finally:
        c.stop()
    assert [d["status"] for d in done] == ["succeeded"] * 3
    with ws.db.read() as s:  # started_at to the microsecond (the JSON rounds to seconds)
        started = {i: s.get(jobs.Job, i).started_at for i in ids}
    assert [done[ids.index(i)]["priority"] for i in sorted(ids, key=started.get)] == [10, 5, 0]


def test_cancelling_a_queued_job_revokes_its_delivery(ws):
    job = submit(ws, "noop")
    assert job["status"] == "queued"
    out = json.loads(cli("jobs", "cancel", str(job["id"]), "--json", home=ws.root).stdout)
    assert out["id"] == job["id"] and out["status"] == "cancelled"
    with ws.db.read() as s:
        task_id = s.get(jobs.Job, job["id"]).queue_task_id
    from huey.api import Task

    assert queue_for(ws).is_revoked(Task(id=task_id))
    keep = submit(ws, "noop")  # a later job still runs: the worker skips only the revoked one
    c = Consumer(ws, workers=1)
    try:
        assert wait_for(ws, keep["id"], poll=0.2, timeout=60)["status"] == "succeeded"
    finally:
        c.stop()
    after = jobs.get_job(ws.db, job["id"])
    assert after["status"] == "cancelled" and after["attempts"] == 0 and after["started_at"] is None
    listed = json.loads(cli("jobs", "list", "--json", home=ws.root).stdout)
    assert {(j["id"], j["status"]) for j in listed} == {(job["id"], "cancelled"), (keep["id"], "succeeded")}


def test_redis_queue_runs_jobs_on_a_real_redis_server(ws, redis_url):
    import redis

    assert type(queue_for(ws)).__name__ == "PriorityRedisHuey"
    first = submit(ws, "noop")
    dropped = submit(ws, "noop")
    cancel(ws, dropped["id"])
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() > 0  # the delivery and the revocation live in Redis, not in the workspace
    assert not ws.queue_path.exists()
    c = Consumer(ws, workers=1)
    try:
        done = wait_for(ws, first["id"], poll=0.2, timeout=60)
    finally:
        c.stop()
    assert done["status"] == "succeeded" and done["result"] == {"pong": True}
    assert jobs.get_job(ws.db, dropped["id"])["attempts"] == 0


def test_compose_file_runs_redis_studio_and_gpu_workers_on_one_workspace():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "studio", "worker"} <= set(services)
    for name, svc in services.items():
        assert "healthcheck" in svc and svc["healthcheck"]["test"], f"{name} has no healthcheck"
    worker, studio = services["worker"], services["studio"]
    assert worker["command"][:2] == ["bark-studio", "worker"]
    assert studio["command"][:2] == ["bark-studio", "serve"] and "--no-worker" in studio["command"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    volumes = {v.split(":")[0] for svc in (worker, studio) for v in svc["volumes"]}
    assert volumes == {"workspace"} and "workspace" in compose["volumes"]
    for svc in (worker, studio):
        env = svc["environment"]
        assert env["BARK_STUDIO_REDIS_URL"].startswith("redis://redis:")
        assert env["BARK_STUDIO_HOME"] == "/workspace"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["stop_signal"] == "SIGINT"  # running jobs checkpoint before the container stops
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install" in dockerfile and "bark-studio" in dockerfile
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Scaling out", 1)[1]
    for needle in ("BARK_STUDIO_REDIS_URL", "BARK_STUDIO_DATABASE_URL", "BARK_STUDIO_GPU", "docker compose"):
        assert needle in section, f"README 'Scaling out' does not mention {needle}"


def test_worker_healthcheck_reports_a_live_worker(ws):
    import subprocess
    import sys

    env_cmd = [sys.executable, "-m", "workers.health"]
    before = subprocess.run(env_cmd, capture_output=True, text=True, timeout=60)
    assert before.returncode == 1 and "no live worker" in before.stderr
    c = Consumer(ws, workers=1)
    try:
        during = subprocess.run(env_cmd, capture_output=True, text=True, timeout=60)
    finally:
        c.stop()
    assert during.returncode == 0 and f":{c.proc.pid}" in during.stdout
    from studio import fleet

    assert [w for w in fleet.live_workers(ws.db) if w["pid"] == c.proc.pid] == []  # stopped: no longer live


@pytest.mark.parametrize("value, injected", [(None, False), ("", False), ("0", False), ("3", True)])
def test_the_oom_fault_switch_is_off_unless_it_names_a_step(monkeypatch, value, injected):
    from workers.faults import OOM_AT_STEP_ENV, OomAtStepContext, context_class

    if value is None:
        monkeypatch.delenv(OOM_AT_STEP_ENV, raising=False)
    else:
        monkeypatch.setenv(OOM_AT_STEP_ENV, value)
    assert (context_class() is OomAtStepContext) == injected
