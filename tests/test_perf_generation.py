"""models.fast_generation reproduces stock BarkModel.generate, and batching changes no row's output."""

import numpy as np
import pytest
import torch
from transformers.models.bark.generation_configuration_bark import BarkSemanticGenerationConfig

from models import constants as C
from models import fast_generation as fg
from models.layouts import semantic_prefix
from models.presets import load_bark
from models.voice_prompt import VoicePrompt

GREEDY = fg.GenerationSettings(semantic_temperature=0, coarse_temperature=0, fine_temperature=0)
# stock decodes a strided slice of a batched embedding; EnCodec's convolutions then round differently
# (~3e-4 on samples of ~0.1). Identical codes give this; one different code changes samples by far more.
AUDIO_TOL = 1e-3


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core box: one intra-op thread avoids OpenMP oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bark():
    return load_bark("tiny")


def texts(n, seed=0, length=10):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1_000, 30_000, (length,), generator=g).tolist() for _ in range(n)]


def stock_inputs(ids):
    """What BarkProcessor hands BarkModel.generate: ids padded to 256 with the attention mask."""
    x = torch.zeros(len(ids), 256, dtype=torch.long)
    m = torch.zeros(len(ids), 256, dtype=torch.long)
    for i, t in enumerate(ids):
        x[i, : len(t)] = torch.tensor(t)
        m[i, : len(t)] = 1
    return {"input_ids": x, "attention_mask": m}


def voice(seed=0, n_sem=120, frames=200):
    g = np.random.default_rng(seed)
    return VoicePrompt(g.integers(0, 10_000, n_sem), g.integers(0, 1024, (8, frames)))


