"""A training job on real clips of different lengths: each stage's epochs, curves (train and
validation) and best step show in `jobs show --json`, the log says where each stage of the
installed adapter came from, and the adapter holds each stage's best checkpoint."""
from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from studio import training as T
from tests.conftest import cli
from tests.test_training_e2e import _dataset

STAGES = ("semantic", "coarse", "fine")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_job_reports_and_installs_each_stage_on_its_own(ws, awb_wav, slt_wav):
    from workers.dispatch import submit

    _dataset(ws, awb_wav, slt_wav)  # two real utterances of different lengths: one trains, one validates
    params = {"dataset": "arctic", "model": "tiny", "stages": ",".join(STAGES), "preset": "quick", "batch_size": 1,
              "grad_accum": 1, "max_epochs": 2, "eval_every": 2, "save_every": 1000, "lr": 0.01, "precision": "fp32",
              "name": "balanced"}
    job = submit(ws, "train", params, wait=True)
    assert job["status"] == "succeeded", job
    shown = json.loads(cli("jobs", "show", str(job["id"]), "--json", home=ws.root).stdout)
    stages, metrics = shown["result"]["stages"], shown["metrics"]

    # each stage ran its own schedule: 2 passes over its own examples (1 semantic, many coarse)
    steps = {s: stages[s]["scheduled_steps"] for s in STAGES}
    assert steps["semantic"] == 2 < steps["fine"] < steps["coarse"], steps
    for s in STAGES:
        info = stages[s]
        if info["status"] == "completed":
            assert info["steps"] == steps[s] and info["epochs"] == pytest.approx(2.0)
        else:
            assert info["status"] == "early_stopped" and info["steps"] < steps[s]
        # per-stage curves: a train loss at every step the stage trained, validation along the way
        assert [st for st, _ in metrics[f"loss_{s}"]] == list(range(1, info["steps"] + 1))
        assert metrics[f"val_loss_{s}"] and metrics[f"epoch_{s}"][-1][1] == pytest.approx(info["epochs"])
        best = min(metrics[f"val_loss_{s}"], key=lambda p: p[1])
        assert info["best_step"] == best[0] and info["best_val_loss"] == pytest.approx(best[1])
    assert max(st for st, _ in metrics["loss"]) == shown["result"]["step"] == max(steps.values())

    # the log names each stage's best step; the adapter was assembled from those checkpoints
    for s in STAGES:
        assert f"{s} from step {stages[s]['best_step']} " in shown["log_tail"], shown["log_tail"]
    adapter = T.get_adapter(ws, "balanced")
    record = adapter["manifest"]["stage_checkpoints"]
    for s in STAGES:
        assert record[s]["best_step"] == stages[s]["best_step"]
        source = ws.inside(stages[s]["best_checkpoint"]) / "adapter" / s / "adapter_model.safetensors"
        mine = load_file(str(ws.inside(adapter["path"]) / s / "adapter_model.safetensors"))
        theirs = load_file(str(source))
        assert all((mine[k] == theirs[k]).all() for k in mine)
    # the checkpoint rows say which stages each is the best of
    rows = T.list_checkpoints(ws, job["id"])
    marked = {st: r["step"] for r in rows for st in r["metrics"].get("best_stages", [])}
    assert marked == {s: stages[s]["best_step"] for s in STAGES}
    # the Train tab draws a train and a validation curve per stage and names each stage's best step
    from studio.ui import train_tab

    frame = train_tab.stage_loss_frame(metrics)
    assert set(frame["series"]) == {f"{s} {kind}" for s in STAGES for kind in ("train", "validation")}
    assert len(frame[frame["series"] == "coarse train"]) == stages["coarse"]["steps"]
    line = train_tab.best_steps_md(ws, job["id"])
    assert all(f"{s} step {stages[s]['best_step']} " in line for s in STAGES), line
