"""The Train, Voices and Generate tabs in Debian's chromium against the real studio and its
embedded worker: launch a tiny training job from the Train tab and watch its loss curve grow,
then generate from the adapter it produced in the Generate tab, and find the result in the
history with the parameters that reproduce it."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import time

import pytest
from sqlalchemy import select

from studio import jobs, voices
from tests.conftest import Server
from tests.queue_support import copy_template, maps_torch

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1800)]  # a loaded 2-core box is slow


@pytest.fixture
def studio(train_template, tmp_path, monkeypatch):
    from studio.workspace import Workspace

    monkeypatch.delenv("BARK_STUDIO_REDIS_URL", raising=False)
    home = copy_template(train_template, tmp_path / "home")
    monkeypatch.setenv("BARK_STUDIO_HOME", str(home))
    ws = Workspace.resolve(home)
    server = Server(ws, embedded_workers=2)
    yield ws, server
    server.stop()


def _choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def _fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


def _points(page) -> int:
    text = page.locator("#train-loss-latest").inner_text()
    m = re.search(r"train loss [\d.]+ at step \d+ \((\d+) points\)", text)
    return int(m.group(1)) if m else 0


def _loss_points(session, job_id: int) -> list:
    return list(session.scalars(select(jobs.JobMetric.step).where(
        jobs.JobMetric.job_id == job_id, jobs.JobMetric.name == "loss")))


def _hold_after_first_loss_points(ws, job_id: int, timeout: float = 400) -> int:
    """SIGSTOP the job's training process once its first loss point is in the database; returns its
    pid (SIGCONT it). The supervising worker keeps beating the row's heartbeat meanwhile."""
    deadline = time.monotonic() + timeout
    pid = None
    while time.monotonic() < deadline:
        job = jobs.get_job(ws.db, job_id)
        assert job["status"] in ("queued", "running"), job
        if pid is None and (m := re.search(r"spawned process \(pid (\d+)\)", job["log_tail"] or "")):
            pid = int(m.group(1))
        if pid is not None:
            with ws.db.read() as s:
                if _loss_points(s, job_id):
                    os.kill(pid, signal.SIGSTOP)
                    if not _write_locked(ws):
                        return pid
                    os.kill(pid, signal.SIGCONT)  # held mid-commit: others' writes would wait on it
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} wrote no loss point in {timeout}s")


def _write_locked(ws) -> bool:
    con = sqlite3.connect(ws.db_path, timeout=0.5, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        con.close()


def test_train_from_the_train_tab_then_generate_from_its_adapter(studio, browser):
    ws, server = studio
    page = browser.new_page()
    page.set_default_timeout(120_000)
    server.login(page)
    page.goto(server.url + "/")

    page.get_by_role("tab", name="Train").click()
    _choose(page, "train-dataset", "voice")
    page.locator("#train-dataset-report").get_by_text(re.compile(r"voice.*training segments")).wait_for()
    _choose(page, "train-base", "tiny (test model: random weights, not a voice)")
    for stage in ("coarse", "fine"):  # one stage keeps a CPU test short
        page.locator("#train-stages").get_by_label(stage).uncheck()
    page.locator("#train-advanced").get_by_text("Advanced settings").click()
    for name, value in (("max_steps", 8), ("batch_size", 1), ("grad_accum", 1), ("save_every", 2),
                        ("eval_every", 2)):
        _fill(page, f"train-adv-{name}", value)
    _choose(page, "train-adv-precision", "fp32")
    _fill(page, "train-name", "browser-voice")
    page.locator("#train-estimate").get_by_text("8 optimizer steps").wait_for()
    page.locator("#train-launch").click()
    page.locator("#train-status").get_by_text(re.compile(r"Job \d+")).wait_for()
    (job,) = [j for j in jobs.list_jobs(ws.db, kind="train")]
    # exactly the preset plus the fields changed here: nothing silently overridden
    assert {k: v for k, v in job["params"].items()} == {
        "dataset": "voice", "model": "tiny", "stages": ["semantic"], "preset": "quick", "name": "browser-voice",
        "max_steps": 8, "batch_size": 1, "grad_accum": 1, "save_every": 2, "eval_every": 2, "precision": "fp32"}

    # the loss curve grows while the job runs: the training process is held (SIGSTOP) as soon as its
    # first points are written, so the page is seen mid-run however fast or slow the box is
    held = _hold_after_first_loss_points(ws, job["id"])
    try:
        with ws.db.read() as s:
            written = len(_loss_points(s, job["id"]))
        assert 1 <= written < 8, f"the job wrote {written} of 8 points before it could be held"
        page.locator("#train-loss-latest").get_by_text(
            re.compile(rf"train loss [\d.]+ at step \d+ \({written} points\)")).wait_for(timeout=60_000)
        assert "running" in page.locator("#train-status").inner_text()
        assert page.locator("#train-loss-plot canvas, #train-loss-plot svg").count() > 0
    finally:
        os.kill(held, signal.SIGCONT)
    page.locator("#train-status").get_by_text("succeeded").wait_for(timeout=300_000)
    assert _points(page) == 8
    page.locator("#train-checkpoints").get_by_text(re.compile(r"step-0000008")).first.wait_for()
    assert maps_torch(server.proc.pid) is False  # the web process never loaded a model

    # generate from the adapter the run produced
    page.get_by_role("tab", name="Generate").click()
    _fill(page, "gen-text", "Hello from the studio.")
    _choose(page, "gen-model", "tiny (test model: random weights, not a voice)")
    _choose(page, "gen-adapter-1", "browser-voice")
    page.get_by_text("Sampling").click()
    _fill(page, "gen-max-tokens", 24)
    _fill(page, "gen-seed", 7)
    page.locator("#gen-go").click()
    page.locator("#gen-status").get_by_text("succeeded").wait_for(timeout=300_000)
    # the result plays in the page: the player holds the generated WAV, served by the studio
    link = page.locator("#gen-out-1 a[data-testid='download-link']")
    link.wait_for()
    src = link.get_attribute("href")
    wav = page.request.get(src)
    assert wav.ok and wav.body()[:4] == b"RIFF", src
    page.wait_for_function("() => document.querySelector('#gen-history').innerText.includes('browser-voice×1')")
    (row,) = voices.list_generations(ws)
    assert row["text"] == "Hello from the studio." and row["seed"] == 7 and row["model"] == "tiny"
    assert [a["name"] for a in row["adapters"]] == ["browser-voice"]
    assert row["params"]["semantic_max_new_tokens"] == 24 and (ws.root / row["audio_path"]).is_file()
    page.close()
