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
