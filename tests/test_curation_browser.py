"""The Dataset tab in Debian's chromium: create a dataset, upload two clips (an import job decodes
them in the studio's worker), trim one by dragging on its waveform and play the kept region, edit a
transcript with a marker from the palette, see the report change, and prepare: each dropped
segment's reason shows next to its clip, and the clip's segment player plays its segment."""
from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from studio.datasets import store
from studio.datasets.segments import clip_segments
from tests.conftest import Server

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture
def server(ws):
    s = Server(ws, embedded_workers=1)
    yield s
    s.stop()


@pytest.mark.browser
@pytest.mark.slow
def test_upload_trim_edit_with_marker_and_report(ws, server, browser, awb_wav, slt_wav):
    page = server.open_page(browser, timeout_ms=90_000)
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

    # trim the first clip by dragging on its waveform: the drag writes the trim fields, the kept
    # region plays alone, typing in a field moves the region, and Apply stores the numbers on the clip
    cell("upload/awb_arctic_a0007.wav").click()
    page.locator("#ds-clip-title").get_by_text("awb_arctic_a0007.wav").wait_for()
    clip = next(c for c in store.list_clips(ws.db, "browser-set") if c["name"].endswith("awb_arctic_a0007.wav"))
    start, end = page.locator("#ds-trim-start input"), page.locator("#ds-trim-end input")
    info = page.locator("#ds-wave .tv-info")
    info.get_by_text(f"of {clip['duration']:.2f} s").wait_for()  # the waveform has this clip
    canvas = page.locator("#ds-wave canvas")

    def drag(a: float, b: float) -> tuple[float, float]:
        """Drag from share a to share b of the waveform's width; returns the trim fields after."""
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()  # in the viewport, where the mouse moves
        y = box["y"] + box["height"] / 3
        page.mouse.move(box["x"] + a * box["width"], y)
        page.mouse.down()
        page.mouse.move(box["x"] + b * box["width"], y, steps=6)
        page.mouse.up()
        return float(start.input_value()), float(end.input_value())

    a, b = drag(0.4, 0.6)  # 1.6-2.4 s of the 4 s clip
    assert abs(a - 0.4 * clip["duration"]) < 0.05 and abs(b - 0.6 * clip["duration"]) < 0.05
    audio = page.locator("#ds-wave audio")
    page.locator("#ds-wave .tv-play").click()
    # it played from the region's start and stopped at its end (the clip runs on to 4 s); the margin
    # is a 2-core box at load 8+, where the stop check can run a few frames late
    page.wait_for_function(f"() => document.querySelector('#ds-wave audio').currentTime > {a + 0.2}")
    page.wait_for_function("() => document.querySelector('#ds-wave audio').paused", timeout=10_000)
    assert b - 0.05 <= audio.evaluate("a => a.currentTime") <= b + 0.6
    src = audio.evaluate("a => a.src")
    assert page.request.get(src).ok and not httpx.get(src).is_success  # served to the owner only

    a, b = drag(0.9, 0.1)  # leftwards works too: about 0.4-3.6 s
    assert abs(a - 0.1 * clip["duration"]) < 0.05 and abs(b - 0.9 * clip["duration"]) < 0.05
    start.fill("0.5")  # typing moves the region
    info.get_by_text(f"keep 0.50–{b:.2f} s").wait_for()
    page.locator("#ds-trim-apply").click()
    cell(f"0.50-{b:.2f}").wait_for()
    stored = store.get_clip(ws.db, clip["id"])
    assert (stored["trim_start"], stored["trim_end"]) == (0.5, b)

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

    # the selected clip's segments: each with its reason, each playable from its own stored file
    segments = page.locator("#ds-segments")
    segments.get_by_text(re.compile(r"^dropped: snr [\d.]+ dB is under 40 dB$")).wait_for()
    (seg,) = clip_segments(ws.db, "browser-set", clip["id"])["segments"]
    row = segments.locator("tr.sv-dropped")
    assert row.count() == 1 and f"{seg['start']:.2f}" in row.inner_text() and f"{seg['duration']:.2f} s" in row.inner_text()
    player = row.locator("audio")
    player.evaluate("a => a.play()")
    page.wait_for_function("() => document.querySelector('#ds-segments audio').currentTime > 0.2")
    assert abs(player.evaluate("a => a.duration") - seg["duration"]) < 0.02  # the segment, not the whole clip
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#ds-wave").scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dataset_trim.png"), full_page=True)
    page.set_viewport_size({"width": 820, "height": 1180})  # a tablet
    page.screenshot(path=str(ARTIFACTS / "dataset_trim_tablet.png"), full_page=True)
    page.close()
