"""The Voices tab in Debian's chromium against the real studio and its embedded worker: make a
voice prompt from a dataset clip (a `voice` job on the tiny token models), see it listed with its
details, listen to the span it was made from, pick it in the Generate tab, and see bad input (an
empty name, a taken name, a file that is not audio) get a clear message while the voice stays."""
from __future__ import annotations

import re
import subprocess

import pytest

from studio import jobs
from studio import voices as V
from studio.datasets import store
from studio.datasets.importer import import_paths
from tests.conftest import Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def studio(ws, awb_wav, slt_wav, tmp_path):
    # a prompt needs 5-12 s of speech and each fixture is shorter: join two real recordings (7.1 s)
    joined = tmp_path / "two_speakers.wav"
    subprocess.run(["sox", str(awb_wav), str(slt_wav), str(joined)], check=True, capture_output=True)
    store.create_dataset(ws.db, "speaker")
    report = import_paths(ws, "speaker", [joined])
    assert report["errors"] == [] and len(report["imported"]) == 1, report
    server = Server(ws, embedded_workers=1)
    yield server
    server.stop()


def _fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


def _toast(page, text: str):
    """A gr.Error shown to the user, as a toast."""
    return page.locator(".toast-body").get_by_text(text).first


def _status(page) -> str:
    return page.locator("#voices-status").inner_text()


def _job_ends(page, job_no: int, timeout: float = 600_000) -> str:  # a job at load 8 takes minutes
    """Wait until the status line shows job `job_no` finished; its text."""
    page.wait_for_function(
        "n => { const t = document.querySelector('#voices-status').innerText;"
        " return t.includes('Job ' + n) && /succeeded|failed|cancelled/.test(t); }", arg=job_no, timeout=timeout)
    return _status(page)


def test_make_a_voice_from_a_clip_list_listen_use_it_and_reject_bad_input(ws, studio, browser, tmp_path):
    page = studio.open_page(browser)
    page.get_by_role("tab", name="Voices").click()

    # make a voice from the first 6 s of the imported clip
    page.locator("#voices-clip input").first.click()
    page.get_by_role("option", name=re.compile(r"^speaker . .*two_speakers")).click()
    _fill(page, "voices-end", 6)
    _fill(page, "voices-name", "scot")
    page.locator("#voices-model input").first.click()
    page.get_by_role("option", name="tiny (test model: random weights, not a voice)", exact=True).click()
    page.locator("#voices-make").click()
    assert "succeeded" in _job_ends(page, 1)
    (job,) = jobs.list_jobs(ws.db, kind="voice")
    assert job["params"]["name"] == "scot" and job["params"]["end"] == 6.0 and job["params"]["model"] == "tiny"

    # listed with its details: the table polls the voices rows
    table = page.locator("#voices-table")

    def cell(text: str):  # the dataframe keeps a hidden copy of each cell for measuring; use the visible one
        return table.get_by_text(text, exact=True).filter(visible=True).first

    cell("scot").wait_for()
    cell("0.00-6.00 s").wait_for()
    cell("tiny").wait_for()
    (voice,) = V.list_voices(ws)
    assert voice["name"] == "scot" and voice["source_clip_id"] is not None
    assert (voice["span_start"], voice["span_end"]) == (0.0, 6.0)
    npz = V.voice_path(ws, "scot")
    saved = npz.read_bytes()

    # pick it in the table and listen to the span it was made from: the player serves a WAV
    cell("scot").click()
    page.wait_for_function("() => document.querySelector('#voices-chosen textarea, #voices-chosen input').value === 'scot'")
    page.locator("#voices-listen").click()
    link = page.locator("#voices-audio a[data-testid='download-link']")
    link.wait_for()
    wav = page.request.get(link.get_attribute("href"))
    assert wav.ok and wav.body()[:4] == b"RIFF" and wav.body()[8:12] == b"WAVE"

    # bad input 1: an empty name is refused in the page, no job is queued
    _fill(page, "voices-name", "")
    page.locator("#voices-make").click()
    _toast(page, "voice name '' is not allowed").wait_for()
    assert len(jobs.list_jobs(ws.db, kind="voice")) == 1

    # bad input 2: the name is taken; the job fails with a one-line reason, the voice is untouched
    _fill(page, "voices-name", "scot")
    page.locator("#voices-make").click()
    status = _job_ends(page, 2)
    assert "failed" in status and "a voice named 'scot' already exists" in status

    # bad input 3: an upload that is not audio: the job decodes it (never the web process) and its
    # error names the file the user chose
    bogus = tmp_path / "notes.wav"
    bogus.write_text("these are my notes, not a recording\n")
    page.locator("#voices-upload input[type=file]").set_input_files(str(bogus))
    _fill(page, "voices-name", "bogus")
    page.locator("#voices-make").click()
    status = _job_ends(page, 3)
    assert "failed" in status and "notes.wav: not an audio file" in status
    assert not list((ws.tmp_dir / "uploads").glob("*"))  # its staged copy went with the job
    assert [v["name"] for v in V.list_voices(ws)] == ["scot"]
    assert V.voice_path(ws, "scot").read_bytes() == saved

    # use it: the Generate tab offers it as a voice
    page.get_by_role("tab", name="Generate").click()
    page.locator("#gen-voice input").first.click()
    page.get_by_role("option", name="scot", exact=True).wait_for()
    page.get_by_role("option", name="scot", exact=True).click()
    assert page.locator("#gen-voice input").first.input_value() == "scot"
    page.close()
