"""Training layouts equal inference: for each stage, the logits of a training batch equal, at
every predicted position, the logits the generation loop computes step by step (KV cache, sliding
windows, fine re-prediction) when its samples are replaced by the ground truth. The generation
loop itself is checked against transformers' BarkModel.generate in test_models_generation.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import constants as C
from models import generation as G
from models import layouts as L
from models.presets import load_bark
from models.voice_prompt import from_tokens

TOL = 1e-4


@pytest.fixture(scope="module")
def bark():
    return load_bark("tiny")


def _item(n_sem: int, n_frames: int, seed: int, voice=None, n_text: int = 12) -> L.TokenItem:
    rng = np.random.default_rng(seed)
    return L.TokenItem(text_ids=rng.integers(5, 300, n_text).tolist(),
                       semantic=rng.integers(0, C.SEMANTIC_VOCAB_SIZE, n_sem),
                       codes=rng.integers(0, C.CODEBOOK_SIZE, (8, n_frames)), history=voice, key="test clip")


def _voice(seed: int, n_sem: int = 300, n_frames: int = 450):
    rng = np.random.default_rng(seed)
    return from_tokens(rng.integers(0, C.SEMANTIC_VOCAB_SIZE, n_sem), rng.integers(0, C.CODEBOOK_SIZE, (8, n_frames)))


def _layout_logits(stage, module, examples):
    batch = L.collate(stage, examples)
    with torch.no_grad():
        return L.stage_forward(stage, module, batch), batch


@pytest.mark.parametrize("with_voice", [False, True])
def test_semantic_layout_matches_generation(bark, with_voice):
    voice = _voice(1) if with_voice else None
    item = _item(n_sem=57, n_frames=90, seed=2, voice=voice)
    examples = L.build_examples("semantic", item)
    assert len(examples) == 1
    logits, batch = _layout_logits("semantic", bark.semantic, examples)
    targets = batch["labels"][0, C.MAX_INPUT_SEMANTIC_LENGTH:]
    assert targets[-1] == C.SEMANTIC_EOS_TOKEN and len(targets) == 58       # learns EOS at the real end
    assert (batch["labels"][0, : C.MAX_INPUT_SEMANTIC_LENGTH] == L.IGNORE).all()

    recorded = []

    def teacher(step, raw):
        recorded.append(raw[0].clone())
        return targets[step: step + 1]

    out = G.semantic_tokens(bark.semantic, [item.text_ids], [voice.semantic if voice else None],
                            G.Sampling.greedy(), [torch.Generator()], teacher=teacher)
    assert torch.equal(out[0], torch.as_tensor(item.semantic))
    step_logits = torch.stack(recorded)                                     # (58, 10048)
    diff = (logits[0, C.MAX_INPUT_SEMANTIC_LENGTH:][: len(recorded)] - step_logits).abs().max()
    assert float(diff) <= TOL, f"semantic layout differs from generation by {float(diff)}"


def test_a_clip_longer_than_one_generation_pass_is_left_out_of_the_semantic_stage_only():
    """Generation never feeds a clip's own earlier tokens as history: 767 tokens (+ EOS) is one
    pass; a longer clip gives no semantic example, says why, and keeps its coarse and fine ones."""
    fits = L.build_examples("semantic", _item(n_sem=767, n_frames=10, seed=3))
    assert [ex.n_targets for ex in fits] == [768]
    long = _item(n_sem=900, n_frames=1380, seed=3)
    assert L.build_examples("semantic", long) == []
    assert "test clip: 900 semantic tokens (~18.0 s) is longer than one Bark pass generates" in \
        L.semantic_skip_reason(long)
    assert L.build_examples("coarse", long) and L.build_examples("fine", long)


def test_tokens_cut_at_a_length_cap_carry_no_eos_target():
    item = _item(n_sem=12, n_frames=20, seed=4)
    (ended,) = L.build_examples("semantic", item)
    item.ended = False
    (cut,) = L.build_examples("semantic", item)
    assert ended.tensors["labels"][-1] == C.SEMANTIC_EOS_TOKEN and ended.n_targets == 13
    assert cut.n_targets == 12 and (cut.tensors["labels"] != C.SEMANTIC_EOS_TOKEN).all()
    assert torch.equal(cut.tensors["labels"][C.MAX_INPUT_SEMANTIC_LENGTH:], torch.as_tensor(item.semantic))


@pytest.mark.parametrize("with_voice", [False, True])
def test_coarse_layout_matches_generation(bark, with_voice):
    voice = _voice(4) if with_voice else None
    item = _item(n_sem=100, n_frames=160, seed=5, voice=voice)
    examples = L.build_examples("coarse", item)
    n_tokens = L.coarse_target_length(100)                                  # 300 tokens, 150 frames
    assert sum(ex.n_targets for ex in examples) == n_tokens
    assert len(examples) == int(np.ceil(n_tokens / C.COARSE_SLIDING_WINDOW))
    assert all(len(ex.tensors["input_ids"]) <= 256 + 1 + C.MAX_COARSE_HISTORY + C.COARSE_SLIDING_WINDOW - 1
               for ex in examples)
    logits, batch = _layout_logits("coarse", bark.coarse_acoustics, examples)
    truth = L.interleave_coarse(torch.as_tensor(item.codes[:2, : n_tokens // 2]))

    recorded: dict[tuple[int, int], torch.Tensor] = {}

    def teacher(window, step, raw):
        recorded[(window, step)] = raw[0].clone()
        return truth[window * C.COARSE_SLIDING_WINDOW + step:][:1]

    out = G.coarse_tokens(bark.coarse_acoustics, [torch.as_tensor(item.semantic)], voice, G.Sampling.greedy(),
                          [torch.Generator()], teacher=teacher)
    assert torch.equal(out[0], torch.as_tensor(item.codes[:2, : n_tokens // 2]))
    worst = 0.0
    for w, ex in enumerate(examples):
        labels = batch["labels"][w]
        positions = (labels != L.IGNORE).nonzero()[:, 0]
        assert len(positions) == ex.n_targets
        for step, pos in enumerate(positions.tolist()):
            worst = max(worst, float((logits[w, pos] - recorded[(w, step)]).abs().max()))
    assert len(recorded) == n_tokens
    assert worst <= TOL, f"coarse layout differs from generation by {worst}"


@pytest.mark.parametrize("n_frames,with_voice", [(300, False), (300, True), (1400, True)])
def test_fine_layout_matches_generation(bark, n_frames, with_voice):
    voice = _voice(6, n_frames=200) if with_voice else None
    item = _item(n_sem=10, n_frames=n_frames, seed=7, voice=voice)
    examples = L.build_examples("fine", item)
    n_hist = 200 if with_voice else 0
    _, windows = L.fine_windows(n_frames, n_hist)
    assert len(examples) == 6 * len(windows)
    logits, batch = _layout_logits("fine", bark.fine_acoustics, examples)
    codes = torch.as_tensor(item.codes)
    n_real = n_hist + n_frames

    recorded = {}

    def choose(wi, w, k, raw):
        # teacher forcing at real frames; past the clip's end, the greedy sampler's own choice
        recorded[(wi, k)] = raw[0].clone()
        frames = torch.arange(w.fill_start, w.start + C.MAX_FINE_INPUT)
        chosen = torch.argmax(raw[0, w.fill_start - w.start:, : C.CODEBOOK_SIZE], dim=-1)
        real = frames < n_real
        chosen[real] = codes[k, frames[real] - n_hist]
        return chosen[None]

    out = G.fine_codes(bark.fine_acoustics, codes[:2], voice, 0.0, None, choose=choose)
    assert torch.equal(out, codes)
    worst = 0.0
    for i, (wi, k) in enumerate((wi, k) for wi in range(len(windows)) for k in range(2, 8)):
        assert int(batch["codebook"][i]) == k
        worst = max(worst, float((logits[i] - recorded[(wi, k)]).abs().max()))
    assert worst <= TOL, f"fine layout differs from generation by {worst}"
    # every real frame of every predicted codebook is learned exactly once
    labels = batch["labels"]
    for k in range(2, 8):
        assert int((labels[batch["codebook"] == k] != L.IGNORE).sum()) == n_frames


def _transformers_fine_logits(bark, codes: torch.Tensor, voice, n_hist: int) -> list[torch.Tensor]:
    """Run transformers' own BarkFineModel.generate (greedy) with its logits bent so that its argmax
    picks the true code at every real frame; at padding frames they are left alone, so its own
    argmax chooses there. Returns the unbent logits of every forward call, in call order."""
    fine = bark.fine_acoustics
    n_real = n_hist + codes.shape[1]
    truth = torch.cat([torch.as_tensor(voice.fine)[:, -C.MAX_FINE_HISTORY:] if voice is not None
                       else torch.zeros((8, 0), dtype=torch.long), codes], dim=1)          # (8, n_real)
    _, windows = L.fine_windows(codes.shape[1], n_hist)
    calls: list[torch.Tensor] = []
    real_forward = fine.forward

    def forward(codebook_idx, input_ids, *args, **kwargs):
        out = real_forward(codebook_idx, input_ids, *args, **kwargs)
        calls.append(out.logits[0].clone())
        w = windows[(len(calls) - 1) // 6]
        frames = torch.arange(w.start, w.start + C.MAX_FINE_INPUT)
        real = frames < n_real
        bent = out.logits.clone()
        bent[0, real.nonzero()[:, 0], truth[codebook_idx, frames[real]]] = 1e4
        out.logits = bent
        return out

    fine.forward = forward
    try:
        flat = L.interleave_coarse(codes[:2])[None]                                        # (1, 2T)
        from transformers.models.bark import generation_configuration_bark as GC

        def config(cls, value):  # transformers 5.24 keeps them as dicts after loading
            return value if isinstance(value, cls) else cls(**value)

        gc = bark.generation_config
        hist = voice.as_history() if voice is not None else None
        with torch.no_grad():
            out = fine.generate(
                flat, semantic_generation_config=config(GC.BarkSemanticGenerationConfig, gc.semantic_config),
                coarse_generation_config=config(GC.BarkCoarseGenerationConfig, gc.coarse_acoustics_config),
                fine_generation_config=config(GC.BarkFineGenerationConfig, gc.fine_acoustics_config),
                history_prompt=hist, temperature=1.0)                                      # 1.0: argmax
    finally:
        del fine.forward
    assert torch.equal(out[0].long(), codes)
    assert len(calls) == 6 * len(windows)
    return calls


@pytest.mark.parametrize("n_frames,with_voice", [(300, False), (300, True), (1400, False), (1400, True)])
def test_fine_layout_matches_transformers_generate(bark, n_frames, with_voice):
    """Padded (one window, the sampler's own codes past the clip's end) and multi-window clips:
    every training example's logits equal those of the matching forward call transformers makes."""
    voice = _voice(12, n_frames=200) if with_voice else None
    item = _item(n_sem=10, n_frames=n_frames, seed=13, voice=voice)
    examples = L.build_examples("fine", item)
    calls = _transformers_fine_logits(bark, torch.as_tensor(item.codes), voice, 200 if with_voice else 0)
    assert len(examples) == len(calls)                        # one example per (window, codebook)
    logits, batch = _layout_logits("fine", bark.fine_acoustics, examples)
    worst = max(float((logits[i] - calls[i]).abs().max()) for i in range(len(calls)))
    assert worst <= TOL, f"fine layout differs from transformers' generate by {worst}"


