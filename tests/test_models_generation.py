"""Generation: our loop equals transformers' BarkModel.generate (greedy, and sampled with the same
seed), rows do not depend on their batch, long text is split and joined, voice prompts condition,
and bad input (text over the token limit, wrong-shape prompt, missing weights) is one clear error."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import constants as C
from models import generation as G
from models import voice_prompt
from models.errors import MissingWeightsError, ModelInputError
from models.presets import load_bark, load_text_tokenizer
from models.text import encode_text, split_for_generation

TEXT = "Hello there, my dog is cute."


@pytest.fixture(scope="module")
def bark():
    return load_bark("tiny")


@pytest.fixture(scope="module")
def tok():
    return load_text_tokenizer("tiny")


@pytest.fixture(scope="module")
def voice():
    rng = np.random.default_rng(11)
    return voice_prompt.from_tokens(rng.integers(0, 10000, 300), rng.integers(0, 1024, (8, 450)))


def _hf(bark, tok, text, voice, seed, **kw):
    ids = encode_text(tok, text)
    inp = torch.zeros((1, 256), dtype=torch.long)
    inp[0, : len(ids)] = torch.tensor(ids)
    mask = (torch.arange(256) < len(ids)).long()[None]
    torch.manual_seed(seed)
    hist = voice.as_history() if voice is not None else None
    return bark.generate(input_ids=inp, attention_mask=mask, history_prompt=hist, semantic_max_new_tokens=24,
                         **kw)[0].numpy()


def test_tiny_is_identical_every_time_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    a = load_bark("tiny")
    x = torch.rand(1)
    torch.manual_seed(0)
    b = load_bark("tiny")
    assert torch.rand(1) == x
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.semantic.config.input_vocab_size == 129600 and a.semantic.config.output_vocab_size == 10048
    assert a.coarse_acoustics.config.output_vocab_size == 12096 and a.fine_acoustics.config.output_vocab_size == 1056
    assert len(a.fine_acoustics.lm_heads) == 7 and a.codec_model.config.frame_rate == 75
    a.semantic.lm_head.weight.data.zero_()                                    # a copy: b is untouched
    assert b.semantic.lm_head.weight.abs().sum() > 0


def test_greedy_with_a_voice_matches_transformers(bark, tok, voice):
    ref = _hf(bark, tok, TEXT, voice, 0, fine_temperature=1.0)  # transformers: fine temperature 1.0 is argmax
    sampling = G.Sampling.greedy(min_eos_p=None, semantic_max_new_tokens=24)
    ours = G.generate(G.BarkStages.from_bark(bark), tok, [G.Request(TEXT, voice, 0)], sampling)[0]
    assert ours.audio.shape == ref.shape and np.array_equal(ours.audio, ref)
    # the voice conditions the semantic stage (its history), not only the acoustic ones
    plain = G.semantic_tokens(bark.semantic, [encode_text(tok, TEXT)], [None], sampling, [torch.Generator()])
    assert not torch.equal(plain[0], torch.as_tensor(ours.semantic[0]))


def test_sampling_matches_transformers_for_the_same_seed(bark, tok):
    kw = dict(do_sample=True, semantic_temperature=0.7, coarse_temperature=0.7, fine_temperature=0.5,
              min_eos_p=0.2, top_k=50, top_p=0.95)
    ref = _hf(bark, tok, TEXT, None, 123, **kw)
    sampling = G.Sampling(semantic_max_new_tokens=24, top_k=50, top_p=0.95)
    ours = G.generate(G.BarkStages.from_bark(bark), tok, [G.Request(TEXT, None, 123)], sampling)[0]
    assert np.array_equal(ours.audio, ref)
    greedy = _hf(bark, tok, TEXT, None, 123, fine_temperature=1.0)
    assert not np.array_equal(greedy, ref)                                    # it really sampled


def test_a_variant_is_the_same_alone_and_in_a_batch(bark, tok):
    stages = G.BarkStages.from_bark(bark)
    sampling = G.Sampling(semantic_max_new_tokens=20)
    batch = G.generate(stages, tok, [G.Request("Good day to you.", None, 5), G.Request(TEXT, None, 9)], sampling)
    alone = G.generate(stages, tok, [G.Request(TEXT, None, 9)], sampling)[0]
    assert np.allclose(batch[1].audio, alone.audio, atol=1e-5)
    assert not np.array_equal(batch[0].codes[0][:, :10], alone.codes[0][:, :10])
    assert all(r.sample_rate == C.SAMPLE_RATE and r.audio.dtype == np.float32 and len(r.audio) > 0 for r in batch)


def test_a_row_that_ends_early_is_the_same_alone_and_in_a_batch(bark, tok):
    """Sampled rows of very different lengths: the short one reaches EOS while its batch mate goes
    on (semantic stage) and then ends its coarse codes first. Its draws must stop with it, or its
    later coarse/fine samples shift with the mate's length."""
    stages = G.BarkStages.from_bark(bark)
    # tiny's EOS probability hovers near 1e-4: at 1.35e-4 "Hi." (seed 5) ends at step 6 (p=1.39e-4)
    # while the long text (seed 9) peaks at 1.28e-4 and runs to the cap
    sampling = G.Sampling(semantic_max_new_tokens=24, min_eos_p=1.35e-4)
    short, long = G.Request("Hi.", None, 5), G.Request("The weather is nice this morning, is it not?", None, 9)
    batch = G.generate(stages, tok, [short, long], sampling)
    assert len(batch[0].semantic[0]) < 10 and len(batch[1].semantic[0]) == 24   # one row really ends early
    for i, req in enumerate((short, long)):
        alone = G.generate(stages, tok, [req], sampling)[0]
        assert np.array_equal(batch[i].semantic[0], alone.semantic[0])
        assert np.array_equal(batch[i].codes[0], alone.codes[0]), f"row {i} changed with its batch mate"
        assert np.allclose(batch[i].audio, alone.audio, atol=1e-5)


