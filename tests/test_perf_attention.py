"""SDPA attention and activation checkpointing give the same numbers as transformers' eager Bark."""

import copy

import pytest
import torch
from transformers import BarkCoarseModel, BarkFineModel, BarkSemanticModel
from transformers import GenerationMixin
from transformers.cache_utils import DynamicCache

from bench.shapes import bark_model, stage_configs, text_inputs
from models.attention import (
    BarkSdpaAttention,
    CheckpointedBarkBlock,
    attention_kind,
    autocast,
    disable_sdpa,
    enable_activation_checkpointing,
    enable_sdpa,
    make_grad_scaler,
    resolve_precision,
)

TOL = 1e-4  # fp32 logits, max abs diff


def small(cls, name, layers=2, heads=4, hidden=64, dropout=0.0):
    cfg = stage_configs("tiny", dropout)[name]
    cfg.num_layers, cfg.num_heads, cfg.hidden_size = layers, heads, hidden
    torch.manual_seed(0)
    return cls(cfg).eval()


def pair(model):
    """(eager, sdpa) copies of the same weights."""
    fast = copy.deepcopy(model)
    assert enable_sdpa(fast) == len(model.layers)
    assert attention_kind(model) == "eager" and attention_kind(fast) == "sdpa"
    return model, fast


@torch.no_grad()
def test_causal_sdpa_matches_eager_without_cache():
    eager, sdpa = pair(small(BarkSemanticModel, "semantic"))
    ids = torch.randint(0, 10_000, (3, 40))
    a = eager(ids, use_cache=False).logits
    b = sdpa(ids, use_cache=False).logits
    assert (a - b).abs().max().item() <= TOL


@torch.no_grad()
def test_causal_sdpa_matches_eager_with_cache_prefill_chunks_and_single_steps():
    eager, sdpa = pair(small(BarkCoarseModel, "coarse"))
    ids = torch.randint(0, 12_000, (2, 30))
    full = eager(ids, use_cache=False).logits
    for model in (eager, sdpa):
        cache = DynamicCache(config=model.config)
        outs = [model(ids[:, :20], cache=cache, use_cache=True).logits]  # prefill
        outs.append(model(ids[:, 20:24], cache=cache, use_cache=True).logits)  # 4-token chunk: bottom-right causal
        for i in range(24, 30):  # one token at a time
            outs.append(model(ids[:, i : i + 1], cache=cache, use_cache=True).logits)
        stepwise = torch.cat(outs, dim=1)
        assert (stepwise - full).abs().max().item() <= TOL, type(model.layers[0].attn).__name__
        assert cache.get_seq_length() == 30


@torch.no_grad()
def test_causal_sdpa_matches_eager_with_padding_mask():
    eager, sdpa = pair(small(BarkSemanticModel, "semantic"))
    ids = torch.randint(0, 10_000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, :5] = 0  # left padding on the second row
    a = eager(ids, attention_mask=mask, use_cache=False).logits
    b = sdpa(ids, attention_mask=mask, use_cache=False).logits
    assert (a[0] - b[0]).abs().max().item() <= TOL
    assert (a[1, 5:] - b[1, 5:]).abs().max().item() <= TOL
    assert torch.isfinite(b).all()


@torch.no_grad()
def test_fine_non_causal_sdpa_matches_eager():
    eager, sdpa = pair(small(BarkFineModel, "fine"))
    ids = torch.randint(0, 1024, (2, 64, 8))
    for codebook in (2, 7):
        a = eager(codebook, ids).logits
        b = sdpa(codebook, ids).logits
        assert (a - b).abs().max().item() <= TOL


@torch.no_grad()
def test_stock_generate_gives_identical_tokens_with_sdpa():
    """The whole BarkModel.generate path (cache, coarse windows, fine loop) under SDPA."""
    model = bark_model("tiny")
    inputs = text_inputs(1, 12)
    kw = dict(semantic_max_new_tokens=10, do_sample=False, return_output_lengths=True)
    sem = dict(semantic_generation_config=_sem_cfg(model), max_new_tokens=16)
    sem_a = model.semantic.generate(**inputs, **sem)
    audio_a, _ = model.generate(**inputs, **kw)
    enable_sdpa(model)
    assert attention_kind(model) == "sdpa"
    sem_b = model.semantic.generate(**inputs, **sem)
    audio_b, _ = model.generate(**inputs, **kw)
    assert torch.equal(sem_a, sem_b)
    assert audio_a.shape == audio_b.shape and torch.allclose(audio_a, audio_b, atol=1e-4)
    disable_sdpa(model)
    assert attention_kind(model) == "eager"