def stock_codes(bark, ids, history, max_new):
    """Stock greedy (8, T) codes per row: the three stage generates BarkModel.generate chains."""
    from transformers.models.bark.generation_configuration_bark import (BarkCoarseGenerationConfig,
                                                                        BarkFineGenerationConfig)

    gc = bark.generation_config
    sc = BarkSemanticGenerationConfig(**gc.semantic_config)
    cc = BarkCoarseGenerationConfig(**gc.coarse_acoustics_config)
    fc = BarkFineGenerationConfig(**gc.fine_acoustics_config)
    with torch.no_grad():
        sem = bark.semantic.generate(**stock_inputs(ids), history_prompt=history, semantic_generation_config=sc,
                                     max_new_tokens=max_new, min_eos_p=0.2)
        coarse, lengths = bark.coarse_acoustics.generate(sem.clone(), history_prompt=history, semantic_generation_config=sc,
                                                         coarse_generation_config=cc, codebook_size=1024,
                                                         return_output_lengths=True)
        fine = bark.fine_acoustics.generate(coarse, history_prompt=history, semantic_generation_config=sc,
                                            coarse_generation_config=cc, fine_generation_config=fc, codebook_size=1024)
    return [fine[i, :, : int(n) // 2] for i, n in enumerate(lengths)]


def test_greedy_pipeline_equals_stock_generate_token_for_token(bark):
    ids = texts(3)
    expect = stock_codes(bark, ids, None, 40)  # 40 semantic -> 120 coarse tokens: 2 windows, the 2nd from cache
    settings = fg.GenerationSettings(**{**GREEDY.__dict__, "max_semantic_tokens": 40, "min_eos_p": 0.2})
    ours = fg.generate_batch(bark, ids, settings=settings)
    for i, out in enumerate(ours):
        assert torch.equal(out.codes, expect[i])
        assert out.audio.shape == (expect[i].shape[1] * 320,)
    with torch.no_grad():
        audio, lengths = bark.generate(**stock_inputs(ids[:1]), semantic_max_new_tokens=40, min_eos_p=0.2,
                                       return_output_lengths=True)
    assert np.abs(ours[0].audio - audio[0, : lengths[0]].numpy()).max() <= AUDIO_TOL


def test_greedy_with_a_voice_prompt_equals_stock(bark):
    """History paths: semantic history, coarse history (no cache reuse: 630-token history), fine history."""
    ids = texts(2, seed=1)
    v = voice(n_sem=300, frames=460)
    expect = stock_codes(bark, ids, v.as_history(), 30)
    settings = fg.GenerationSettings(**{**GREEDY.__dict__, "max_semantic_tokens": 30})
    ours = fg.generate_batch(bark, ids, voices=[v, v], settings=settings, decode_audio=False)
    for i, out in enumerate(ours):
        assert torch.equal(out.codes, expect[i])


def test_semantic_eos_rule_matches_stock(bark):
    """min_eos_p forces EOS exactly where transformers' BarkEosPrioritizerLogitsProcessor does."""
    ids = texts(2, seed=2)
    cfg = BarkSemanticGenerationConfig(**bark.generation_config.semantic_config)
    with torch.no_grad():
        stock = bark.semantic.generate(**stock_inputs(ids), semantic_generation_config=cfg, max_new_tokens=30,
                                       min_eos_p=1.2e-4)
    pre = [semantic_prefix(t, None) for t in ids]
    ours = fg.semantic_tokens(bark.semantic, torch.stack([p[0] for p in pre]), torch.stack([p[1] for p in pre]),
                              max_new_tokens=30, temperature=0, min_eos_p=1.2e-4)
    for i in range(2):
        expect = stock[i][stock[i] != 10_000]
        assert len(expect) < 30  # EOS came before the limit
        assert torch.equal(ours[i], expect)


def test_batched_equals_one_at_a_time_for_the_same_seeds(bark):
    """Sampling (suno's temperatures), mixed prompts and voices: a row's output is its own."""
    ids = texts(3, seed=3) + texts(1, seed=3)  # last row repeats the first text: a variant
    voices = [None, voice(4, n_sem=80, frames=120), None, None]
    seeds = [11, 12, 13, 99]
    settings = fg.GenerationSettings(max_semantic_tokens=24, min_eos_p=1.3e-4, batch_size=4)
    together = fg.generate_batch(bark, ids, voices, seeds, settings)
    alone = [fg.generate_batch(bark, [t], [v], [s], settings)[0] for t, v, s in zip(ids, voices, seeds)]
    for a, b in zip(together, alone):
        assert torch.equal(a.semantic, b.semantic)
        assert torch.equal(a.codes, b.codes)
        assert np.allclose(a.audio, b.audio, atol=1e-5)
    assert not torch.equal(together[0].codes, together[3].codes)  # same text, other seed: another take


def test_coarse_windows_reuse_the_cache_instead_of_re_encoding(bark, monkeypatch):
    calls = []
    real = fg.causal_forward

    def spy(stage, embeds, cache):
        calls.append(embeds.shape[1])
        return real(stage, embeds, cache)

    monkeypatch.setattr(fg, "causal_forward", spy)
    sem = [torch.randint(0, 10_000, (60,))]  # 180 coarse tokens: 3 windows of 60
    fg.coarse_tokens(bark.coarse_acoustics, sem, [None], temperature=0)
    prefills = [n for n in calls if n > 1]
    assert prefills == [257]  # one prompt encoding; windows 2 and 3 continue from the cache


def test_variants_of_one_prompt_share_one_prefill(bark, monkeypatch):
    """A sweep's takes repeat one prompt: its 257 prefix positions are encoded once, not per take."""
    rows = []
    real = fg.causal_forward

    def spy(stage, embeds, cache):
        if embeds.shape[1] > 1:
            rows.append(embeds.shape[0])
        return real(stage, embeds, cache)

    monkeypatch.setattr(fg, "causal_forward", spy)
    prefix = semantic_prefix(texts(1, seed=5)[0])
    text = torch.stack([prefix[0]] * 3 + [semantic_prefix(texts(1, seed=6)[0])[0]])
    hist = torch.stack([prefix[1]] * 4)
    gens = fg._generators([1, 2, 3, 4], 4)
    out = fg.semantic_tokens(bark.semantic, text, hist, max_new_tokens=6, min_new_tokens=6, generators=gens)
    assert rows == [2]  # two distinct prompts among four rows
    alone = fg.semantic_tokens(bark.semantic, text[1:2], hist[1:2], max_new_tokens=6, min_new_tokens=6,
                               generators=fg._generators([2], 1))
    assert torch.equal(out[1], alone[0])


def test_distinct_prompts_keep_their_own_cache_rows_in_any_order(bark, monkeypatch):
    """The prefill encodes distinct prompts in sorted order; every row must still decode from its
    own cache row (the tiny model's tokens barely depend on the prompt, so compare the caches)."""
    first_step = []
    real = fg.causal_forward

    def spy(stage, embeds, cache):
        if embeds.shape[1] == 1 and not first_step:
            first_step.append(cache.k[:, :, :, : cache.length].clone())
        return real(stage, embeds, cache)

    monkeypatch.setattr(fg, "causal_forward", spy)
    rows = [semantic_prefix([25_000, 26_000, 27_000]), semantic_prefix([1_000, 2_000])]  # sorted: 2nd first
    text, hist = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
    fg.semantic_tokens(bark.semantic, text, hist, max_new_tokens=2, min_new_tokens=2, temperature=0)
    together = first_step.pop()
    for i in range(2):
        fg.semantic_tokens(bark.semantic, text[i : i + 1], hist[i : i + 1], max_new_tokens=2, min_new_tokens=2,
                           temperature=0)
        assert torch.allclose(together[:, i], first_step.pop()[:, 0], atol=1e-5)


def test_bf16_inference_keeps_an_fp32_cache_on_cpu_and_stays_close_to_fp32(bark):
    """bf16 weights halve the bytes each decode step reads; on CPU the KV cache and attention stay
    fp32 (torch's CPU attention is faster there). The logits stay near the fp32 model's."""
    import copy

    low = fg.prepare_for_inference(copy.deepcopy(bark), "bf16", "sdpa", "cpu")
    ids = semantic_prefix(texts(1, seed=8)[0])

    def embeds_of(m):  # the semantic prefix [text + history | infer], as semantic_tokens builds it
        emb = m.semantic.input_embeds_layer
        return torch.cat([(emb(ids[0]) + emb(ids[1]))[None], emb(torch.tensor([[C.SEMANTIC_INFER_TOKEN]]))], dim=1)

    with torch.no_grad():
        ref_cache, low_cache = fg.StaticKVCache(bark.semantic, 1, 300), fg.StaticKVCache(low.semantic, 1, 300)
        assert low.semantic.lm_head.weight.dtype == torch.bfloat16 and low_cache.k.dtype == torch.float32
        ref = fg.causal_forward(bark.semantic, embeds_of(bark), ref_cache)
        got = fg.causal_forward(low.semantic, embeds_of(low).float(), low_cache)
        for tok in (5, 17, 230):
            step = torch.tensor([[tok]])
            ref = fg.causal_forward(bark.semantic, bark.semantic.input_embeds_layer(step), ref_cache)
            got = fg.causal_forward(low.semantic, low.semantic.input_embeds_layer(step), low_cache)
            assert (got - ref).abs().max() < 0.05 * ref.std() + 1e-3
    fine_in = torch.randint(0, 1024, (1, 1024, 8))
    with torch.no_grad():
        a = bark.fine_acoustics(3, fine_in).logits
        b = low.fine_acoustics(3, fine_in).logits.float()
    assert (a - b).abs().max() < 0.05 * a.std() + 1e-3


def test_seed_count_must_match_prompts(bark):
    with pytest.raises(ValueError, match="2 seeds for 1 prompts"):
        fg.generate_batch(bark, texts(1), seeds=[1, 2], settings=fg.GenerationSettings(max_semantic_tokens=4))


def test_model_core_generate_with_fast_engine_gives_the_same_audio(bark):
    """models.generation.generate(fast=True) swaps in this engine under the same request handling."""
    from models import generation as G
    from models.presets import load_text_tokenizer

    tok = load_text_tokenizer("tiny")
    stages = G.BarkStages.from_bark(bark)
    reqs = [G.Request("hello there friend", None, 5), G.Request("a second line of text", voice(7, 90, 130), 6)]
    for sampling in (G.Sampling.greedy(semantic_max_new_tokens=20), G.Sampling(semantic_max_new_tokens=20, min_eos_p=None)):
        slow = G.generate(stages, tok, reqs, sampling)
        fast = G.generate(stages, tok, reqs, sampling, fast=True)
        for a, b in zip(slow, fast):
            assert all(np.array_equal(x, y) for x, y in zip(a.semantic, b.semantic))
            assert all(np.array_equal(x, y) for x, y in zip(a.codes, b.codes))
