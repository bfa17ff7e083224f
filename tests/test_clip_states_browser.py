"""The Dataset tab's Exclude/Include and Delete/Undo buttons in Debian's chromium: the selected clip
is marked in the clips table and left out of the report, hidden when deleted, and both come back."""
from __future__ import annotations

import pytest

from studio.datasets import store
from studio.datasets.importer import ImportOptions, import_paths
from studio.ui.dataset_tab import STATE_NOTE
from tests.conftest import Server


@pytest.mark.browser
@pytest.mark.slow  # ~70 s on the loaded 2-core box, most of it the server starting
def test_exclude_include_delete_undo_buttons(ws, browser, awb_wav, slt_wav):
    store.create_dataset(ws.db, "buttons")
    import_paths(ws, "buttons", [str(awb_wav), str(slt_wav)], ImportOptions())
    awb = next(c for c in store.list_clips(ws.db, "buttons") if "awb" in c["name"])
    server = Server(ws)
    try:
        page = server.open_page(browser)
        table, report = page.locator("#ds-clips"), page.locator("#ds-report")

        def cell(text: str):  # the dataframe keeps a hidden copy of each cell for measuring; use the visible one
            return table.get_by_text(text).filter(visible=True)

        report.get_by_text("2 clips").first.wait_for()  # the page load has filled the table
        cell(awb["name"]).first.click()
        page.locator("#ds-clip-title").get_by_text(awb["name"]).wait_for()

        page.locator("#ds-exclude").click()
        cell(STATE_NOTE).first.wait_for()
        report.get_by_text("Excluded: 1 clip").wait_for()
        assert cell(STATE_NOTE).count() == 1 and store.get_clip(ws.db, awb["id"])["state"] == "excluded"
        page.locator("#ds-include").click()
        cell(STATE_NOTE).first.wait_for(state="detached")
        assert store.get_clip(ws.db, awb["id"])["state"] == "active" and "Excluded" not in report.inner_text()

        page.locator("#ds-delete").click()
        cell(awb["name"]).first.wait_for(state="detached")
        page.locator("#ds-clip-title").get_by_text("deleted").wait_for()
        assert [c["id"] for c in store.list_clips(ws.db, "buttons")] != [] and \
            awb["id"] not in [c["id"] for c in store.list_clips(ws.db, "buttons")]
        page.locator("#ds-undelete").click()
        cell(awb["name"]).first.wait_for()
        assert store.get_clip(ws.db, awb["id"])["state"] == "active"
        page.close()
    finally:
        server.stop()
