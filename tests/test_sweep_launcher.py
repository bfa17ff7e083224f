"""The Experiments tab's sweep launcher and the tabs' job pickers, below the page: what the form's
choices become (the request `bark-studio sweep` sends), the grid size and time shown before
launch, and how a tab's running and recent jobs are listed to pick one."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import numpy as np
import pytest

from studio import jobs, voices
from studio.errors import UserError
from studio.experiments import grid, records, requests
from studio.ui import job_view, sweep_launcher


def _voice(ws, name: str) -> None:
    npz = ws.voices_dir / f"{name}.npz"
    np.savez(npz, semantic_prompt=np.zeros(4, np.int64), coarse_prompt=np.zeros((2, 4), np.int64),
             fine_prompt=np.zeros((8, 4), np.int64))
    voices.record_voice(ws, name=name, npz=npz, model="tiny", source_path="x.wav", source_clip_id=None,
                        span=(0, 6), semantic_len=4, frames=4, job_id=None)


def _adapter(ws, name: str) -> None:
    (ws.adapters_dir / name).mkdir(parents=True)


def test_choices_become_the_request_the_cli_sends_and_the_estimate_follows_them(ws):
    _voice(ws, "alice")
    _voice(ws, "bob")
    _adapter(ws, "mine")
    form = dict(model="tiny", adapter="mine", scales=["1", "0"], voice_names=["alice", "bob"],
                semantic=["0.5", "0.7"], prompts=["Hello there."], more_prompts="Second one.\n\n", seeds=["0", "3"],
                max_new_semantic="16")
    request = grid.normalize(sweep_launcher.sweep_request(ws, **form))
    assert request["axes"]["adapter_scale"] == [0.0, 1.0] and request["axes"]["semantic_temperature"] == [0.5, 0.7]
    assert request["axes"]["arm"] == ["alice", "bob"] and request["axes"]["seed"] == [0, 3]
    assert request["axes"]["prompt"] == ["Hello there.", "Second one."] and request["max_new_semantic"] == 16
    points = grid.points(request)
    assert len(points) == 2 * 2 * 2 * 2 * 2
    params = grid.generation_params(request, next(p for p in points if p["arm"] == "bob" and p["adapter_scale"] == 0))
    assert params["voice"] == "voices/bob.npz" and params["adapters"] == [{"path": "adapters/mine", "scale": 0.0}]
    assert sweep_launcher.estimate(ws, **form).startswith(
        "**32 outputs** (2 semantic_temperature × 2 adapter_scale × 2 arm × 2 prompt × 2 seed) · about **32 s**")

    # one voice is fixed for every output; an experiment's chosen arms are swept and the sweep is its
    exp = records.create_experiment(ws, name="e", hypothesis="", dataset=None, prompts=["p"],
                                    arms=[{"name": "x", "kind": "base", "model": "tiny"},
                                          {"name": "y", "kind": "base", "model": "tiny"}])
    one = sweep_launcher.sweep_request(ws, voice_names=["alice"], prompts=["p"])
    assert one["voice"] == "voices/alice.npz" and "arm" not in one["axes"]
    armed = grid.normalize(sweep_launcher.sweep_request(ws, exp_id=exp["id"], arm_names=["y"], prompts=["p"]))
    assert armed["axes"]["arm"] == ["y"] and armed["experiment_id"] == exp["id"]
    assert sweep_launcher.prompt_choices(ws, exp["id"])[0] == "p"


@pytest.mark.parametrize("form, message", [
    ({"prompts": []}, "a sweep needs at least one prompt"),
    ({"prompts": ["p"], "scales": ["1"]}, "choose an adapter to sweep its scale"),
    ({"prompts": ["p"], "voice_names": ["nobody", "(no voice)"]}, "voice nobody: no such saved voice"),
    ({"prompts": ["p"], "max_new_semantic": "lots"}, "the max semantic tokens must be a whole number"),
])
def test_a_form_that_cannot_run_says_why_before_launch(ws, form, message):
    assert sweep_launcher.estimate(ws, **form).startswith("⚠️ " + message)
    with pytest.raises(Exception, match=message):
        sweep_launcher.launch(ws, **form)
    assert jobs.list_jobs(ws.db) == []


def test_a_conditioning_axis_takes_the_clis_syntax_and_is_checked_against_the_adapter(ws):
    # the manifest a training with --condition speaker --condition accent writes (the CLI test trains one)
    folder = ws.adapters_dir / "cast"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"stages": ["semantic"], "base_model": "tiny", "conditioning": {
        "labels": [{"name": "speaker", "kind": "categorical", "categories": ["alice", "bob"]},
                   {"name": "accent", "kind": "numeric", "lo": 0.0, "hi": 1.0}]}}))
    form = dict(model="tiny", adapter="cast", prompts=["p"], condition_axis="label:accent=0:1:3")
    request = requests.checked(ws, sweep_launcher.sweep_request(ws, **form))
    assert [grid.generation_params(request, pt)["labels"] for pt in grid.points(request)] == \
        [{"accent": 0.0}, {"accent": 0.5}, {"accent": 1.0}]
    assert sweep_launcher.estimate(ws, **form).startswith("**3 outputs** (3 label:accent)")
    mix = requests.checked(ws, sweep_launcher.sweep_request(ws, **{**form, "condition_axis": "speaker_mix=bob:alice:2"}))
    assert [grid.generation_params(mix, pt)["speaker"] for pt in grid.points(mix)] == [{"bob": 1.0}, {"alice": 1.0}]
    for axis, message in [
        ("label:pace=0:1:3", "--axis label:pace: unknown label 'pace'; adapter cast is conditioned on speaker, accent"),
        ("label:accent=0:1", "--axis 'label:accent=0:1': the number of steps after the last ':' must be"),
        ("seed=1,2", "--axis 'seed=1,2': the conditioning axis is speaker_mix=A:B:STEPS or label:NAME=LOW:HIGH:STEPS"),
    ]:
        assert sweep_launcher.estimate(ws, **{**form, "condition_axis": axis}).startswith("⚠️ " + message)
        with pytest.raises(Exception, match=re.escape(message)):
            sweep_launcher.launch(ws, **{**form, "condition_axis": axis})
    assert jobs.list_jobs(ws.db) == []


def test_the_estimate_uses_the_last_sweep_measured_here(ws):
    assert "rough guess" in requests.seconds_per_output(ws.db, "tiny")[1]
    job_id = jobs.create_job(ws.db, "sweep", {"model": "tiny"})
    with ws.db.write() as s:
        row = s.get(jobs.Job, job_id)
        row.status, row.result = "succeeded", {"outputs": 4}
        row.started_at = datetime(2026, 1, 1, 12, 0, 0)
        row.finished_at = row.started_at + timedelta(seconds=10)
    assert requests.seconds_per_output(ws.db, "tiny") == (2.5, "measured by the last sweep of this model here")
    assert requests.seconds_per_output(ws.db, "small")[0] == requests.GUESS_SECONDS_PER_OUTPUT["small"]


def test_the_cli_and_the_tab_share_one_set_of_parsers(tmp_path):
    from click.testing import CliRunner

    from studio.cli import main

    refused = CliRunner().invoke(main, ["--home", str(tmp_path), "sweep", "--prompt", "hi", "--axis", "seed=x"])
    assert refused.exit_code == 1 and "--axis 'seed=x': values must be numbers" in refused.output
    assert requests.parse_axis("arm=a,b") == ("arm", ["a", "b"])
    with pytest.raises(UserError, match="values must be numbers"):
        requests.parse_axis("seed=x")


def test_a_tabs_jobs_are_listed_newest_first_readably_by_kind(ws):
    old = jobs.create_job(ws.db, "import", {"dataset": "walk"})
    other = jobs.create_job(ws.db, "train", {"name": "not this tab's"})
    new = jobs.create_job(ws.db, "prepare", {"dataset": "walk"})
    with ws.db.write() as s:
        s.get(jobs.Job, old).status = "succeeded"
        s.get(jobs.Job, old).created_at = datetime.utcnow() - timedelta(minutes=5)
        row = s.get(jobs.Job, new)
        row.status, row.progress = "running", 0.4
    choices = job_view.job_choices(ws.db, ("import", "transcribe", "prepare"))
    assert choices == [(f"#{new} prepare · walk · running · just now", new),
                       (f"#{old} import · walk · succeeded · 5 min ago", old)]
    assert other not in [c[1] for c in choices]
    before = job_view.jobs_signature(ws.db, ("prepare",))
    with ws.db.write() as s:
        s.get(jobs.Job, new).status = "succeeded"
    assert job_view.jobs_signature(ws.db, ("prepare",)) != before
