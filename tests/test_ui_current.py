"""The studio as a daily tool, in Debian's chromium against the real `bark-studio serve` on a
non-default port: rater links carry that port, `serve` announces its URL only once it answers,
lists made after the page was built are offered, id fields start empty, marker buttons insert at
the caret in the page. Things are made after the server started, as a user's other tabs, jobs or
the CLI would make them."""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from studio import jobs, voices
from studio.listening import sessions
from studio.listening.sessions import SystemSource
from studio.workspace import Workspace
from tests.conftest import Server, cli
from tests.listening_support import make_folders

pytestmark = [pytest.mark.browser]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


class AnnouncedServer(Server):
    """Notes whether the server answered at the moment it printed its address."""

    def wait_up(self, timeout: float = 240) -> None:  # as Server's: a start at load 8 takes minutes
        deadline = time.monotonic() + timeout
        self.answered_when_announced = None
        while time.monotonic() < deadline and self.answered_when_announced is None:
            assert self.proc.poll() is None, f"server exited early:\n{Path(self.log.name).read_text()}"
            if f"Bark Studio on {self.url}" in Path(self.log.name).read_text():
                try:
                    # a port not yet listening refuses at once; a slow first page on a loaded box is no failure
                    self.answered_when_announced = httpx.get(self.url + "/", timeout=60).status_code < 500
                except httpx.HTTPError:
                    self.answered_when_announced = False
            time.sleep(0.05)
        super().wait_up(timeout)


@pytest.fixture(scope="module")
def site(tmp_path_factory, speech_dir):
    import os

    os.environ.pop("BARK_STUDIO_PUBLIC_URL", None)
    root = tmp_path_factory.mktemp("ui-current")
    ws = Workspace.resolve(root / "home")
    server = AnnouncedServer(ws)
    # made after the page is built: a voice, a generation that used it, a listening session, staged audio
    npz = ws.voices_dir / "espeak-q.npz"
    npz.parent.mkdir(parents=True, exist_ok=True)
    np.savez(npz, semantic_prompt=np.zeros(10, np.int64), coarse_prompt=np.zeros((2, 10), np.int64),
             fine_prompt=np.zeros((8, 10), np.int64))
    voices.record_voice(ws, name="espeak-q", npz=npz, model="tiny", source_path="q.wav", source_clip_id=None,
                        span=(0, 6), semantic_len=10, frames=10, job_id=None)
    wav = ws.generated_dir / "job-0" / "000.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    sf.write(wav, np.zeros(2400, np.float32), 24000)
    gen = voices.record_generation(ws, text="Reuse me.", model="tiny", voice="espeak-q", adapters=[], seed=11,
                                   params={"semantic_temperature": 0.6}, audio_path=wav, duration=0.1, job_id=None)
    folders = make_folders(root / "systems", speech_dir / "awb_arctic_a0007.wav", names=("sys_a", "sys_b"),
                           n_items=2, seconds=0.5)
    session = sessions.create_session(ws, systems=[SystemSource(n, f) for n, f in folders.items()],
                                      name="made-after-load", test_type="ab", trials_per_rater=2)
    staged = ws.exports_dir / "listening" / "my-adapter"
    staged.mkdir(parents=True)
    sf.write(staged / "item.wav", np.zeros(2400, np.float32), 24000)
    yield type("Site", (), {"ws": ws, "server": server, "session": session, "generation": gen})
    server.stop()