def test_coarse_loss_normalises_over_exactly_what_generation_samples_from(bark, monkeypatch):
    """The candidate set of the loss at every coarse target equals the set of finite scores after
    the generation loops' own masking (ours with transformers' processors, and the fast engine's)."""
    from models import fast_generation as FG

    item = _item(n_sem=30, n_frames=60, seed=14)
    examples = L.build_examples("coarse", item)
    labels = torch.cat([ex.tensors["labels"] for ex in examples])
    targets = labels[labels != L.IGNORE]                                    # in generation order
    expected = L.coarse_candidates(targets)                                 # (N, 12096)
    assert int(expected[1].sum()) == C.CODEBOOK_SIZE + 48                   # codebook 1 admits 12048..12095

    masks: list[torch.Tensor] = []
    real_process = G._process
    monkeypatch.setattr(G, "_process", lambda procs, ids, logits: masks.append(
        torch.isfinite(real_process(procs, ids, logits))[0]) or real_process(procs, ids, logits))
    G.coarse_tokens(bark.coarse_acoustics, [torch.as_tensor(item.semantic)], None, G.Sampling(),
                    [torch.Generator().manual_seed(0)])
    assert len(masks) == len(targets)
    assert torch.equal(torch.stack(masks), expected)

    fast_masks: list[torch.Tensor] = []
    real_sample = FG.sample
    monkeypatch.setattr(FG, "sample", lambda logits, *a, **k: fast_masks.append(
        torch.isfinite(logits)[0].cpu()) or real_sample(logits, *a, **k))
    FG.coarse_tokens(bark.coarse_acoustics, [torch.as_tensor(item.semantic)], [None], temperature=0.7,
                     generators=[torch.Generator().manual_seed(0)])
    assert torch.equal(torch.stack(fast_masks), expected)

    # and the loss is the cross-entropy over that set: the special tokens' logits get gradient
    logits = torch.randn(len(targets), C.COARSE_VOCAB, requires_grad=True)
    batch = {"labels": targets[None]}
    loss, n = L.stage_loss("coarse", logits[None], batch)
    masked = logits.detach().masked_fill(~expected, float("-inf"))
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(masked, targets), atol=1e-6)
    loss.backward()
    assert logits.grad[1, 12048:].abs().sum() > 0 and logits.grad[0, 11024:].abs().sum() == 0


