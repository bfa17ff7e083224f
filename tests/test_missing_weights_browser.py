"""The studio in Debian's chromium with an empty model cache (HF_HUB_OFFLINE=1): Generate with the
default model is refused in the page with the one missing-weights line and nothing is queued; the
Voices tab says Bark's built-in voices are not downloaded and how to fetch them; the Jobs tab's
model panel lists every preset's components as missing, with where they would live."""
from __future__ import annotations

import pytest

from studio import jobs
from tests.conftest import Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FETCH = "bark-studio models download small"


@pytest.fixture
def empty_studio(ws, tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
           "BARK_STUDIO_WHISPER_ROOT": str(tmp_path / "whisper")}
    server = Server(ws, env=env)
    yield server, env
    server.stop()


def test_default_model_submit_with_no_weights_is_one_line_and_queues_nothing(ws, empty_studio, browser):
    server, env = empty_studio
    page = server.open_page(browser)

    page.get_by_role("tab", name="Generate").click()
    assert page.locator("#gen-model input").first.input_value() == "suno/bark-small (small)"  # the default
    box = page.locator("#gen-text textarea").first
    box.fill("Hello from the studio.")
    page.locator("#gen-go").click()
    toast = page.locator(".toast-body").get_by_text("model 'small' is not downloaded").first
    toast.wait_for()
    text = toast.inner_text().strip()
    assert "missing Bark suno/bark-small" in text and text.endswith(f"run `{FETCH}`") and "\n" not in text
    assert jobs.list_jobs(ws.db) == []  # refused before any job row

    page.get_by_role("tab", name="Voices").click()
    status = page.locator("#voices-builtin-status")
    status.get_by_text("Not downloaded").wait_for()
    assert FETCH in status.inner_text() and "Bark built-in voices suno/bark-small" in status.inner_text()

    page.get_by_role("tab", name="Jobs").click()
    page.locator("#models-panel").get_by_text("Models on this machine").click()
    summary = page.locator("#models-summary")
    summary.get_by_text("missing Bark").first.wait_for()
    assert f"run {FETCH}" in summary.inner_text().replace("`", "")
    table = page.locator("#models-table")
    table.get_by_text("missing: base.pt").filter(visible=True).first.wait_for()
    assert env["HF_HUB_CACHE"] + "/models--suno--bark-small" in table.inner_text()
    page.close()
