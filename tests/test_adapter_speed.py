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
                          fine_temperature=temperature, semantic_max_new_tokens=16)
    res = G.generate(G.BarkStages.from_bark(bark), load_text_tokenizer("tiny"),
                     [G.Request(TEXT, None, 3)], sampling, fast=fast)
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


def test_generate_job_names_its_phases_and_leaves_loading_when_the_model_is_ready(ws, adapter_pair):
    """The job row reads "loading model", then "merging adapter <name> x<scale>", then
    "generating" before the first batch starts (not "loading model" until the first batch ends)."""
    from studio import jobs
    from workers.handlers.generate import generate_job

    seen: list[tuple[str, str]] = []

    class Watched(jobs.JobContext):
        def progress(self, *a, **kw):
            super().progress(*a, **kw)
            row = jobs.get_job(self.db, self.job_id)
            if not seen or seen[-1] != (row["status"], row["message"]):
                seen.append((row["status"], row["message"]))

    params = {"text": TEXT, "model": "tiny", "seed": 1, "semantic_max_new_tokens": 16, "engine": "fast",
              "adapters": [{"name": "my-voice", "path": adapter_pair[0], "scale": 0.7}]}
    job_id = jobs.create_job(ws.db, "generate", params)
    token = jobs.claim(ws.db, job_id, "test:1")
    out = generate_job(Watched(db=ws.db, job_id=job_id, run_token=token, params=params, workspace=ws))
    assert len(out["files"]) == 1
    messages = [m for _, m in seen]
    assert messages == ["loading model tiny", "merging adapter my-voice x0.7", "generating 1 output",
                        "generating: generated 1 of 1"], messages


def test_bench_table_has_the_adapter_ratio_row():
    from bench import run_all

    result = {"adapter": {"seconds_each": 4.0, "base_wall_s": 10.0, "merged_wall_s": 10.5,
                          "peft_wrapped_wall_s": 30.0}}
    rows = [r for r in run_all.table(result) if "adapter" in r["figure"]]
    assert rows[0]["figure"].startswith("generation with an adapter / without")
    assert abs(rows[0]["ratio"] - 10 / 10.5) < 1e-9 and rows[0]["met"] is True and rows[0]["target"] == ">= 0.9x"
    assert rows[1]["ratio"] == 10 / 30 and rows[1]["met"] is None