def test_loss_ignores_padding_and_counts_targets(bark):
    items = [_item(20, 40, seed=8), _item(45, 70, seed=9)]
    for stage, module in (("semantic", bark.semantic), ("coarse", bark.coarse_acoustics),
                          ("fine", bark.fine_acoustics)):
        examples = [ex for it in items for ex in L.build_examples(stage, it)]
        batch = L.collate(stage, examples)
        with torch.no_grad():
            logits = L.stage_forward(stage, module, batch)
            loss, n = L.stage_loss(stage, logits, batch)
            alone = [L.stage_loss(stage, L.stage_forward(stage, module, L.collate(stage, [ex])),
                                  L.collate(stage, [ex])) for ex in examples]
        assert n == sum(ex.n_targets for ex in examples) == sum(k for _, k in alone)
        mean_alone = sum(float(l) * k for l, k in alone) / n
        assert abs(float(loss) - mean_alone) < 1e-4, stage                 # padding changes nothing
        assert float(loss) > 0


def test_stage_forward_works_on_a_peft_wrapped_stage(bark):
    from peft import LoraConfig, get_peft_model

    item = _item(30, 50, seed=10)
    for stage, attr in (("semantic", "semantic"), ("coarse", "coarse_acoustics"), ("fine", "fine_acoustics")):
        fresh = load_bark("tiny")
        module = getattr(fresh, attr)
        batch = L.collate(stage, L.build_examples(stage, item)[:2])
        with torch.no_grad():
            base = L.stage_forward(stage, module, batch)
        wrapped = get_peft_model(module, LoraConfig(r=4, lora_alpha=8, target_modules=r".*attn\.(att_proj|out_proj)"))
        logits = L.stage_forward(stage, wrapped, batch)                      # LoRA B = 0: same logits
        assert torch.allclose(logits, base, atol=1e-5)
        loss, _ = L.stage_loss(stage, logits, batch)
        loss.backward()
        assert any(p.grad is not None for n, p in wrapped.named_parameters() if "lora_" in n)


