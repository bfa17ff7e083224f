"""The Dataset tab in Debian's chromium: create a dataset, upload two clips (an import job decodes
them in the studio's worker), trim one, edit a transcript with a marker from the palette, see
the report change, and prepare: each dropped segment's reason shows next to its clip."""
from __future__ import annotations

import re

import pytest

from studio.datasets import store
from tests.conftest import Server


@pytest.fixture
def server(ws):
    s = Server(ws, embedded_workers=1)
    yield s
    s.stop()


@pytest.mark.browser
@pytest.mark.slow
def test_upload_trim_edit_with_marker_and_report(ws, server, browser, awb_wav, slt_wav):
    page = browser.new_page()
    page.set_default_timeout(90_000)
    server.login(page)
    page.goto(server.url + "/")
    page.locator("#ds-new-name textarea, #ds-new-name input").first.fill("browser-set")
    page.locator("#ds-create").click()
    report = page.locator("#ds-report")
    report.get_by_text("browser-set").first.wait_for()
    assert "no clips yet" in report.inner_text()

    page.locator("#ds-upload input[type=file]").set_input_files([str(awb_wav), str(slt_wav)])
    page.locator("#ds-upload").get_by_text("slt_arctic_a0009").first.wait_for()  # name and extension render apart
    page.locator("#ds-import").click()
    table = page.locator("#ds-clips")

    def cell(text: str):  # the dataframe keeps a hidden copy of each cell for measuring; use the visible one
        return table.get_by_text(text).filter(visible=True).first

    cell("upload/slt_arctic_a0009.wav").wait_for(timeout=180_000)  # the worker imported them
    cell("upload/awb_arctic_a0007.wav").wait_for()
    page.locator("#ds-report").get_by_text(re.compile(r"2 clips")).wait_for()
    before = report.inner_text()
    assert "Markers: none" in before

    # trim the first clip: the numbers are stored on the clip, the original is untouched
    cell("upload/awb_arctic_a0007.wav").click()
    page.locator("#ds-clip-title").get_by_text("awb_arctic_a0007.wav").wait_for()
    page.locator("#ds-trim-start input").fill("0.5")
    page.locator("#ds-trim-end input").fill("3.5")
    page.locator("#ds-trim-end input").press("Tab")
    page.locator("#ds-trim-apply").click()
    cell("0.50-3.50").wait_for()
    clip = next(c for c in store.list_clips(ws.db, "browser-set") if c["name"].endswith("awb_arctic_a0007.wav"))
    assert (clip["trim_start"], clip["trim_end"]) == (0.5, 3.5)

    # edit its transcript with a marker from the palette, from the keyboard's caret position
    text = page.locator("#ds-text textarea")
    text.fill("And you always want to see it in the superlative degree.")
    text.evaluate("t => { t.focus(); t.setSelectionRange(29, 29); }")  # after "see it"
    page.locator("#ds-palette").get_by_role("button", name="[laughs]", exact=True).click()
    assert text.input_value() == "And you always want to see it [laughs] in the superlative degree."
    page.locator("#ds-text-save").click()
    report.get_by_text("[laughs]: 1").wait_for()
    after = report.inner_text()
    assert after != before and "Transcribed: 1 (1 human-checked)" in after
    assert store.get_clip(ws.db, clip["id"])["text"] == "And you always want to see it [laughs] in the superlative degree."
    assert "1 clip(s) have no transcript" in after  # the other clip still needs one

    # prepare with a strict SNR filter: the clip table shows, next to each clip, why a segment was dropped
    page.get_by_text("Transcribe and prepare (jobs)").first.click()  # open the accordion
    page.locator("#ds-min-snr input").fill("40")
    page.locator("#ds-min-snr input").press("Tab")
    page.locator("#ds-prepare").click()
    cell_text = re.compile(r"^0/1 kept; dropped #1: snr [\d.]+ dB is under 40 dB$")
    table.get_by_text(cell_text).filter(visible=True).first.wait_for(timeout=240_000)
    assert table.get_by_text(cell_text).filter(visible=True).count() == 2  # both clips, each with its reason
    page.close()
