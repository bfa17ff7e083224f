"""Generation with an adapter runs on merged weights: no PEFT layer in the forward path (the fast
engine then runs at the base model's speed), the same codes as the PEFT-wrapped path, scale 0 the
base exactly, and one load + merge per (model, adapters, scales, precision, engine) in a job process."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import adapters as A
from models import generation as G
from models.presets import load_bark, load_text_tokenizer
from workers.handlers.generate import InferenceModels, prepare_model

TEXT = "Hello there, this is a test."


@pytest.fixture(scope="module")
def adapter_pair(tmp_path_factory):
    from models.lora import LoraSettings, add_lora, trainable_parameters

    folder = tmp_path_factory.mktemp("adapters")
    out = []
    for seed in (1, 2):
        bark = load_bark("tiny")
        sig = A.base_signature(bark, ("semantic", "coarse", "fine"))
        add_lora(bark, ("semantic", "coarse", "fine"), LoraSettings(r=4, alpha=8, dropout=0.0, targets="attention+mlp"))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # a non-zero update without training (a fresh LoRA B is zero)
            for p in trainable_parameters(bark).values():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        path = folder / f"a{seed}"
        A.save_adapter(bark, path, method="lora", stages=("semantic", "coarse", "fine"), base_model="tiny",
                       base_signature=sig)
        out.append(str(path))
    return out


def _codes(bark, temperature: float, fast: bool = True):
    sampling = G.Sampling(semantic_temperature=temperature, coarse_temperature=temperature,
                          fine_temperature=temperature, semantic_max_new_tokens=24)
    res = G.generate(G.BarkStages.from_bark(bark), load_text_tokenizer("tiny"),
                     [G.Request(TEXT, None, 3), G.Request(TEXT, None, 4)], sampling, fast=fast)
    return [np.concatenate(r.codes, axis=1) for r in res]


def _peft_wrapped(specs, precision="fp32", engine="fast"):
    """Today's path before the merge: PEFT LoRA layers applied, then the model prepared."""
    bark = A.apply_adapters(load_bark("tiny"), specs, base_model="tiny")
    prepare_model(bark, engine, precision, "cpu")
    return bark


def _lora_layers(bark) -> list[str]:
    from peft.tuners.lora import LoraLayer

    return [n for n, m in bark.named_modules() if isinstance(m, LoraLayer)]


@pytest.mark.parametrize("temperature", [0.0, 0.7], ids=["greedy", "sampled"])
def test_merged_copy_generates_what_the_peft_wrapped_model_does(adapter_pair, temperature):
    a, b = adapter_pair
    for specs in ([(a, 1.0)], [(a, 0.5), (b, 1.3)]):  # one adapter at a scale, and a weighted mix
        wrapped = _peft_wrapped(specs)
        assert _lora_layers(wrapped)
        merged, _ = InferenceModels("cpu").get("tiny", specs, "fp32", "fast")
        assert not _lora_layers(merged)  # nothing of PEFT left in the forward path
        assert not [n for n, _ in merged.named_parameters() if "lora_" in n]
        for got, want in zip(_codes(merged, temperature), _codes(wrapped, temperature)):
            assert np.array_equal(got, want)
    base = _codes(load_bark("tiny"), temperature)
    assert not all(np.array_equal(x, y) for x, y in zip(_codes(merged, temperature), base))  # the mix acts


def test_scale_zero_is_the_base_exactly(adapter_pair):
    base = load_bark("tiny")
    prepare_model(base, "fast", "bf16", "cpu")
    merged, _ = InferenceModels("cpu").get("tiny", [(adapter_pair[0], 0.0)], "bf16", "fast")
    want = dict(base.named_parameters())
    got = dict(merged.named_parameters())
    assert got.keys() == want.keys()
    assert all(torch.equal(got[n], want[n]) for n in want)
    assert all(np.array_equal(x, y) for x, y in zip(_codes(merged, 0.7), _codes(base, 0.7)))


def test_one_load_and_merge_per_adapter_set_scales_and_precision(adapter_pair):
    a, b = adapter_pair
    models = InferenceModels("cpu")
    phases: list[str] = []
    first, _ = models.get("tiny", [(a, 1.0)], "bf16", "fast", phases.append)
    assert phases == ["loading model", "merging adapter"]
    assert models.get("tiny", [(a, 1.0)], "bf16", "fast", phases.append)[0] is first  # a sweep's next take
    assert phases == ["loading model", "merging adapter"]
    for specs, precision in (([(a, 0.5)], "bf16"), ([(a, 0.5)], "fp32"), ([(a, 0.5), (b, 1.0)], "fp32")):
        phases.clear()
        again, _ = models.get("tiny", specs, precision, "fast", phases.append)
        assert again is not first and phases == ["loading model", "merging adapter"]
        first = again
    phases.clear()
    models.get("tiny", [], "fp32", "fast", phases.append)
    assert phases == ["loading model"]  # no adapter: nothing to merge