@pytest.mark.parametrize("n_sem,n_frames", [(1, 40), (2, 40), (3, 1), (300, 450), (700, 40)])
def test_coarse_histories_equal_transformers_for_every_prompt_length(bark, n_sem, n_frames):
    """Including a 1-token semantic prompt, where transformers keeps the whole prompt (x[-0:])."""
    voice = _voice(15, n_sem=n_sem, n_frames=n_frames)
    x_sem, x_coarse = L.coarse_histories(voice)
    gc = bark.generation_config
    sem_cfg = gc.semantic_config
    vocab = sem_cfg["semantic_vocab_size"] if isinstance(sem_cfg, dict) else sem_cfg.semantic_vocab_size
    theirs_sem, theirs_coarse = bark.coarse_acoustics.preprocess_histories(
        C.MAX_COARSE_HISTORY, C.SEMANTIC_TO_COARSE_RATIO, 1, type("Cfg", (), {"semantic_vocab_size": vocab}),
        C.CODEBOOK_SIZE, voice.as_history())
    assert torch.equal(x_sem, theirs_sem[0].long()) and torch.equal(x_coarse, theirs_coarse[0].long())
    # and a training example's prompt carries that history
    examples = L.build_examples("coarse", _item(n_sem=20, n_frames=40, seed=16, voice=voice))
    prompt = examples[0].tensors["input_ids"][C.MAX_COARSE_INPUT_LENGTH + 1:][: x_coarse.numel()]
    assert torch.equal(prompt, x_coarse)


def test_a_padded_fine_batch_trains_under_autocast():
    """The padding fill runs without gradient inside the training forward's autocast region; the
    low-precision weight copies it makes must not be reused by the forward that needs gradient."""
    from peft import LoraConfig, get_peft_model

    module = get_peft_model(load_bark("tiny").fine_acoustics,
                            LoraConfig(r=2, lora_alpha=4, target_modules=r".*attn\.(att_proj|out_proj)"))
    batch = L.collate("fine", L.build_examples("fine", _item(10, 40, seed=17))[3:5])   # codebooks 5, 6: filled
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = L.stage_loss("fine", L.stage_forward("fine", module, batch), batch)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in module.named_parameters() if "lora_B" in n)
