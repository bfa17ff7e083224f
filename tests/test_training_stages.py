"""Balanced stages: each stage's epochs, schedule, validation, early stopping and best checkpoint
are its own, and the adapter takes each stage from that stage's best checkpoint.

Objectives here are plain next-token losses on id sequences (the machinery is under test; the
stage layouts are tested in test_models_parity.py): the semantic stage gets one example per clip,
the coarse stage four, as with real clips (a 10 s clip: ~1 semantic, ~25 coarse examples)."""
from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from models import adapters as A
from models import checkpoints as ckpt
from models.presets import load_bark
from models.training import TrainConfig, TrainingRecipe, assemble_best_adapter

VOCAB = 60


class PerStage:
    """Next-token cross-entropy over one stage's sequences of each item (item[stage] is a list)."""

    def __init__(self, stage: str):
        self.stage = stage

    def examples(self, items):
        return [torch.tensor(seq) for item in items for seq in item[self.stage]]

    def collate(self, exs):
        return torch.stack(exs)

    def loss(self, module, ids):
        logits = module(input_ids=ids[:, :-1]).logits[..., :VOCAB]
        target = ids[:, 1:]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB).float(), target.reshape(-1)), target.numel()


def _items(n: int, seed: int) -> list[dict]:
    """Semantic: random sequences (memorised in training, never generalise: its validation loss
    rises); coarse: counting sequences (a rule the model learns: validation keeps improving)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        sem = [torch.randint(0, VOCAB, (24,), generator=g).tolist()]
        starts = torch.randint(0, VOCAB, (4,), generator=g).tolist()
        coarse = [[(s + j) % VOCAB for j in range(24)] for s in starts]
        out.append({"semantic": sem, "coarse": coarse})
    return out


def _recipe(tmp_path, **kw):
    cfg = TrainConfig(**{**dict(stages=("semantic", "coarse"), batch_size=2, grad_accum=1, lr=1e-2, max_epochs=6,
                                warmup_ratio=0.0, eval_every=2, save_every=100, patience=3, min_delta=0.0,
                                keep_last=1, precision="fp32", attention="eager", dropout=0.0, r=8, alpha=16,
                                seed=3), **kw})
    return TrainingRecipe(cfg, load_bark("tiny"), _items(4, seed=1), tmp_path / "run", val_items=_items(2, seed=2),
                          objectives={"semantic": PerStage("semantic"), "coarse": PerStage("coarse")})


def _stage_weights(folder, stage):
    return load_file(str(folder / stage / "adapter_model.safetensors"))


def test_each_stage_has_its_own_epochs_schedule_early_stop_and_best(tmp_path):
    recipe = _recipe(tmp_path)
    recipe.setup()
    # an epoch is one pass over the stage's own examples: 4 semantic, 16 coarse; 2 per step
    assert recipe.stage_steps == {"semantic": math.ceil(6 * 4 / 2), "coarse": math.ceil(6 * 16 / 2)}
    result = recipe.train()
    stages = result.stages

    # the semantic stage memorises and its validation loss turns up: it stops on its own patience,
    # while coarse runs its whole schedule (the mean of the two would have hidden this)
    assert stages["semantic"]["status"] == "early_stopped", stages
    assert stages["coarse"]["status"] == "completed" and stages["coarse"]["steps"] == 48
    sem_val = [(h["step"], h["val_loss_semantic"]) for h in result.history if "val_loss_semantic" in h]
    best_step, best_val = min(sem_val, key=lambda x: x[1])
    assert stages["semantic"]["best_step"] == best_step < stages["semantic"]["steps"]
    assert stages["semantic"]["best_val_loss"] == pytest.approx(best_val)
    assert sem_val[-1][1] > best_val                                    # it had begun to overfit
    assert all("loss_semantic" not in h for h in result.history if h["step"] > stages["semantic"]["steps"])

    # epochs per stage: examples seen / examples
    assert stages["coarse"]["epochs"] == pytest.approx(48 * 2 / 16)
    assert stages["semantic"]["epochs"] == pytest.approx(stages["semantic"]["steps"] * 2 / 4)
    # each stage's own schedule: coarse's cosine runs over its own 48 steps, from the peak at its first
    # to a last step that still learns (the rate each step used, as recorded)
    coarse_lr = [h["lr_coarse"] for h in result.history if "lr_coarse" in h]
    assert coarse_lr == pytest.approx([1e-2 * 0.5 * (1 + math.cos(math.pi * s / 48)) for s in range(48)])
    assert coarse_lr[-1] > 0  # the last step still learns

    # the best checkpoint of each stage survived pruning (keep_last=1), pointed to by best-<stage>
    for stage in ("semantic", "coarse"):
        pointed = ckpt.read_pointer(recipe.run_dir, ckpt.stage_best_pointer(stage))
        assert pointed is not None and str(pointed) == stages[stage]["best_checkpoint"]
        assert pointed.is_dir()

    # the adapter takes each stage from its own best checkpoint
    out = tmp_path / "assembled"
    manifest, sources = assemble_best_adapter(result, out)
    assert sources["semantic"] == ckpt.read_pointer(recipe.run_dir, "best-semantic")
    assert manifest["stage_checkpoints"]["semantic"]["best_step"] == best_step
    for stage in ("semantic", "coarse"):
        mine, theirs = _stage_weights(out, stage), _stage_weights(sources[stage] / "adapter", stage)
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    last = _stage_weights(ckpt.read_pointer(recipe.run_dir) / "adapter", "semantic")
    assert any(not torch.equal(last[k], v) for k, v in _stage_weights(out, "semantic").items())
    A.load_manifest(out)                                              # checksums hold
    bark = A.apply_adapters(load_bark("tiny"), [(out, 1.0)], "tiny")
    assert set(A.peft_models(bark)) == {"semantic", "coarse"}


def test_a_resumed_run_keeps_each_stages_state(tmp_path):
    whole = _recipe(tmp_path / "a", max_epochs=2, patience=0).train()
    calls = {"n": 0}

    def stop_after_5():
        calls["n"] += 1
        return calls["n"] >= 5

    part = _recipe(tmp_path / "b", max_epochs=2, patience=0)
    part.should_stop = stop_after_5
    assert part.train().status == "stopped"
    # the semantic stage (4 steps) has ended, coarse (16) goes on after the resume
    resumed = _recipe(tmp_path / "b", max_epochs=2, patience=0)
    resumed.resume_from = tmp_path / "b" / "run"
    done = resumed.train()
    assert done.stages["semantic"]["steps"] == 4 and done.stages["coarse"]["steps"] == 16
    assert [h["loss"] for h in done.history] == pytest.approx([h["loss"] for h in whole.history], abs=1e-6)
    assert {s: v["best_step"] for s, v in done.stages.items()} == {s: v["best_step"] for s, v in whole.stages.items()}


def test_an_adapter_and_a_checkpoint_from_before_per_stage_training(tmp_path):
    """The adapter format is unchanged: one written as before (one checkpoint for every stage, no
    per-stage record) loads and changes generation. Its checkpoint cannot resume exactly (the
    optimizer state was one AdamW for all stages): a clear error says what to do."""
    from models import generation as G
    from models.checkpoints import CheckpointError
    from models.lora import LoraSettings, add_lora, trainable_parameters
    from models.presets import load_text_tokenizer

    bark = load_bark("tiny")
    signature = A.base_signature(bark, ("semantic", "coarse", "fine"))
    add_lora(bark, ("semantic", "coarse", "fine"), LoraSettings(r=4, alpha=8, dropout=0.0))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in trainable_parameters(bark).values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    old = tmp_path / "old-adapter"
    A.save_adapter(bark, old, method="lora", stages=("semantic", "coarse", "fine"), base_model="tiny",
                   base_signature=signature, dataset={"name": "d", "hash": "h"}, hyperparameters={"r": 4},
                   metrics={"step": 6, "val_loss": 3.2, "loss": 3.3, "forgetting": {},
                            "val_loss_stages": {"semantic": 3.0, "coarse": 3.1, "fine": 3.5}},
                   parent_checkpoint=str(tmp_path / "run" / "step-0000006"))
    assert "stage_checkpoints" not in A.load_manifest(old)

    tok = load_text_tokenizer("tiny")
    request = [G.Request(text="Hello there.", seed=3)]
    sampling = G.Sampling(semantic_max_new_tokens=16)
    base = G.generate(G.BarkStages.from_bark(load_bark("tiny")), tok, request, sampling)[0]
    tuned = G.generate(G.BarkStages.from_bark(A.apply_adapters(load_bark("tiny"), [(old, 1.0)], "tiny")), tok,
                       request, sampling)[0]
    assert tuned.audio.size > 0
    assert len(tuned.semantic[0]) != len(base.semantic[0]) or (tuned.semantic[0] != base.semantic[0]).any()

    run = tmp_path / "run"
    ckpt.write_checkpoint(run, 6, lambda folder: None, {"config": _recipe(tmp_path).cfg.to_dict(), "max_steps": 6,
                                                        "samplers": {}, "history": []})
    recipe = _recipe(tmp_path)
    recipe.resume_from = run
    with pytest.raises(CheckpointError, match="before stages had their own schedules.*start a new training job"):
        recipe.setup()
