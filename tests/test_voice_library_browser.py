"""The voice library as a user walks to it, in Debian's chromium against one real studio and its
embedded worker: label two clips with two speakers in the Dataset tab, train a tiny adapter with
"Condition on: speaker" from the Train tab, then in the Voices tab play both learned voices and a
mix between them (the generate job carries the mix), and hand the voice over to the Generate tab."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from studio import jobs
from tests.conftest import Server
from tests.queue_support import copy_template

ARTIFACTS = Path(__file__).parent / "artifacts"
TINY = "tiny (test model: random weights, not a voice)"


def _choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def _fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


def _wait_job(ws, kind: str, count: int, timeout: float = 600) -> dict:
    """The newest of `count` jobs of `kind`, once it has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = jobs.list_jobs(ws.db, kind=kind)
        if len(rows) >= count and rows[0]["status"] not in ("queued", "running"):
            return rows[0]
        time.sleep(0.3)
    raise AssertionError(f"no ended {kind} job #{count} within {timeout:.0f} s: {jobs.list_jobs(ws.db, kind=kind)}")


def _playable(page, elem_id: str) -> None:
    """The player holds a file (Gradio shows its download link once it has a value)."""
    page.locator(f"#{elem_id} a[data-testid='download-link']").wait_for()


@pytest.mark.browser
@pytest.mark.slow  # a server, a training job and three generate jobs
@pytest.mark.timeout(1500)
def test_label_train_conditioned_then_play_two_library_voices_and_a_mix(train_template, tmp_path, monkeypatch,
                                                                        browser):
    from studio.datasets.store import list_clips
    from studio.workspace import Workspace

    monkeypatch.delenv("BARK_STUDIO_REDIS_URL", raising=False)
    home = copy_template(train_template, tmp_path / "home")
    monkeypatch.setenv("BARK_STUDIO_HOME", str(home))
    ws = Workspace.resolve(home)
    awb, slt = sorted(list_clips(ws.db, "voice"), key=lambda c: "slt" in c["name"])
    server = Server(ws, embedded_workers=1)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(120_000)
        server.login(page)
        page.goto(server.url + "/")

        # Dataset tab: one speaker per clip
        table = page.locator("#ds-clips")
        page.locator("#ds-report").get_by_text("2 clips").first.wait_for()  # the dataset's clips are listed
        for clip, speaker in ((awb, "alice"), (slt, "bob")):
            table.get_by_text(clip["name"]).filter(visible=True).first.click()
            page.locator("#lb-clip-title").get_by_text(f"Labels of clip {clip['id']}").wait_for()
            page.locator("#lb-clip-labels textarea").fill(f"speaker={speaker}")
            page.locator("#lb-clip-save").click()
            page.locator("#lb-status").get_by_text(f"clip {clip['id']}: speaker={speaker}").wait_for()

        # Train tab: condition on the speaker label, a few steps
        page.get_by_role("tab", name="Train").click()
        _choose(page, "train-dataset", "voice")
        page.locator("#train-dataset-report").get_by_text(re.compile(r"voice.*training segments")).wait_for()
        _choose(page, "train-condition", "speaker")
        _choose(page, "train-base", TINY)
        page.locator("#train-advanced").get_by_text("Advanced settings").click()
        for name, value in (("max_steps", 2), ("batch_size", 1), ("grad_accum", 1), ("save_every", 100),
                            ("eval_every", 100)):
            _fill(page, f"train-adv-{name}", value)
        _fill(page, "train-name", "cast")
        page.locator("#train-estimate").get_by_text("2 optimizer steps").wait_for()
        page.locator("#train-launch").click()
        train = _wait_job(ws, "train", 1)
        assert train["status"] == "succeeded", train
        assert train["params"]["condition"] == ["speaker"]

        # Voices tab: the library lists both learned speakers with their real clips
        page.get_by_role("tab", name="Voices").click()
        library = page.locator("#voice-library")
        for speaker in ("alice", "bob"):
            library.locator(f"tr[data-adapter='cast'][data-speaker='{speaker}'] .vl-ref audio").wait_for(
                state="attached")
        ref_src = library.locator("tr[data-speaker='bob'] .vl-ref audio").get_attribute("src")
        assert ref_src.startswith("gradio_api/file=") and slt["blob"].split("/")[-1] in ref_src
        res = page.request.get(f"{server.url}/{ref_src}")  # the authenticated route plays it to the owner
        assert res.ok and res.body()[:4] == b"RIFF", res.status

        _choose(page, "vl-adapter", "cast")
        page.wait_for_function(
            "() => document.querySelector('#vl-speaker-b input').value === 'bob'")
        _fill(page, "vl-max-tokens", 12)  # a short take keeps a CPU test short
        page.locator("#vl-play-a").click()
        _wait_job(ws, "generate", 1)
        _playable(page, "vl-audio-a")
        page.locator("#vl-play-b").click()
        _wait_job(ws, "generate", 2)
        _playable(page, "vl-audio-b")
        _fill(page, "vl-mix", 0.3)
        page.locator("#vl-play-mix").click()
        mixed = _wait_job(ws, "generate", 3)
        _playable(page, "vl-audio-mix")
        generated = jobs.list_jobs(ws.db, kind="generate")
        assert [j["status"] for j in generated] == ["succeeded"] * 3, generated
        assert [j["params"]["speaker"] for j in reversed(generated)] == [
            {"alice": 1.0}, {"bob": 1.0}, {"alice": 0.7, "bob": 0.3}]
        assert mixed["params"]["adapters"][0]["name"] == "cast"
        # each sample joins the library; asking again reuses it (no new job)
        library.locator("tr[data-speaker='bob'] .vl-sample audio").wait_for(state="attached")
        page.locator("#vl-play-b").click()
        page.wait_for_timeout(1500)
        assert len(jobs.list_jobs(ws.db, kind="generate")) == 3
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#voice-library").evaluate("e => e.scrollIntoView()")
        page.screenshot(path=str(ARTIFACTS / "voice_library.png"), full_page=False)

        # Use in Generate: the Generate tab opens with the adapter, the speakers and the mix
        page.locator("#vl-use").click()
        page.locator("#gen-cond-speaker").wait_for()
        page.wait_for_function("() => document.querySelector('#gen-cond-second input').value === 'bob'")
        assert page.locator("#gen-adapter-1 input").first.input_value() == "cast"
        assert page.locator("#gen-cond-speaker input").first.input_value() == "alice"
        assert page.locator("#gen-cond-mix input[type=number]").first.input_value() == "0.3"
        # ... and generating from there submits the same mix (the controls' params, like the CLI's)
        _fill(page, "gen-text", "Hello there.")
        page.locator("#gen-go").click()  # only its params are checked: the server stops before it ends
        deadline = time.monotonic() + 120  # a click's handler at load 8
        while len(jobs.list_jobs(ws.db, kind="generate")) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        generated = jobs.list_jobs(ws.db, kind="generate")
        assert len(generated) == 4, generated  # else the newest is the library's mix job, with the same speakers
        queued = generated[0]
        assert queued["params"]["text"] == "Hello there."
        assert queued["params"]["speaker"] == {"alice": 0.7, "bob": 0.3}, queued["params"]
        assert queued["params"]["model"] == "tiny" and queued["params"]["adapters"][0]["name"] == "cast"
        page.close()
    finally:
        server.stop()