@pytest.fixture
def page(site, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    site.server.login(page)
    page.goto(site.server.url + "/")
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_serve_announces_its_url_once_it_answers_and_rater_links_carry_its_port(site, page):
    assert site.server.port != 7860
    assert site.server.answered_when_announced is True, "the URL was printed before the server answered"
    out = cli("listen", "raters", str(site.session["id"]), "--json", home=site.ws.root,
              env={"BARK_STUDIO_PUBLIC_URL": ""}).stdout
    assert f'"link": "{site.server.url}/listen/' in out, out

    page.get_by_role("tab", name="Listen").click()
    page.locator("#listen-session input").click()
    page.get_by_role("option", name=re.compile(rf"^{site.session['id']}: made-after-load")).click()
    page.get_by_text("Rater links", exact=True).click()
    page.get_by_role("button", name="Make rater links").click()
    links = page.locator("#listen-links textarea")
    page.wait_for_function("() => document.querySelector('#listen-links textarea').value.includes('/listen/')")
    assert re.search(rf"{re.escape(site.server.url)}/listen/\w+/\w+", links.input_value()), links.input_value()
    assert httpx.get(re.search(r"http\S+", links.input_value()).group(0), timeout=10).status_code == 200

    # the results read in the page: no server path in the text, the A/B plot shown whole
    import json

    from tests.listening_support import complete_rater

    for link in json.loads(out):
        complete_rater(site.ws.db, site.session["public_id"], link["token"], lambda i, t: "A")
    page.get_by_role("button", name="Show results").click()
    report = page.locator("#listen-results")
    report.get_by_text("votes used").first.wait_for()
    assert str(site.ws.root) not in report.inner_text() and "plot:" not in report.inner_text()
    img = page.locator("#listen-plot-1 img").first
    img.wait_for()
    page.wait_for_function("() => document.querySelector('#listen-plot-1 img').naturalWidth > 0")
    frame, shown = page.locator("#listen-plot-1").bounding_box(), img.bounding_box()
    assert shown["width"] <= frame["width"] + 1 and shown["height"] <= frame["height"] + 1  # whole, not cropped
    natural_w, natural_h = img.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert abs(shown["width"] / shown["height"] - natural_w / natural_h) < 0.05  # its own aspect, not a tile's
    shot(page, "listen")


def test_lists_made_after_the_page_was_built_are_offered(site, page):
    # Listen: the session list is filled on load, and staged audio folders are offered
    page.get_by_role("tab", name="Listen").click()
    page.locator("#listen-session input").click()
    page.get_by_role("option", name=re.compile(r": made-after-load")).wait_for()
    page.keyboard.press("Escape")
    page.get_by_text("New session", exact=True).click()
    page.get_by_label("Audio folders in the workspace").click()
    page.get_by_role("option", name="exports/listening/my-adapter").wait_for()
    page.keyboard.press("Escape")

    # Generate: "Reuse its settings" with a voice made since the page was built, then Generate
    page.get_by_role("tab", name="Generate").click()
    chosen = page.locator("#gen-chosen input, #gen-chosen textarea").first
    chosen.fill(str(site.generation["id"]))
    chosen.press("Tab")
    page.locator("#gen-reuse").click()
    page.wait_for_function("() => document.querySelector('#gen-voice input').value === 'espeak-q'")
    before = {j["id"] for j in jobs.list_jobs(site.ws.db, kind="generate")}
    page.locator("#gen-go").click()
    deadline = time.monotonic() + 120  # a click's handler at load 8
    while not (new := [j for j in jobs.list_jobs(site.ws.db, kind="generate") if j["id"] not in before]):
        assert time.monotonic() < deadline, page.locator(".toast-body").all_inner_texts()
        time.sleep(0.3)
    assert new[0]["params"]["voice"] == "espeak-q" and new[0]["params"]["seed"] == 11
    assert new[0]["params"]["semantic_temperature"] == 0.6
    jobs.request_cancel(site.ws.db, new[0]["id"])
    assert not page.locator(".toast-body").filter(has_text="not in the list of choices").count()
    shot(page, "generate")


def test_id_fields_start_empty_and_markers_insert_at_the_caret_in_the_page(site, page):
    page.get_by_role("tab", name="Generate").click()
    for elem in ("gen-seed", "gen-chosen"):
        assert page.locator(f"#{elem} input, #{elem} textarea").first.input_value() == "", elem
    box = page.locator("#gen-text textarea")
    box.fill("Hello world")
    box.evaluate("ta => { ta.focus(); ta.setSelectionRange(5, 5); }")
    page.get_by_role("button", name="[laughs]", exact=True).click()
    page.keyboard.type("ok")  # typed straight after the click: kept, after the marker (a server
    # round trip put the marker at the end and overwrote what was typed meanwhile)
    assert box.input_value() == "Hello [laughs] ok world"
    # a refused request is a message in the page and at most one line in the server's terminal
    chosen = page.locator("#gen-chosen input, #gen-chosen textarea").first
    chosen.fill("999")
    chosen.press("Tab")
    page.locator("#gen-reuse").click()
    page.get_by_text("no generation with id 999").first.wait_for()
    assert "Traceback" not in Path(site.server.log.name).read_text()
    page.get_by_role("tab", name="Jobs").click()
    assert page.locator("#jobs-selected input, #jobs-selected textarea").first.input_value() == ""
    page.get_by_role("tab", name="Train").click()
    for elem in ("train-job", "train-cp"):
        assert page.locator(f"#{elem} input, #{elem} textarea").first.input_value() == "", elem


def test_the_dataset_tab_follows_its_job_beside_the_button_pressed(site, page):
    from studio.datasets.store import create_dataset

    create_dataset(site.ws.db, "followed")
    page.reload()
    page.get_by_role("tab", name="Dataset").click()
    page.locator("#ds-select input").click()
    page.get_by_role("option", name="followed", exact=True).click()
    page.get_by_text("Transcribe and prepare (jobs)").click()
    page.locator("#ds-whisper-size input").click()  # no real Whisper here: the random test model
    page.get_by_role("option", name=re.compile(r"^test-random")).click()
    before = {j["id"] for j in jobs.list_jobs(site.ws.db, kind="transcribe")}
    page.locator("#ds-transcribe").click()
    near = page.locator("#ds-job-status")
    near.get_by_text(re.compile(r"[Jj]ob \d+")).first.wait_for()
    (job,) = [j for j in jobs.list_jobs(site.ws.db, kind="transcribe") if j["id"] not in before]
    # this test plays the worker: the row's progress is what a real transcribe job writes
    ctx = jobs.JobContext(db=site.ws.db, job_id=job["id"], run_token=jobs.claim(site.ws.db, job["id"], "test:1"),
                          params=job["params"], workspace=site.ws)
    # ... and its heartbeat: a wait below that a loaded box stretches past 2.5 beats would let the
    # page's own read sweep the job as interrupted
    beating = threading.Event()

    def beat():
        while not beating.wait(1.0):
            ctx.heartbeat()

    threading.Thread(target=beat, daemon=True).start()
    try:
        ctx.progress(0.0, message="loading Whisper base", phase="loading model")
        near.get_by_text("loading model: loading Whisper base").wait_for()
        ctx.progress(step=1, total=4, message="transcribing a.wav", phase="transcribing")
        near.get_by_text("25%").wait_for()
        ctx.progress(step=3, total=4, message="transcribing c.wav", phase="transcribing")
        near.get_by_text("75%").wait_for()  # still running: the status moves with it
        shot(page, "dataset")
    finally:
        beating.set()
    jobs.finish(site.ws.db, job["id"], ctx.run_token, "succeeded", result={})
    near.get_by_text("succeeded").wait_for()
    assert "%" not in near.inner_text() and "step" not in near.inner_text()  # no stale progress


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


@pytest.mark.parametrize("device", [PHONE, {"viewport": {"width": 1280, "height": 900}}], ids=["phone", "desktop"])
def test_tabs_markers_and_the_clips_table_fit_the_screen(site, browser, device):
    context = browser.new_context(**device)
    page = context.new_page()
    page.set_default_timeout(60_000)
    site.server.login(page)
    page.goto(site.server.url + "/")
    width = device["viewport"]["width"]
    page.locator("#ds-clips").wait_for()
    tabs = page.get_by_role("tab")
    assert tabs.count() == 7  # none hidden behind a "..." menu
    for k in range(7):
        box = tabs.nth(k).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (tabs.nth(k).inner_text(), box)
    headers = {h["text"]: h for h in page.evaluate("""() => Array.from(document.querySelectorAll('#ds-clips th'))
        .filter(th => th.offsetParent !== null).map(th => ({text: th.innerText.trim(),
            right: th.getBoundingClientRect().right, width: th.getBoundingClientRect().width,
            wordBreak: getComputedStyle(th).wordBreak}))""")}
    for name in ("id", "name", "transcript", "checked", "lint"):  # in view, wide enough to read
        assert name in headers and headers[name]["right"] <= width + 1 and headers[name]["width"] >= 20, headers
        assert headers[name]["wordBreak"] == "normal", headers[name]
    page.get_by_role("tab", name="Generate").click()
    markers = page.locator("#gen-markers button")
    markers.first.wait_for()
    for k in range(markers.count()):
        box = markers.nth(k).bounding_box()
        assert box and box["x"] + box["width"] <= width + 1, (markers.nth(k).inner_text(), box)
    shot(page, f"generate-{'phone' if width < 500 else 'desktop'}")
    context.close()
