"""The Train tab's settings and cost estimate agree with the training recipe they drive."""
from __future__ import annotations

import dataclasses
import math

from models.training_config import TrainConfig, config_from_preset
from studio import jobs, train_cost
from studio.training_presets import ADVANCED, PRESET_LABELS, PRESETS
from studio.ui import train_tab


def test_advanced_fields_are_the_recipes_own():
    assert set(PRESET_LABELS) == {"Quick LoRA", "Quality LoRA", "Full fine-tune"}
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for field in ADVANCED:
        assert field.name in defaults, f"{field.name} is not a TrainConfig field"
        assert field.info and "\n" not in field.info, f"{field.name} needs a one-line explanation"
        expected = defaults[field.name]
        assert field.parse(field.default) == expected, (field.name, field.default, expected)


def test_launch_settings_are_the_fields_that_differ_from_the_preset_and_the_recipe_accepts_them():
    shown = [f.parse(f.component(PRESET_LABELS[train_tab.DEFAULT_PRESET]).value) for f in ADVANCED]
    assert train_tab.settings_from(train_tab.DEFAULT_PRESET, shown) == {}  # the page opens on the preset's values
    values = train_tab.preset_values("Quality LoRA")
    assert train_tab.settings_from("Quality LoRA", values) == {}
    by_name = {f.name: i for i, f in enumerate(ADVANCED)}
    values[by_name["lr"]] = 5e-5
    values[by_name["max_steps"]] = 30
    settings = train_tab.settings_from("Quality LoRA", values)
    assert settings == {"lr": 5e-5, "max_steps": 30}
    cfg = config_from_preset("quality", **settings)
    assert cfg.lr == 5e-5 and cfg.max_steps == 30 and cfg.r == 16 and cfg.targets == "attention+mlp"


def test_cost_estimate_uses_the_newest_measured_throughput(ws):
    settings = {**PRESETS["quick"], "max_steps": None}
    first = train_cost.estimate(ws.db, n_items=100, audio_seconds=800, base_model="small", stages=["semantic"],
                                settings=settings)
    # max_epochs over the 90 training clips (10% held out), batch 4 x accumulation 2 per step
    assert first.steps == math.ceil(5 * 90 / 8)
    assert first.tokens == int(first.steps * 8 * 8.0 * 49.9)
    assert first.seconds is None and "unknown" in first.markdown()
    job = jobs.create_job(ws.db, "train", {"model": "small"})
    token = jobs.claim(ws.db, job, "test")
    ctx = jobs.JobContext(db=ws.db, job_id=job, run_token=token, params={})
    for step, tps in enumerate([900.0, 1000.0, 1100.0], start=1):
        ctx.metrics(step, {"tokens_per_s": tps, "loss": 1.0 / step})
    measured = train_cost.estimate(ws.db, n_items=100, audio_seconds=800, base_model="small", stages=["semantic"],
                                   settings=settings)
    assert measured.tokens_per_s == 1000.0 and measured.seconds == measured.tokens / 1000.0
    assert f"job {job}" in measured.markdown()
    full = train_cost.estimate(ws.db, n_items=100, audio_seconds=800, base_model="large", stages=["semantic"],
                               settings={**settings, "method": "full"})
    assert full.memory_gb > measured.memory_gb  # a full fine-tune of the large model needs more memory