def test_the_controls_make_the_cli_s_speaker_and_labels_params():
    """What the Generate tab's controls and the library's slider submit: `generate --speaker A:0.7
    --speaker B:0.3 --label accent=0.35` makes the same params."""
    from studio.cli.models_cmd import condition_params as cli_params
    from studio.ui.condition_controls import MAX_LABELS, NO_SECOND, ConditionControls, condition_params

    assert condition_params("alice", "bob", 0.3, {"accent": 0.35}) == cli_params(
        ["alice:0.7", "bob:0.3"], ["accent=0.35"])
    assert condition_params("alice", NO_SECOND, 0.3, {}) == {"speaker": {"alice": 1.0}}  # no second: no mix
    assert condition_params("alice", "bob", 1.0, {}) == {"speaker": {"bob": 1.0}}  # the end of the slider
    assert condition_params("alice", "alice", 0.5, {}) == {"speaker": {"alice": 1.0}}
    assert condition_params(None, NO_SECOND, 0, {}) == {}  # an unconditioned adapter adds nothing
    names = {"numeric": ["accent"], "categorical": ["emotion"]}
    sliders = [0.35] + [0.0] * (MAX_LABELS - 1)
    dropdowns = ["angry"] + [None] * (MAX_LABELS - 1)
    assert ConditionControls.params(["alice", NO_SECOND, 0, names, *sliders, *dropdowns]) == {
        "speaker": {"alice": 1.0}, "labels": {"accent": 0.35, "emotion": "angry"}}
