"""The whole loop through the studio's pages alone, in Debian's chromium, against the real
`bark-studio serve` on a non-default port with its embedded worker and the tiny model: a dataset
of the real speech, a transcript with [laughs], Whisper (random test weights), prepare, a voice,
a LoRA, generation with it, a blind A/B session a rater takes on a phone through the link the
Listen tab made, its results, a sweep launched from the Experiments tab, the emergent log.
Reopening the Train tab offers the run to pick, not an id to type. A screenshot of every tab
and of the rater's page goes to tests/artifacts/walkthrough/ for a person to look at."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from playwright.sync_api import expect

from studio import jobs, voices
from studio.experiments import sweeps
from studio.listening import sessions
from tests.conftest import Server
from tests.queue_support import maps_torch

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1800)]
SHOTS = Path(__file__).resolve().parent / "artifacts" / "walkthrough"
TINY = "tiny (test model: random weights, not a voice)"
JOB_WAIT_MS = 400_000  # a job on a 2-core box at load 8
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
TEXT = "Hello from the walkthrough."
# The LoRA's optimizer steps: enough that the run cannot end inside one of the test's polls, even when
# a loaded box deschedules the test for a while (6 tiny steps did, in one CI run).
STEPS = 100


def _choose(page, elem_id: str, option: str | re.Pattern) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=isinstance(option, str)).click()


def _fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


def _ends(page, elem_id: str, job_no: int | None = None) -> str:
    """Wait until the job view `elem_id` reads an ended job (job_no's, when given); its text."""
    page.wait_for_function(
        "([id, n]) => { const t = (document.querySelector('#' + id) || {}).innerText || '';"
        " return (n === null || t.includes('Job ' + n + ' ')) && /succeeded|failed|cancelled/.test(t); }",
        arg=[elem_id, job_no], timeout=JOB_WAIT_MS)
    return page.locator(f"#{elem_id}").inner_text()


def _picker_reads(page, elem_id: str, start: str) -> None:
    """Wait until the job picker `elem_id` shows a job whose label starts so."""
    page.wait_for_function("([id, s]) => (document.querySelector('#' + id + ' input') || {}).value?.startsWith(s)",
                           arg=[elem_id, start], timeout=30_000)


def _loss_points(ws, job_id: int) -> int:
    with ws.db.read() as s:
        return len(list(s.scalars(select(jobs.JobMetric.step).where(
            jobs.JobMetric.job_id == job_id, jobs.JobMetric.name == "loss"))))


def _write_locked(ws) -> bool:
    con = sqlite3.connect(ws.db_path, timeout=0.5, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        con.close()


def _hold_mid_run(ws, job_id: int, total_steps: int, timeout: float = 400) -> tuple[int, int]:
    """SIGSTOP the job's training process between its first and its last loss point; returns its pid
    (SIGCONT it) and the points written so far. The process is stopped before the points are counted,
    so no step can land between the count and the hold, however fast the steps are. The supervising
    worker keeps beating the row's heartbeat meanwhile, so the page is seen mid-run."""
    deadline = time.monotonic() + timeout
    pid = None
    while time.monotonic() < deadline:
        job = jobs.get_job(ws.db, job_id)
        assert job["status"] in ("queued", "running"), job
        if pid is None and (m := re.search(r"spawned process \(pid (\d+)\)", job["log_tail"] or "")):
            pid = int(m.group(1))
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)
            points = _loss_points(ws, job_id)
            assert points < total_steps, f"job {job_id} wrote all {total_steps} points before it could be held"
            if points and not _write_locked(ws):  # not held mid-commit: others' writes would wait on it
                return pid, points
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} wrote no loss point in {timeout}s")


def _new_job(ws, kind: str, before: set, timeout: float = 60) -> int:
    """The id of the job of `kind` the page just queued (one not in `before`)."""
    deadline = time.monotonic() + timeout
    while not (new := [j["id"] for j in jobs.list_jobs(ws.db, kind=kind) if j["id"] not in before]):
        assert time.monotonic() < deadline, f"no {kind} job was queued"
        time.sleep(0.2)
    return new[0]


