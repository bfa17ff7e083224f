"""The Dataset tab's labels editor and declared-tag palette in Debian's chromium: label one clip,
apply a label in bulk to clips selected by name, see a bad label refused with its clip named,
declare a tag, and insert it from the palette into the transcript."""
from __future__ import annotations

import pytest

from studio.datasets import store
from studio.datasets.importer import import_paths
from studio.datasets.labels import list_labels
from tests.conftest import Server


@pytest.mark.browser
@pytest.mark.slow  # most of it the server starting
def test_label_clips_in_bulk_and_insert_a_declared_tag(ws, browser, awb_wav, slt_wav):
    store.create_dataset(ws.db, "voices")
    import_paths(ws, "voices", [str(awb_wav), str(slt_wav)])
    awb, slt = sorted(store.list_clips(ws.db, "voices"), key=lambda c: "slt" in c["name"])

    def labels() -> dict[str, dict]:
        return {r["name"]: r["labels"] for r in list_labels(ws.db, "voices")}

    server = Server(ws)
    try:
        page = server.open_page(browser)
        table, report = page.locator("#ds-clips"), page.locator("#ds-report")
        report.get_by_text("2 clips").first.wait_for()

        # per clip: select it, write its labels, save
        table.get_by_text(awb["name"]).filter(visible=True).first.click()
        page.locator("#lb-clip-title").get_by_text(f"Labels of clip {awb['id']} ({awb['name']})").wait_for()
        page.locator("#lb-clip-labels textarea").fill("speaker=alice accent=0.2")
        page.locator("#lb-clip-save").click()
        page.locator("#lb-status").get_by_text(f"clip {awb['id']}: speaker=alice accent=0.2").wait_for()
        report.get_by_text("Label accent (numeric)").wait_for()
        assert labels()[awb["name"]] == {"speaker": "alice", "accent": 0.2}

        # in bulk: select both clips by a name glob, apply one label to them
        page.locator("#lb-glob textarea").fill("*_arctic_*")
        page.locator("#lb-glob-select").click()
        page.locator("#lb-bulk-clips").get_by_text(slt["name"]).wait_for()
        page.locator("#lb-bulk-labels textarea").fill("emotion=calm")
        page.locator("#lb-bulk-apply").click()
        report.get_by_text("Label emotion (categorical): calm 2 clip(s)").wait_for()
        assert labels() == {awb["name"]: {"speaker": "alice", "accent": 0.2, "emotion": "calm"},
                            slt["name"]: {"emotion": "calm"}}

        # a bad label: one line naming the clip and the label; nothing stored
        page.locator("#lb-bulk-labels textarea").fill("intensity=0.9 accent")
        page.locator("#lb-bulk-apply").click()
        page.get_by_text(f"2 clips of voices ({awb['name']}, {slt['name']}): label 'accent' needs the form name=value",
                         exact=False).first.wait_for()
        assert labels()[slt["name"]] == {"emotion": "calm"}

        # a declared tag joins the palette and goes in at the caret
        page.locator("#lb-tag-new textarea").fill("rain intensifies")
        page.locator("#lb-tag-declare").click()
        tag_button = page.locator("#lb-tag-palette").get_by_role("button", name="[rain intensifies]", exact=True)
        tag_button.wait_for()
        text = page.locator("#ds-text textarea")
        text.fill("The storm is coming.")
        text.evaluate("t => { t.focus(); t.setSelectionRange(9, 9); }")  # after "The storm"
        tag_button.click()
        assert text.input_value() == "The storm [rain intensifies] is coming."
        page.locator("#ds-text-save").click()
        report.get_by_text("Tag [rain intensifies]: 1 time(s) in 1 clip(s)").wait_for()
        assert "unknown tag" not in page.locator("#ds-lint").inner_text()
        page.close()
    finally:
        server.stop()
