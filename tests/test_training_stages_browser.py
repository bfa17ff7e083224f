"""Per-stage training as a user sees it: a job on real clips of different lengths shows each stage's
epochs, train and validation curves and best step in the Train tab (Debian's chromium) and in
`jobs show --json`; the prompt-aware choice (`--voice-prompts`, the Train tab's radio) reaches the job."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from studio import jobs
from tests.conftest import Server, cli
from tests.queue_support import copy_template

STAGES = ("semantic", "coarse", "fine")
ARTIFACTS = Path(__file__).parent / "artifacts"


def test_the_voice_prompts_choice_reaches_the_job_params(train_template, tmp_path):
    from studio.training_presets import ADVANCED, PRESET_LABELS
    from studio.ui import train_tab
    from studio.workspace import Workspace

    ws = Workspace.resolve(copy_template(train_template, tmp_path / "home"))  # no worker: jobs are only queued
    shown = [f.component(PRESET_LABELS[train_tab.DEFAULT_PRESET]).value for f in ADVANCED]
    on = train_tab.launch(ws, "voice", "tiny", ["semantic"], train_tab.DEFAULT_PRESET, shown, voice_prompts="on")
    assert jobs.get_job(ws.db, on)["params"]["voice_prompts"] == "on"
    auto = train_tab.launch(ws, "voice", "tiny", ["semantic"], train_tab.DEFAULT_PRESET, shown)
    assert "voice_prompts" not in jobs.get_job(ws.db, auto)["params"]  # the recipe's own default, auto

    job = json.loads(cli("train", "--dataset", "voice", "--model", "tiny", "--voice-prompts", "off", "--json",
                         home=ws.root).stdout)
    assert job["params"]["voice_prompts"] == "off"



@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(1500)
def test_the_train_tab_shows_each_stages_epochs_curves_and_best_step(train_template, tmp_path, monkeypatch, browser):
    from studio.workspace import Workspace
    from workers.dispatch import submit

    monkeypatch.delenv("BARK_STUDIO_REDIS_URL", raising=False)
    home = copy_template(train_template, tmp_path / "home")
    monkeypatch.setenv("BARK_STUDIO_HOME", str(home))
    ws = Workspace.resolve(home)
    # the template's two real utterances differ in length: one trains, one validates; no worker, so
    # the job runs right here
    params = {"dataset": "voice", "model": "tiny", "stages": list(STAGES), "preset": "quick", "batch_size": 1,
              "grad_accum": 1, "max_epochs": 2, "eval_every": 2, "save_every": 1000, "lr": 0.01,
              "precision": "fp32", "name": "staged"}
    job = submit(ws, "train", params, wait=True)
    assert job["status"] == "succeeded", job
    shown = json.loads(cli("jobs", "show", str(job["id"]), "--json", home=ws.root).stdout)
    stages = shown["result"]["stages"]
    assert stages["semantic"]["scheduled_steps"] < stages["fine"]["scheduled_steps"] \
        < stages["coarse"]["scheduled_steps"], stages  # each stage its own schedule from its own examples
    for s in STAGES:
        assert shown["metrics"][f"epoch_{s}"][-1][1] == pytest.approx(stages[s]["epochs"])
        assert stages[s]["best_step"] in [st for st, _ in shown["metrics"][f"val_loss_{s}"]]

    server = Server(ws)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        server.login(page)
        page.goto(server.url + "/")
        page.get_by_role("tab", name="Train").click()
        page.locator("#train-job input").first.click()
        page.get_by_role("option", name=re.compile(rf"^#{job['id']} train · staged · ")).click()
        page.locator("#train-status").get_by_text("succeeded").wait_for()
        best = page.locator("#train-loss-latest").get_by_text("Best checkpoint per stage")
        best.wait_for()
        line = best.inner_text()
        for s in STAGES:  # each stage's best step, its validation loss there and its own epochs
            info = stages[s]
            assert re.search(rf"{s} step {info['best_step']} \(val {info['best_val_loss']:.4f}, "
                             rf"{info['epochs']:.2f} epochs trained\)", line), line
        plot = page.locator("#train-loss-plot")
        # drawn: one line per stage and split, each named in the legend (vega's svg)
        page.wait_for_function("""() => {
            const el = document.querySelector('#train-loss-plot');
            const labels = Array.from(el.querySelectorAll('.role-legend-label text')).map(n => n.textContent);
            const lines = Array.from(el.querySelectorAll('.plot_marks path')).filter(p => (p.getAttribute('d') || '').length > 10);
            const want = ['semantic', 'coarse', 'fine'].flatMap(s => [s + ' train', s + ' validation']);
            return want.every(w => labels.includes(w)) && lines.length >= 5;
        }""")  # semantic validation may be a single point: a line needs two
        axis = plot.locator("[aria-label^='X-axis']").first.get_attribute("aria-label")
        assert "step" in axis and "linear scale" in axis, axis  # numeric axes, not categories
        assert "linear scale" in plot.locator("[aria-label^='Y-axis']").first.get_attribute("aria-label")
        # the learning rate (0.01 here) reads in SI prefixes, each label whole inside the plot's box
        lr_labels = page.evaluate("""() => {
            const el = document.querySelector('#train-lr-plot'), left = el.getBoundingClientRect().left;
            return Array.from(el.querySelectorAll('.role-axis-label text'))
                .map(t => [t.textContent, t.getBoundingClientRect().left - left]); }""")
        y_labels = [text for text, _ in lr_labels if re.fullmatch(r"[\d.]+[mµ]", text)]
        assert y_labels and all(x >= 0 for _, x in lr_labels), lr_labels
        ARTIFACTS.mkdir(exist_ok=True)
        plot.scroll_into_view_if_needed()
        plot.screenshot(path=str(ARTIFACTS / "train_tab_stages_plot.png"))
        page.screenshot(path=str(ARTIFACTS / "train_tab_stages.png"), full_page=True)
    finally:
        server.stop()