def _sem_cfg(model):
    from transformers.models.bark.generation_configuration_bark import BarkSemanticGenerationConfig

    return BarkSemanticGenerationConfig(**model.generation_config.semantic_config)


def test_enable_sdpa_refuses_a_model_without_bark_attention():
    with pytest.raises(ValueError, match="no Bark self-attention"):
        enable_sdpa(torch.nn.Linear(2, 2))


def _grads(model, ids):
    model.zero_grad(set_to_none=True)
    logits = model(ids, use_cache=False).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1) % 10_048)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_activation_checkpointing_gives_the_same_gradients_sdpa_and_eager():
    base = small(BarkSemanticModel, "semantic", dropout=0.1).train()
    ids = torch.randint(0, 10_000, (2, 48))
    torch.manual_seed(3)
    ref_loss, ref = _grads(base, ids)
    for use_sdpa in (False, True):
        ck = copy.deepcopy(base)
        if use_sdpa:
            enable_sdpa(ck)
        assert enable_activation_checkpointing(ck) == 2
        assert all(isinstance(b, CheckpointedBarkBlock) for b in ck.layers)
        torch.manual_seed(3)  # same dropout masks: checkpoint replays the RNG state
        loss, got = _grads(ck, ids)
        assert set(got) == set(ref)
        # dropout masks differ between eager's softmax-dropout and SDPA's fused dropout: compare only eager
        if not use_sdpa:
            assert torch.allclose(loss, ref_loss, atol=1e-6)
            for n in ref:
                assert torch.allclose(got[n], ref[n], atol=1e-5, rtol=1e-4), n


def test_checkpointing_gradients_match_without_dropout_under_sdpa_and_lora():
    peft = pytest.importorskip("peft")
    base = small(BarkSemanticModel, "semantic").train()
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["att_proj", "out_proj", "in_proj"], init_lora_weights=False)
    plain = peft.get_peft_model(copy.deepcopy(base), cfg)
    ck = copy.deepcopy(plain)
    enable_sdpa(plain)
    enable_sdpa(ck)
    enable_activation_checkpointing(ck)
    ids = torch.randint(0, 10_000, (2, 32))
    loss_a, ga = _grads(plain, ids)
    loss_b, gb = _grads(ck, ids)
    assert ga and set(ga) == set(gb) and all("lora_" in n for n in ga)  # frozen weights get no gradient
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    for n in ga:
        assert torch.allclose(ga[n], gb[n], atol=1e-5, rtol=1e-4), n


def test_checkpointed_model_still_generates_with_cache_in_eval():
    model = small(BarkCoarseModel, "coarse")
    ref = copy.deepcopy(model)
    enable_activation_checkpointing(model)
    ids = torch.randint(0, 12_000, (1, 10))
    with torch.no_grad():  # GenerationMixin's loop (BarkCoarseModel.generate wants whole-pipeline configs)
        a = GenerationMixin.generate(model, ids, max_new_tokens=8, do_sample=False)
        b = GenerationMixin.generate(ref, ids, max_new_tokens=8, do_sample=False)
    assert torch.equal(a, b)


def test_bf16_autocast_on_cpu_runs_sdpa_in_bf16_and_stays_close():
    model = small(BarkSemanticModel, "semantic")
    enable_sdpa(model)
    ids = torch.randint(0, 10_000, (2, 24))
    with torch.no_grad():
        ref = model(ids, use_cache=False).logits
        with autocast("cpu", "bf16"):
            low = model(ids, use_cache=False).logits
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max().item() < 0.1 * ref.abs().max().item()


def test_precision_resolution_and_scaler():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int3", "cpu")
    scaler = make_grad_scaler("bf16", "cpu")
    loss = torch.tensor(2.0)
    assert scaler.scale(loss) is loss  # bf16 needs no loss scaling


def test_sdpa_class_swap_keeps_state_dict_keys():
    model = small(BarkSemanticModel, "semantic")
    keys = set(model.state_dict())
    enable_sdpa(model)
    assert set(model.state_dict()) == keys
    assert isinstance(model.layers[0].attn, BarkSdpaAttention)
