"""The Train tab's cost estimate counts steps the way the recipe does: each stage its own schedule
over its own examples, the run as long as its longest stage."""
from __future__ import annotations

import math

import numpy as np
import pytest

from models.layouts import TokenItem, build_examples
from studio import train_cost

STAGES = ["semantic", "coarse", "fine"]


@pytest.mark.parametrize("seconds", [1.5, 4.0, 10.0, 13.0, 14.5, 20.0])
def test_examples_per_clip_are_the_ones_training_builds(seconds):
    rng = np.random.default_rng(0)
    item = TokenItem(text_ids=[1, 2, 3], semantic=rng.integers(0, 10_000, round(seconds * 49.9)),
                     codes=rng.integers(0, 1024, (8, round(seconds * 75))), key=f"{seconds} s")
    for stage in STAGES:
        assert train_cost.examples_per_clip(stage, seconds) == len(build_examples(stage, item)), (stage, seconds)


def test_each_stage_gets_its_own_steps_and_tokens(ws):
    settings = {"batch_size": 2, "grad_accum": 4, "max_epochs": 3, "val_fraction": 0.1, "max_steps": None}
    # 20 clips of 10 s: 18 train; per clip 1 semantic, 25 coarse and 6 fine examples
    est = train_cost.estimate(ws.db, n_items=20, audio_seconds=200, base_model="small", stages=STAGES,
                              settings=settings)
    expected = {"semantic": math.ceil(3 * 18 * 1 / 8), "coarse": math.ceil(3 * 18 * 25 / 8),
                "fine": math.ceil(3 * 18 * 6 / 8)}
    assert est.stage_steps == expected
    assert est.steps == expected["coarse"]  # the run lasts as long as its longest stage
    # each stage's target tokens over its own steps: semantic ~499 per example, coarse 60, fine 75 x 10 s x 6 / 6
    tokens = expected["semantic"] * 8 * 499.0 + expected["coarse"] * 8 * 60.0 + expected["fine"] * 8 * 750.0
    assert est.tokens == pytest.approx(tokens, rel=1e-9)
    assert f"semantic {expected['semantic']}, coarse {expected['coarse']}, fine {expected['fine']}" in est.markdown()
    # a fixed step count caps every stage alike
    capped = train_cost.estimate(ws.db, n_items=20, audio_seconds=200, base_model="small", stages=["coarse"],
                                 settings={**settings, "max_steps": 7})
    assert capped.stage_steps == {"coarse": 7} and capped.steps == 7
