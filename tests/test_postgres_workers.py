"""Two workers of one studio on PostgreSQL and Redis, each driving its own GPU: `bark-studio
workers` and the Jobs tab list both, with their GPUs, the job each runs and their last heartbeat;
a stopped worker leaves the list. (Workers on separate mount paths: test_postgres_recovery.py.)"""
from __future__ import annotations

import json
import os
import socket

import pytest

from studio import jobs
from studio.ui import jobs_tab
from tests.conftest import Consumer, Server, cli
from workers.dispatch import submit, wait_for


def test_workers_lists_every_live_worker_with_its_gpu_and_job(ws, redis_url, postgres_url):
    a = Consumer(ws, workers=1, env={"BARK_STUDIO_GPU": "0"})
    b = Consumer(ws, workers=1, env={"BARK_STUDIO_GPU": "1"})
    try:
        done = [wait_for(ws, submit(ws, "noop")["id"], poll=0.2, timeout=60) for _ in range(4)]
        assert [d["status"] for d in done] == ["succeeded"] * 4

        job = jobs.create_job(ws.db, "noop")  # a job the first worker runs in its own process
        host = socket.gethostname()
        token = jobs.claim(ws.db, job, f"{host}:{a.proc.pid}")
        assert token

        def beat():  # that run's heartbeat, which nothing else beats: each read below may sweep a silent job
            jobs.JobContext(db=ws.db, job_id=job, run_token=token, params={}).heartbeat()

        beat()
        listed = json.loads(cli("workers", "--json", home=ws.root).stdout)
        by_pid = {w["pid"]: w for w in listed}
        assert set(by_pid) == {a.proc.pid, b.proc.pid}
        assert by_pid[a.proc.pid]["gpus"] == ["0"] and by_pid[b.proc.pid]["gpus"] == ["1"]
        assert [j["id"] for j in by_pid[a.proc.pid]["jobs"]] == [job] and by_pid[b.proc.pid]["jobs"] == []
        assert all(w["host"] == host and w["heartbeat_age_s"] < 3 * jobs.heartbeat_seconds() for w in listed)
        beat()
        human = cli("workers", home=ws.root).stdout
        assert f"{host}:{a.proc.pid}" in human and f"#{job} noop" in human and "idle" in human

        beat()
        panel = {row[0]: row for row in jobs_tab.worker_rows(ws)}  # the Jobs tab's Workers panel
        assert panel[f"{host}:{a.proc.pid}"][2:4] == ["0", f"#{job} noop"]
        assert panel[f"{host}:{b.proc.pid}"][2:4] == ["1", "idle"]
    finally:
        b.stop()
        a.stop()
    assert json.loads(cli("workers", "--json", home=ws.root).stdout) == []
    assert "no live worker" in cli("workers", home=ws.root).stdout


@pytest.mark.browser
@pytest.mark.slow
def test_the_jobs_tab_shows_the_live_workers(ws, postgres_url, browser):
    c = Consumer(ws, workers=1, env={"BARK_STUDIO_GPU": "3"})
    server = Server(ws)
    page = browser.new_page()
    page.set_default_timeout(60_000)  # as Server.open_page: a loaded box is slow
    try:
        server.login(page)
        page.goto(server.url + "/")
        page.get_by_role("tab", name="Jobs").click()
        worker = f"{socket.gethostname()}:{c.proc.pid}"
        shown = "([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)"
        page.wait_for_function(shown, arg=["#jobs-workers", worker], timeout=90_000)  # seen, not only in the DOM
        text = page.locator("#jobs-workers").inner_text()
        cells = [t.strip() for t in text.splitlines() if t.strip()]
        at = cells.index(worker)
        assert cells[at + 1:at + 4] == [socket.gethostname(), "3", "idle"], cells  # host, GPUs, current job
        c.stop()  # a stopped worker leaves the panel at the next refresh
        gone = "([sel, text]) => !(document.querySelector(sel)?.innerText || '').includes(text)"
        page.wait_for_function(gone, arg=["#jobs-workers", worker], timeout=90_000)
    finally:
        page.close()
        server.stop()
        c.stop()
