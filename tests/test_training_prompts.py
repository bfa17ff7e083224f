"""Prompt-aware training: with several clips per speaker, each clip trains conditioned on a voice
prompt made from another clip of its speaker, by the code `voice create` uses, so an adapter meets
in training the inputs it meets when a user generates with it and a voice."""
from __future__ import annotations

import numpy as np
import torch

from models import constants as C
from models import layouts as L
from models.presets import load_bark
from models.training import TrainConfig, TrainingRecipe
from models.voice_prompt import from_clip_tokens


def _clip(seed: int, seconds: float, key: str) -> L.TokenItem:
    rng = np.random.default_rng(seed)
    return L.TokenItem(text_ids=rng.integers(5, 300, 8).tolist(),
                       semantic=rng.integers(0, C.SEMANTIC_VOCAB_SIZE, int(seconds * C.SEMANTIC_RATE_HZ)),
                       codes=rng.integers(0, C.CODEBOOK_SIZE, (8, int(seconds * C.CODEC_FRAME_RATE))), key=key)


def _recipe(tmp_path, items, speakers, val, val_speakers, **kw):
    cfg = TrainConfig(**{**dict(stages=("semantic", "coarse", "fine"), batch_size=1, grad_accum=1, max_steps=1,
                                eval_every=1, save_every=100, precision="fp32", attention="eager", r=2, alpha=4,
                                seed=4), **kw})
    return TrainingRecipe(cfg, load_bark("tiny"), items, tmp_path, val_items=val, speakers=speakers + val_speakers)


def test_each_clip_trains_with_a_prompt_from_another_clip_of_its_speaker(tmp_path):
    ann = [_clip(i, 5.5 + i, f"ann-{i}") for i in range(3)]
    bob = [_clip(10 + i, 5.2 + i, f"bob-{i}") for i in range(2)] + [_clip(20, 3.0, "bob-short")]
    val = [_clip(30, 5.0, "ann-val")]
    recipe = _recipe(tmp_path, ann + bob, ["ann"] * 3 + ["bob"] * 3, val, ["ann"])
    recipe.setup()
    assert recipe.with_voice_prompts
    by_key = {x.key: x for x in ann + bob}
    for item in recipe.train_items + recipe.val_items:
        speaker = item.key.split("-")[0]
        candidates = {k: from_clip_tokens(x.semantic, x.codes) for k, x in by_key.items()
                      if k.startswith(speaker) and k != item.key and k != "bob-short"}  # 3 s is too short
        matches = [k for k, p in candidates.items() if item.history is not None
                   and np.array_equal(p.semantic, item.history.semantic) and np.array_equal(p.fine, item.history.fine)]
        assert len(matches) == 1, (item.key, matches)
    # the examples carry the prompt exactly where generation puts it
    first = recipe.train_items[0]
    (semantic,) = L.build_examples("semantic", first)
    assert torch.equal(semantic.tensors["history"], L.semantic_prefix(first.text_ids, first.history.semantic)[1])
    x_sem, x_coarse = L.coarse_histories(first.history)
    coarse = L.build_examples("coarse", first)[0].tensors["input_ids"]
    assert torch.equal(coarse[C.MAX_COARSE_INPUT_LENGTH + 1:][: x_coarse.numel()], x_coarse)
    fine = L.build_examples("fine", first)[0].tensors["input_ids"]
    n_hist = min(first.history.fine.shape[1], C.MAX_FINE_HISTORY)
    assert torch.equal(fine[:n_hist], torch.as_tensor(first.history.fine[:, -n_hist:]).T)
    result = recipe.train()                                   # and a step trains on them
    assert result.step == 1 and all(np.isfinite(result.history[0][f"loss_{s}"]) for s in recipe.cfg.stages)


def test_auto_is_off_with_one_clip_per_speaker_and_off_means_off(tmp_path):
    items = [_clip(i, 5.5, f"c{i}") for i in range(3)]
    alone = _recipe(tmp_path / "a", items, ["a", "b", "c"], [_clip(9, 5.0, "v")], ["d"])
    alone.setup()
    assert not alone.with_voice_prompts and all(x.history is None for x in alone.train_items)
    off = _recipe(tmp_path / "b", items, ["a"] * 3, [_clip(9, 5.0, "v")], ["a"], voice_prompts="off")
    off.setup()
    assert not off.with_voice_prompts and all(x.history is None for x in off.train_items)