def test_long_text_is_split_at_sentence_ends_and_joined(bark, tok):
    text = "One two three four five. Six seven eight nine ten!"
    assert split_for_generation(text, max_words=5) == ["One two three four five.", "Six seven eight nine ten!"]
    assert split_for_generation("One two. Three four! Five six?", max_words=4) == ["One two. Three four!", "Five six?"]
    res = G.generate(G.BarkStages.from_bark(bark), tok, [G.Request(text, None, 1)],
                     G.Sampling(semantic_max_new_tokens=12), max_words=5)[0]
    assert res.chunks == split_for_generation(text, max_words=5)
    pieces = [G.decode_codes(bark.codec_model, torch.as_tensor(c)) for c in res.codes]
    gap = int(G.SENTENCE_GAP_S * C.SAMPLE_RATE)
    assert len(res.audio) == sum(len(p) for p in pieces) + gap
    assert np.array_equal(res.audio[: len(pieces[0])], pieces[0])


def test_text_over_the_token_limit_is_a_clear_error(tok):
    words = " ".join(["hello"] * 300)
    with pytest.raises(ModelInputError, match=r"text is 300 tokens long; Bark reads at most 256"):
        encode_text(tok, words)
    assert len(split_for_generation(words, max_words=30, tokenizer=tok)) == 10  # generation splits it instead


def test_voice_prompt_shapes_are_checked_on_load(tmp_path, voice):
    good = voice.save(tmp_path / "good.npz")
    loaded = voice_prompt.load(good)
    assert loaded.fine.shape == (8, 450) and loaded.coarse.shape == (2, 450) and loaded.semantic.shape == (300,)
    with np.load(good) as data:   # BarkProcessor's format: exactly these three arrays
        assert sorted(data.files) == ["coarse_prompt", "fine_prompt", "semantic_prompt"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, semantic_prompt=np.zeros((2, 5), np.int64), coarse_prompt=np.zeros((2, 4), np.int64),
             fine_prompt=np.zeros((8, 4), np.int64))
    with pytest.raises(ModelInputError, match=r"bad.npz: semantic_prompt must be 1-D.*\(2, 5\)"):
        voice_prompt.load(bad)
    np.savez(bad, semantic_prompt=np.zeros(5, np.int64), coarse_prompt=np.zeros((2, 4), np.int64),
             fine_prompt=np.zeros((6, 4), np.int64))
    with pytest.raises(ModelInputError, match=r"fine_prompt must be 8 x T, got shape \(6, 4\)"):
        voice_prompt.load(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelInputError, match="junk.npz: not a readable .npz"):
        voice_prompt.load(tmp_path / "junk.npz")


def test_missing_weights_offline_name_the_model_and_the_download_command(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError, match=r"missing Bark suno/bark-small.*bark-studio models download small"):
        load_bark("small")
    with pytest.raises(ModelInputError, match="does not exist"):
        load_bark(str(tmp_path / "no-such-folder"))
    from models.tokens import load_semantic_tokenizer

    with pytest.raises(MissingWeightsError, match="facebook/hubert-base-ls960"):
        load_semantic_tokenizer("large")
