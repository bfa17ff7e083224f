"""The Generate tab in Debian's chromium with its default model against the real-format `small`
hub cache (tests/hub_fixture.py: the files bark-small ships, seeded random weights), offline: the
page opens on suno/bark-small, a submit runs a real generate job in the embedded worker, and the
audio plays. Bark's built-in voices from that cache are listed in the Voices tab (a sample is a
generate job with that voice) and offered as voices in the Generate tab."""
from __future__ import annotations

import pytest

from studio import jobs
from studio import voices as V
from tests.conftest import Server
from tests.hub_fixture import hub_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def studio(ws):
    server = Server(ws, embedded_workers=1, env=hub_env())
    yield server
    server.stop()


def _fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


@pytest.mark.timeout(1500)  # bark-small's real shapes on a shared 2-core CPU: minutes, not seconds
def test_generate_with_the_default_model_plays_and_built_in_voices_are_offered(ws, studio, browser):
    page = studio.open_page(browser)

    page.get_by_role("tab", name="Generate").click()
    assert page.locator("#gen-model input").first.input_value() == "suno/bark-small (small)"  # untouched
    _fill(page, "gen-text", "Hello from the real model.")
    page.get_by_text("Sampling").click()
    _fill(page, "gen-max-tokens", 16)
    page.locator("#gen-go").click()
    page.locator("#gen-status").get_by_text("succeeded").wait_for(timeout=900_000)
    (job,) = jobs.list_jobs(ws.db, kind="generate")
    assert job["params"]["model"] == "small" and job["status"] == "succeeded", job
    # the result plays in the page: the player holds the generated WAV, served by the studio
    link = page.locator("#gen-out-1 a[data-testid='download-link']")
    link.wait_for()
    wav = page.request.get(link.get_attribute("href"))
    assert wav.ok and wav.body()[:4] == b"RIFF" and wav.body()[8:12] == b"WAVE"
    player = page.locator("#gen-out-1 audio[src]").first
    player.wait_for(state="attached")
    page.wait_for_function("a => a.duration > 0", arg=player.element_handle())
    (row,) = V.list_generations(ws)
    assert row["model"] == "small" and (ws.root / row["audio_path"]).is_file()

    # the fixture's built-in voices are offered as voices here...
    page.locator("#gen-voice input").first.click()
    page.get_by_role("option", name="v2/en_speaker_6 (Bark built-in)", exact=True).wait_for()
    page.keyboard.press("Escape")

    # ...and listed in the Voices tab, where a sample is a generate job with that voice
    page.get_by_role("tab", name="Voices").click()
    page.locator("#voices-builtin-status").get_by_text("built-in voices of suno/bark-small").wait_for()
    page.locator("#voices-builtin input").first.click()
    page.get_by_role("option", name="v2/en_speaker_6 (Bark built-in)", exact=True).click()
    page.locator("#voices-builtin-sample").click()
    page.locator("#voices-builtin-job").get_by_text("generate").wait_for()
    sample = jobs.list_jobs(ws.db, kind="generate")[0]
    assert sample["id"] != job["id"]
    assert (sample["params"]["voice"], sample["params"]["model"]) == ("v2/en_speaker_6", "small")
    page.close()