def _side_holding(ws, session_id: int, system: str) -> str:
    """The side ("A" or "B") of the session's one trial that plays `system`, from the stored plan."""
    from studio.listening.tables import ListenAssignment, ListenStimulus, ListenSystem

    with ws.db.read() as s:
        on_a = s.scalar(select(ListenSystem.name).join(ListenStimulus, ListenStimulus.system_id == ListenSystem.id)
                        .join(ListenAssignment, ListenAssignment.stimulus_a_id == ListenStimulus.id)
                        .where(ListenAssignment.session_id == session_id))
    return "A" if on_a == system else "B"


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def studio(ws, monkeypatch):
    monkeypatch.delenv("BARK_STUDIO_PUBLIC_URL", raising=False)  # the rater link names this server's port
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # 2 shared cores: no thread oversubscription in the jobs
    server = Server(ws, embedded_workers=2)
    yield server
    server.stop()


@pytest.fixture
def page(browser):
    """The owner's browser tab."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def test_the_whole_loop_through_the_pages(ws, studio, page, browser, tmp_path, awb_wav, slt_wav):
    try:
        assert studio.port != 7860
        studio.login(page)
        page.goto(studio.url + "/")

        # Dataset: create, import the real speech, transcribe, correct by hand with [laughs], prepare.
        _fill(page, "ds-new-name", "walk")
        page.locator("#ds-create").click()
        page.locator("#ds-upload input[type=file]").set_input_files([str(awb_wav), str(slt_wav)])
        page.locator("#ds-upload").get_by_text("slt_arctic_a0009").first.wait_for()
        page.locator("#ds-import").click()
        _ends(page, "ds-status", _new_job(ws, "import", set()))
        table = page.locator("#ds-clips")
        table.get_by_text("upload/awb_arctic_a0007.wav").filter(visible=True).first.wait_for(timeout=JOB_WAIT_MS)
        table.get_by_text("upload/slt_arctic_a0009.wav").filter(visible=True).first.wait_for()
        texts = {"awb_arctic_a0007": "Author of the danger trail, Philip Steels, et cetera.",
                 "slt_arctic_a0009": "It had fallen on them like a thunderbolt."}

        def correct(clip: str) -> None:
            table.get_by_text(f"upload/{clip}.wav").filter(visible=True).first.click()
            page.locator("#ds-clip-title").get_by_text(clip).wait_for()
            box = page.locator("#ds-text textarea")
            box.fill(texts[clip])
            if clip.startswith("awb"):  # a marker from the palette, at the caret after "trail,"
                box.evaluate("t => { t.focus(); t.setSelectionRange(27, 27); }")
                page.locator("#ds-palette").get_by_role("button", name="[laughs]", exact=True).click()
            page.locator("#ds-text-save").click()
            table.get_by_text(texts[clip][:20]).filter(visible=True).first.wait_for()

        page.get_by_text("Transcribe and prepare (jobs)").first.click()
        _choose(page, "ds-whisper-size", re.compile(r"^test-random"))
        page.locator("#ds-transcribe").click()
        assert "succeeded" in _ends(page, "ds-job-status", _new_job(ws, "transcribe", set()))
        for clip in texts:  # random test weights heard nonsense: corrected by hand, one with a marker
            correct(clip)
        page.locator("#ds-report").get_by_text("[laughs]: 1").wait_for()
        page.locator("#ds-prepare").click()
        prepare_no = _new_job(ws, "prepare", set())
        assert "succeeded" in _ends(page, "ds-job-status", prepare_no)
        page.locator("#ds-report").get_by_text(re.compile(r"training segments", re.I)).first.wait_for()
        # the tab's job list caught up with the job's end (no stale "running")
        _picker_reads(page, "ds-job", f"#{prepare_no} prepare · walk · succeeded · ")
        _shot(page, "dataset")
        from studio.datasets.store import list_clips

        said = {c["name"]: c["text"] for c in list_clips(ws.db, "walk")}
        assert said["upload/awb_arctic_a0007.wav"] == "Author of the danger trail, [laughs] Philip Steels, et cetera."

        # Voices: a voice prompt from an 8 s recording of awb (the rule is 5 to 12 s).
        recording = tmp_path / "awb_twice.wav"
        subprocess.run(["sox", awb_wav, awb_wav, recording], check=True)
        page.get_by_role("tab", name="Voices").click()
        page.locator("#voices-upload input[type=file]").set_input_files(str(recording))
        _fill(page, "voices-name", "walk-voice")
        _choose(page, "voices-model", TINY)
        page.locator("#voices-make").click()
        assert "succeeded" in _ends(page, "voices-status")
        page.locator("#voices-table").get_by_text("walk-voice", exact=True).filter(visible=True).first.wait_for()
        _shot(page, "voices")

        # Train: a tiny LoRA of a few steps, its loss drawn.
        page.get_by_role("tab", name="Train").click()
        _choose(page, "train-dataset", "walk")
        _choose(page, "train-base", TINY)
        for stage in ("coarse", "fine"):
            page.locator("#train-stages").get_by_label(stage).uncheck()
        page.locator("#train-advanced").get_by_text("Advanced settings").click()
        for name, value in (("max_steps", STEPS), ("batch_size", 1), ("grad_accum", 1), ("save_every", STEPS),
                            ("eval_every", STEPS)):
            _fill(page, f"train-adv-{name}", value)
        _choose(page, "train-adv-precision", "fp32")
        _fill(page, "train-name", "walk-lora")
        page.locator("#train-estimate").get_by_text(f"{STEPS} optimizer steps").wait_for()
        page.locator("#train-launch").click()
        train_no = _new_job(ws, "train", set())
        # exactly the preset plus the fields changed here: nothing silently overridden
        assert jobs.get_job(ws.db, train_no)["params"] == {
            "dataset": "walk", "model": "tiny", "stages": ["semantic"], "preset": "quick", "name": "walk-lora",
            "max_steps": STEPS, "batch_size": 1, "grad_accum": 1, "save_every": STEPS, "eval_every": STEPS,
                "precision": "fp32"}
        # the curve is drawn while the job runs: held mid-run, the page shows the points written so far
        # and "running"; released, the run ends with all of them
        held, points = _hold_mid_run(ws, train_no, STEPS)
        try:
            page.locator("#train-loss-latest").get_by_text(
                re.compile(rf"train loss [\d.]+ at step {points} \({points} points\)")).wait_for(timeout=60_000)
            assert "running" in page.locator("#train-status").inner_text()
        finally:
            os.kill(held, signal.SIGCONT)
        assert "succeeded" in _ends(page, "train-status", train_no)
        assert _loss_points(ws, train_no) == STEPS

        # Reopened, the Train tab offers its runs to pick (no id to type); the chosen one is followed.
        page.reload()
        page.get_by_role("tab", name="Train").click()
        page.locator("#train-job input").first.click()
        page.get_by_role("option", name=re.compile(rf"^#{train_no} train · walk-lora · succeeded · ")).click()
        assert f"Job {train_no} " in _ends(page, "train-status", train_no)
        page.locator("#train-loss-latest").get_by_text(re.compile(rf"train loss [\d.]+ at step {STEPS}\b")).wait_for()
        page.locator("#train-checkpoints").get_by_text(re.compile(rf"step-{STEPS:07d}")).filter(visible=True).first.wait_for()
        _shot(page, "train")

        # Generate with the adapter and the voice, then without the adapter: the same text and seed,
        # each staged for a listening session under its system's name.
        page.get_by_role("tab", name="Generate").click()
        _fill(page, "gen-text", TEXT)
        _choose(page, "gen-model", TINY)
        _choose(page, "gen-voice", "walk-voice")
        page.get_by_text("Sampling").click()
        _fill(page, "gen-max-tokens", 24)
        _fill(page, "gen-seed", 7)
        for adapter, system in (("walk-lora", "lora"), ("(none)", "base")):
            _choose(page, "gen-adapter-1", adapter)
            before = {j["id"] for j in jobs.list_jobs(ws.db, kind="generate")}
            page.locator("#gen-go").click()
            job_no = _new_job(ws, "generate", before)
            assert "succeeded" in _ends(page, "gen-status", job_no)
            (gen,) = [g for g in voices.list_generations(ws) if g["job_id"] == job_no]
            wav = page.request.get(page.locator("#gen-out-1 a[data-testid='download-link']").get_attribute("href"))
            assert wav.ok and wav.body()[:4] == b"RIFF"  # the result plays in the page, served by the studio
            assert [a["name"] for a in gen["adapters"]] == ([adapter] if system == "lora" else [])
            assert gen["seed"] == 7 and gen["model"] == "tiny" and gen["params"]["semantic_max_new_tokens"] == 24
            _fill(page, "gen-chosen", gen["id"])
            _fill(page, "gen-system", system)
            page.locator("#gen-listening").click()
            page.get_by_text(f"exports/listening/{system}/").first.wait_for()
        page.wait_for_function("() => document.querySelector('#gen-history').innerText.includes('walk-lora×1')")
        _shot(page, "generate")

        # Listen: an A/B session of the two, a rater link, a rater on a phone, the results.
        page.get_by_role("tab", name="Listen").click()
        page.get_by_text("New session").first.click()
        page.get_by_label("Session name (only you see it)").fill("lora vs base")
        folders = page.get_by_label("Audio folders in the workspace")
        for system in ("lora", "base"):
            folders.click()
            page.get_by_role("option", name=f"exports/listening/{system}", exact=True).click()
        assert "lora = exports/listening/lora" in page.locator("#listen-systems textarea").input_value()
        page.get_by_label("Gold/trap trials per rater").fill("0")
        page.get_by_role("button", name="Create session").click()
        page.get_by_text(re.compile(r"Created session \d+ with 1 items")).wait_for(timeout=JOB_WAIT_MS)
        (session,) = sessions.list_sessions(ws)
        page.get_by_text("Rater links").first.click()
        page.get_by_label("How many").fill("1")
        page.get_by_role("button", name="Make rater links").click()
        links = page.locator("#listen-links textarea")
        page.wait_for_function("() => document.querySelector('#listen-links textarea').value.includes('http')")
        link = re.search(r"https?://\S+", links.input_value()).group(0)
        assert f":{studio.port}/" in link, link  # the port this studio serves on, not 7860

        phone = browser.new_context(**PHONE)
        rater = phone.new_page()
        rater.goto(link)
        rater.click("#consent")
        rater.wait_for_url("**/trial")
        for k, side in enumerate("AB"):
            rater.click(f"#play-{side}")
            rater.locator(".player.heard").nth(k).wait_for(timeout=30_000)
        _shot(rater, "rater")
        # the rater picks lora, on whichever side the session's random plan put it
        rater.locator(f"#answer-{_side_holding(ws, session['id'], 'lora')}:enabled").click()
        rater.wait_for_url("**/done")
        phone.close()

        page.get_by_role("button", name="Show results").click()
        page.locator("#listen-results").get_by_text(re.compile(r"1 votes? used|votes")).first.wait_for()
        page.locator("#listen-table").filter(visible=True).first.wait_for()
        page.locator("#listen-plot-1 img").wait_for()
        _shot(page, "listen")
        assert sessions.get_session(ws, session["id"])["raters"][0]["votes"] == 1
        page.locator("#listen-results").get_by_text("lora vs base: 1-0").wait_for()  # and the Experiments page below

        # Experiments: the voice prompt against the LoRA, swept from the tab over its arms and seeds,
        # the listening session linked, concluded: one page gathers it all.
        page.get_by_role("tab", name="Experiments").click()
        page.get_by_text("New experiment").first.click()
        _fill(page, "exp-name", "lora-vs-prompt")
        page.get_by_label("Hypothesis").fill("The LoRA holds the voice more steadily than the prompt")
        page.get_by_label("Dataset (name or id)").fill("walk")
        page.get_by_label("Arms, one per line").fill(  # the README's and the placeholder's syntax
            "name=prompted,kind=voice_prompt,voice=voices/walk-voice.npz,model=tiny\n"
            "name=lora,kind=finetune,adapter=adapters/walk-lora:1.0,model=tiny")
        page.get_by_label("Test prompts, one per line").fill(TEXT)
        page.get_by_role("button", name="Create experiment").click()
        page.locator("#exp-page").get_by_text("lora-vs-prompt").first.wait_for()
        for arm in ("prompted", "lora"):  # the experiment's arms and prompt are ticked in the launcher
            expect(page.locator("#sweep-arms").get_by_label(arm, exact=True)).to_be_checked(timeout=60_000)
        expect(page.locator("#sweep-prompts").get_by_label(TEXT, exact=True)).to_be_checked(timeout=60_000)
        _choose(page, "sweep-model", TINY)
        _fill(page, "sweep-max-semantic", 16)
        page.locator("#sweep-estimate").get_by_text(re.compile(r"2 outputs \(2 arm\)")).wait_for()
        page.locator("#sweep-seeds").get_by_label("1", exact=True).check()
        page.locator("#sweep-estimate").get_by_text(re.compile(r"4 outputs \(2 arm × 2 seed\)")).wait_for()
        before = {j["id"] for j in jobs.list_jobs(ws.db, kind="sweep")}
        page.locator("#sweep-launch").click()
        sweep_no = _new_job(ws, "sweep", before)
        assert "succeeded" in _ends(page, "sweep-status", sweep_no)
        page.locator("#sweep-plots img").first.wait_for()
        _picker_reads(page, "sweep-job", f"#{sweep_no} sweep · ")
        sweep = sweeps.sweep_for_job(ws, sweep_no)
        assert {(o["arm"], o["params"]["seed"]) for o in sweep["outputs"]} == \
            {("prompted", 0), ("prompted", 1), ("lora", 0), ("lora", 1)}
        lora_out = next(o for o in sweep["outputs"] if o["arm"] == "lora")
        assert lora_out["params"]["adapters"] == [{"path": "adapters/walk-lora", "scale": 1.0}]
        assert next(o for o in sweep["outputs"] if o["arm"] == "prompted")["params"]["voice"] == "voices/walk-voice.npz"
        exp_page = page.locator("#exp-page")
        exp_page.get_by_text(re.compile(r"grid \d+ .*\(done, 4 outputs\)")).wait_for()  # the page took the sweep in
        page.get_by_label("Listening session id").fill(str(session["id"]))
        page.get_by_role("button", name="Link listening session").click()
        exp_page.get_by_text("lora vs base").first.wait_for()
        exp_page.get_by_text("lora won 1, base won 0").wait_for()
        page.get_by_label("Conclusion").fill("Tiny random models: the loop runs; no claim about voices.")
        page.get_by_role("button", name="Conclude").click()
        exp_page.get_by_text("(concluded)").first.wait_for()
        assert "Dataset: walk" in exp_page.inner_text() and "Tiny random models" in exp_page.inner_text()
        for arm in ("prompted", "lora"):  # the metrics table of the sweep, a row per arm
            exp_page.locator("table td", has_text=re.compile(rf"^{arm}$")).first.wait_for()

        # The emergent log: a sweep output added by hand, opened with its waveform.
        out_id = lora_out["id"]
        page.get_by_label("Add a sweep output by id").fill(str(out_id))
        page.get_by_role("button", name="Add to log").click()
        page.locator("#emergent-status").get_by_text(f"Added output {out_id}").wait_for()
        page.locator("#emergent-table").get_by_text("manual").filter(visible=True).first.click()
        page.locator("#emergent-image img").wait_for()
        _shot(page, "experiments")

        page.get_by_role("tab", name="Jobs").click()
        page.locator("#jobs-table").get_by_text("sweep").filter(visible=True).first.wait_for()
        _shot(page, "jobs")
        failed = [j for j in jobs.list_jobs(ws.db) if j["status"] != "succeeded"]
        assert not failed, failed
        assert maps_torch(studio.proc.pid) is False  # the web process never loaded a model
    except BaseException:
        _shot(page, "failure")  # where it stopped, for the person reading the failure
        raise
