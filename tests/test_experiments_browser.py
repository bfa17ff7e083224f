"""The emergent-behaviour gallery (Experiments tab) in Debian's chromium against the real studio:
entries made through the domain API from real recordings are listed, a clicked entry plays back
(the player's source is served by the studio and is the WAV that was logged), and starring it in
the page persists in SQLite (and survives a reload)."""
from __future__ import annotations

import sqlite3

import pytest

from studio.experiments import emergent
from tests.conftest import Server

pytestmark = [pytest.mark.browser]


@pytest.fixture
def gallery(ws, awb_wav, slt_wav):
    breath = emergent.add_entry(ws, audio=str(awb_wav), tags=["Breathy"], notes="odd breath at the end")
    laugh = emergent.add_entry(ws, audio=str(slt_wav), tags=["laugh"], notes="laughs mid-word", stars=1)
    server = Server(ws)
    yield server, breath, laugh
    server.stop()


def _visible(locator):  # the dataframe keeps a hidden copy of each cell for measuring; use the visible one
    return locator.filter(visible=True).first


def _open(page, gallery_url):
    page.goto(gallery_url + "/")
    page.get_by_role("tab", name="Experiments").click()
    return page.locator("#emergent-table")


def test_gallery_lists_plays_and_stars_persist(ws, gallery, browser, awb_wav):
    server, breath, laugh = gallery
    page = browser.new_page()
    page.set_default_timeout(60_000)
    server.login(page)
    table = _open(page, server.url)

    # both entries are listed, newest first, with their tags and notes
    _visible(table.get_by_text("odd breath at the end", exact=True)).wait_for()
    _visible(table.get_by_text("laughs mid-word", exact=True)).wait_for()
    _visible(table.get_by_text("breathy", exact=True)).wait_for()
    body = table.inner_text()
    assert body.index("laughs mid-word") < body.index("odd breath at the end")

    # clicking a row opens it: the player's source is served by the studio and is the logged WAV
    _visible(table.get_by_text("odd breath at the end", exact=True)).click()
    page.wait_for_function(
        "id => document.querySelector('#emergent-entry-id input').value === String(id)", arg=breath["id"])
    link = page.locator("#emergent-audio a[data-testid='download-link']")
    link.wait_for()
    served = page.request.get(link.get_attribute("href"))
    assert served.ok and served.body() == awb_wav.read_bytes()
    # the player element holds that WAV (fetched into a blob) and knows its length (4.0 s)
    player = page.locator("#emergent-audio audio[src]").first
    player.wait_for(state="attached")
    page.wait_for_function("a => a.duration > 0", arg=player.element_handle())  # (in a shadow root)
    head, size, duration = player.evaluate(
        "async a => { const b = new Uint8Array(await (await fetch(a.src)).arrayBuffer());"
        " return [Array.from(b.slice(0, 12)), b.length, a.duration]; }")
    assert bytes(head[:4]) == b"RIFF" and bytes(head[8:12]) == b"WAVE"
    assert size == awb_wav.stat().st_size and abs(duration - 4.0) < 0.05
    page.locator("#emergent-image img").wait_for()  # waveform and spectrogram drawn
    page.locator("#emergent-params").get_by_text("awb_arctic_a0007.wav").first.wait_for()  # what it came from

    # star it 4 and save: SQLite holds it, the table shows it, the stars filter finds it
    stars = page.locator("#emergent-stars input[type=number]")
    assert stars.input_value() == "0"
    stars.fill("4")
    stars.press("Tab")
    page.locator("#emergent-save").click()
    page.locator("#emergent-status").get_by_text(f"Saved entry {breath['id']}.").wait_for()
    with sqlite3.connect(ws.db_path) as db:  # a fresh connection: what is on disk
        on_disk = dict(db.execute("SELECT id, stars FROM emergent_entries").fetchall())
    assert on_disk == {breath["id"]: 4, laugh["id"]: 1}
    (saved,) = [e for e in emergent.list_entries(ws) if e["id"] == breath["id"]]
    assert saved["tags"] == ["breathy"] and saved["notes"] == "odd breath at the end"  # the rest kept
    min_stars = page.locator("#emergent-min-stars input[type=number]")
    min_stars.fill("3")
    min_stars.press("Tab")
    _visible(table.get_by_text("laughs mid-word", exact=True)).wait_for(state="hidden")
    _visible(table.get_by_text("odd breath at the end", exact=True)).wait_for()

    # a fresh page load shows the stars it was given
    table = _open(page, server.url)
    _visible(table.get_by_text("odd breath at the end", exact=True)).click()
    page.wait_for_function("() => document.querySelector('#emergent-stars input[type=number]').value === '4'")
    page.close()
