"""Label conditioning enters Bark identically in training and generation: for each stage, the
conditioned training layout's logits equal, at every predicted position, those the generation
loop computes step by step with the same vector (as test_models_parity.py does without one); the
fast engine generates the reference engine's tokens under a condition; an adapter trained with
--condition saves, loads and refuses bad labels in one line; one trained without keeps working."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import conditioning as K
from models import constants as C
from models import generation as G
from models import layouts as L
from models.errors import ModelInputError
from models.presets import load_bark
from models.voice_prompt import from_tokens

TOL = 1e-4
HIDDEN = 64  # the tiny model


@pytest.fixture(scope="module")
def bark():
    return load_bark("tiny")


def _cond(seed: int, rows: int = 1) -> torch.Tensor:
    return torch.randn(rows, HIDDEN, generator=torch.Generator().manual_seed(seed))


def _item(n_sem, n_frames, seed, voice=None):
    rng = np.random.default_rng(seed)
    return L.TokenItem(text_ids=rng.integers(5, 300, 12).tolist(), semantic=rng.integers(0, C.SEMANTIC_VOCAB_SIZE, n_sem),
                       codes=rng.integers(0, C.CODEBOOK_SIZE, (8, n_frames)), history=voice, key="clip")


def _voice(seed, n_sem=300, n_frames=450):
    rng = np.random.default_rng(seed)
    return from_tokens(rng.integers(0, C.SEMANTIC_VOCAB_SIZE, n_sem), rng.integers(0, C.CODEBOOK_SIZE, (8, n_frames)))


def _layout(stage, module, examples, cond):
    batch = L.collate(stage, examples)
    with torch.no_grad():
        return L.stage_forward(stage, module, batch, cond.expand(len(examples), -1)), batch


def test_conditioned_semantic_layout_matches_generation(bark):
    voice, cond = _voice(1), _cond(1)
    item = _item(40, 60, 2, voice)
    examples = L.build_examples("semantic", item)
    logits, batch = _layout("semantic", bark.semantic, examples, cond)
    plain, _ = _layout("semantic", bark.semantic, examples, cond * 0)
    targets = batch["labels"][0, C.MAX_INPUT_SEMANTIC_LENGTH:]
    recorded = []

    def teacher(step, raw):
        recorded.append(raw[0].clone())
        return targets[step: step + 1]

    G.semantic_tokens(bark.semantic, [item.text_ids], [voice.semantic], G.Sampling.greedy(), [torch.Generator()],
                      teacher=teacher, cond=cond)
    ours = logits[0, C.MAX_INPUT_SEMANTIC_LENGTH:][: len(recorded)]
    assert len(recorded) == 41
    assert float((ours - torch.stack(recorded)).abs().max()) <= TOL
    assert float((ours - plain[0, C.MAX_INPUT_SEMANTIC_LENGTH:]).abs().max()) > 1e-3  # the vector matters


@pytest.mark.parametrize("with_voice", [False, True])
def test_conditioned_coarse_layout_matches_generation(bark, with_voice):
    voice, cond = (_voice(4) if with_voice else None), _cond(2)
    item = _item(100, 160, 5, voice)
    examples = L.build_examples("coarse", item)
    n_tokens = L.coarse_target_length(100)
    logits, batch = _layout("coarse", bark.coarse_acoustics, examples, cond)
    truth = L.interleave_coarse(torch.as_tensor(item.codes[:2, : n_tokens // 2]))
    recorded = {}

    def teacher(window, step, raw):
        recorded[(window, step)] = raw[0].clone()
        return truth[window * C.COARSE_SLIDING_WINDOW + step:][:1]

    G.coarse_tokens(bark.coarse_acoustics, [torch.as_tensor(item.semantic)], voice, G.Sampling.greedy(),
                    [torch.Generator()], teacher=teacher, cond=cond)
    worst = 0.0
    for w in range(len(examples)):
        positions = (batch["labels"][w] != L.IGNORE).nonzero()[:, 0]
        for step, pos in enumerate(positions.tolist()):
            worst = max(worst, float((logits[w, pos] - recorded[(w, step)]).abs().max()))
    assert len(recorded) == n_tokens and worst <= TOL, worst


@pytest.mark.parametrize("n_frames", [300, 1400])
def test_conditioned_fine_layout_matches_generation(bark, n_frames):
    """300 frames: one padded window (its padding filled under the condition, as generation fills
    it); 1400: several windows."""
    cond = _cond(3)
    item = _item(10, n_frames, 7)
    examples = L.build_examples("fine", item)
    _, windows = L.fine_windows(n_frames, 0)
    logits, batch = _layout("fine", bark.fine_acoustics, examples, cond)
    codes = torch.as_tensor(item.codes)
    recorded = {}

    def choose(wi, w, k, raw):
        recorded[(wi, k)] = raw[0].clone()
        frames = torch.arange(w.fill_start, w.start + C.MAX_FINE_INPUT)
        chosen = torch.argmax(raw[0, w.fill_start - w.start:, : C.CODEBOOK_SIZE], dim=-1)
        real = frames < n_frames
        chosen[real] = codes[k, frames[real]]
        return chosen[None]

    G.fine_codes(bark.fine_acoustics, codes[:2], None, 0.0, None, choose=choose, cond=cond)
    keys = [(wi, k) for wi in range(len(windows)) for k in range(2, 8)]
    worst = max(float((logits[i] - recorded[key]).abs().max()) for i, key in enumerate(keys))
    assert worst <= TOL, worst


# --- adapters: saved, loaded, both engines, refusals ---------------------------------------------

def _labelled(n, seed, speaker, accent=None):
    item = _item(20, 30, seed)
    item.labels = {"speaker": speaker, **({"accent": accent} if accent is not None else {})}
    item.key = f"{speaker}-{seed}"
    return item


@pytest.fixture(scope="module")
def conditioned_adapter(tmp_path_factory):
    """An adapter trained 1 step with --condition speaker --condition accent (tiny, all stages)."""
    from models.training import TrainConfig, TrainingRecipe, assemble_best_adapter

    run = tmp_path_factory.mktemp("run")
    items = [_labelled(0, 1, "alice", 0.0), _labelled(0, 2, "bob", 1.0), _labelled(0, 3, "alice", 0.5)]
    cfg = TrainConfig(stages=("semantic", "coarse", "fine"), r=2, alpha=4, lr=0.05, batch_size=1, grad_accum=1,
                      schedule="constant", warmup_ratio=0.0,
                      max_steps=1, eval_every=100, save_every=100, precision="fp32", condition=("speaker", "accent"),
                      voice_prompts="off", seed=0)
    result = TrainingRecipe(cfg, load_bark("tiny"), items[:2], run, val_items=items[2:]).train()
    folder = tmp_path_factory.mktemp("adapter") / "cast"
    folder.mkdir()
    manifest, _ = assemble_best_adapter(result, folder)
    return folder, manifest


def test_the_manifest_lists_the_labels_and_each_stage_carries_its_vectors(conditioned_adapter):
    folder, manifest = conditioned_adapter
    assert manifest["conditioning"] == {"labels": [
        {"name": "speaker", "kind": "categorical", "categories": ["alice", "bob"]},
        {"name": "accent", "kind": "numeric", "lo": 0.0, "hi": 1.0}]}
    from models.adapters import load_manifest

    loaded = K.load(folder, load_manifest(folder))
    assert loaded.n_rows == 4 and set(loaded.tables) == {"semantic", "coarse", "fine"}
    assert all(float(t.abs().sum()) > 0 for t in loaded.tables.values())  # trained away from zero


def test_both_engines_generate_the_same_tokens_under_a_condition(conditioned_adapter):
    from models.adapters import merge_adapters
    from models.fast_generation import run_rows

    folder, _ = conditioned_adapter
    bark = merge_adapters(load_bark("tiny"), [(folder, 1.0)], base_model="tiny")
    stages = G.BarkStages.from_bark(bark)
    part = [(0, 0, [101, 102, 103]), (1, 0, [101, 102, 103])]   # one text, two different labels
    conds = K.request_vectors(stages.conditioning, [{"speaker": {"alice": 0.7, "bob": 0.3}}, {"accent": 0.35}],
                              ("semantic", "coarse", "fine"))
    sampling = G.Sampling.greedy(semantic_max_new_tokens=16)
    ref_codes, ref_sem = G._run_rows(stages, part, None, sampling, [torch.Generator()] * 2, conds)
    fast_codes, fast_sem = run_rows(stages, part, None, sampling, [torch.Generator()] * 2, conds)
    for a, b in zip(ref_sem + ref_codes, fast_sem + fast_codes):
        assert torch.equal(a, b)
    plain_codes, plain_sem = G._run_rows(stages, part[:1], None, sampling, [torch.Generator()])
    assert not (torch.equal(plain_sem[0], ref_sem[0]) and torch.equal(plain_codes[0], ref_codes[0]))


@pytest.mark.parametrize("condition,message", [
    ({"speaker": "carol"}, "unknown speaker 'carol'; this adapter knows alice, bob"),
    ({"speaker": {"alice": 0.5, "dave": 0.5}}, "unknown speaker 'dave'"),
    ({"accent": 1.5}, "accent=1.5 is outside the trained range 0..1"),
    ({"accent": "high"}, "accent is a numeric label (0..1); got 'high'"),
    ({"emotion": "angry"}, "unknown label 'emotion': this adapter is conditioned on speaker, accent"),
])
def test_a_bad_label_is_refused_in_one_line_naming_it(conditioned_adapter, condition, message):
    from models.adapters import load_manifest

    folder, _ = conditioned_adapter
    with pytest.raises(ModelInputError) as err:
        K.request_vectors(K.load(folder, load_manifest(folder)), [condition], ("semantic",))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_adapter_without_conditioning_works_unchanged_and_refuses_a_label(tmp_path):
    from models.adapters import merge_adapters
    from models.training import TrainConfig, TrainingRecipe, assemble_best_adapter

    items = [_labelled(0, 4, "alice"), _labelled(0, 5, "bob")]
    cfg = TrainConfig(stages=("coarse",), r=2, alpha=4, lr=0.05, batch_size=1, grad_accum=1, max_steps=1,
                      eval_every=100, save_every=100, precision="fp32", voice_prompts="off")
    result = TrainingRecipe(cfg, load_bark("tiny"), items[:1], tmp_path / "run", val_items=items[1:]).train()
    (tmp_path / "plain").mkdir()
    manifest, _ = assemble_best_adapter(result, tmp_path / "plain")
    assert "conditioning" not in manifest
    assert not list((tmp_path / "plain").rglob(K.TABLE_FILE))
    bark = merge_adapters(load_bark("tiny"), [(tmp_path / "plain", 1.0)], base_model="tiny")
    assert K.attached(bark) is None
    stages = G.BarkStages.from_bark(bark)
    sampling = G.Sampling.greedy(semantic_max_new_tokens=8)
    codes, sem = G._run_rows(stages, [(0, 0, [7, 8, 9])], None, sampling, [torch.Generator()])
    assert codes[0].shape[0] == 8
    with pytest.raises(ModelInputError, match="need an adapter trained with --condition"):
        K.request_vectors(K.attached(bark), [{"speaker": "alice"}], ("semantic",))
