"""In Debian's chromium: the Listen tab shows the A/B results table, and after more votes the plot
image the page serves is a new one (it once showed 1-1 while the text above it said 2-0)."""
from __future__ import annotations

import re

import pytest

from studio.listening import sessions
from studio.listening.sessions import SystemSource
from tests.conftest import Server
from tests.listening_support import complete_rater, make_folders
from tests.test_listen_results import _side_of, _system_of


@pytest.mark.browser
@pytest.mark.slow  # ~70 s on the loaded 2-core box, most of it the server starting
def test_table_and_served_plot_follow_new_votes(ws, browser, tmp_path, awb_wav):
    folders = make_folders(tmp_path / "src", awb_wav, names=("a", "b"), n_items=2, seconds=0.5)
    made = sessions.create_session(ws, name="ab", systems=[SystemSource(n, f) for n, f in folders.items()], n_gold=0)
    system_of = _system_of(ws, made["id"])
    first, second = sessions.add_raters(ws, made["id"], 2)
    complete_rater(ws.db, made["public_id"], first["token"], _side_of(system_of, "a"))
    server = Server(ws)
    try:
        page = server.open_page(browser)
        page.get_by_role("tab", name="Listen").click()
        page.locator("#listen-session input").click()
        page.get_by_role("option", name=re.compile(rf"^{made['id']}: ")).click()
        show = page.get_by_role("button", name="Show results")
        table, plot = page.locator("#listen-table"), page.locator("#listen-plot-1 img")

        show.click()
        table.get_by_text("2-0-0").filter(visible=True).first.wait_for()
        assert table.get_by_text("[0.16, 1.00]").filter(visible=True).count() == 1
        src_before = plot.get_attribute("src")
        bytes_before = page.request.get(src_before).body()

        complete_rater(ws.db, made["public_id"], second["token"], _side_of(system_of, "b"))
        show.click()
        table.get_by_text("2-2-0").filter(visible=True).first.wait_for()
        page.wait_for_function("(old) => { const i = document.querySelector('#listen-plot-1 img');"
                               " return i && i.src && i.src !== old; }", arg=src_before)
        assert page.request.get(plot.get_attribute("src")).body() != bytes_before
        page.close()
    finally:
        server.stop()
