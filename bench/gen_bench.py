"""Generation: semantic tokens/s (batch 1 and 8), real-time factor, sweep throughput.

Stock = transformers' own `BarkModel.generate` / `BarkSemanticModel.generate` (HF generate with
its DynamicCache, eager attention, fp32). Ours = models.fast_generation on a copy of the same
weights prepared with `prepare_for_inference` (SDPA; bf16 weights where the device has bf16).
Lengths are pinned (min = max new tokens) so random weights cannot stop early at EOS.
"""

from __future__ import annotations

import copy

import torch
from transformers.models.bark.generation_configuration_bark import BarkSemanticGenerationConfig

from bench.measure import Timer, release_memory
from bench.shapes import bark_model, text_inputs
from models import constants as C
from models import fast_generation as fg
from models.attention import resolve_precision
from models.layouts import semantic_prefix


def _ours_prefix(batch: int, n_text: int):
    inputs = text_inputs(batch, n_text)
    ids = [inputs["input_ids"][i, :n_text].tolist() for i in range(batch)]
    pre = [semantic_prefix(t) for t in ids]
    return ids, torch.stack([p[0] for p in pre]), torch.stack([p[1] for p in pre])


def semantic_speed(stock, ours, batch: int, n_tokens: int, device: str) -> dict:
    """Semantic tokens/s of both at `batch`, prefill included, greedy, fixed length."""
    inputs = {k: v.to(device) for k, v in text_inputs(batch, 20).items()}
    cfg = BarkSemanticGenerationConfig(**stock.generation_config.semantic_config)
    _, text, hist = _ours_prefix(batch, 20)
    with torch.no_grad():
        stock.semantic.generate(**inputs, semantic_generation_config=cfg, max_new_tokens=4, min_new_tokens=4)  # warm-up
        with Timer(device) as ts:
            out = stock.semantic.generate(**inputs, semantic_generation_config=cfg, max_new_tokens=n_tokens,
                                          min_new_tokens=n_tokens)
    assert out.shape == (batch, n_tokens)
    fg.semantic_tokens(ours.semantic, text, hist, max_new_tokens=4, min_new_tokens=4, temperature=0, min_eos_p=None)
    with Timer(device) as to:
        got = fg.semantic_tokens(ours.semantic, text, hist, max_new_tokens=n_tokens, min_new_tokens=n_tokens,
                                 temperature=0, min_eos_p=None)
    assert all(g.numel() == n_tokens for g in got)
    return {"batch": batch, "tokens": n_tokens,
            "stock_tokens_per_s": batch * n_tokens / ts.seconds, "ours_tokens_per_s": batch * n_tokens / to.seconds}


def real_time_factor(stock, ours, seconds: float, device: str, run_stock: bool = True) -> dict:
    """Wall seconds per second of audio for a whole text -> audio generation of `seconds` audio."""
    n_sem = int(round(seconds * C.SEMANTIC_RATE_HZ))
    inputs = {k: v.to(device) for k, v in text_inputs(1, 20).items()}
    ids, _, _ = _ours_prefix(1, 20)
    settings = fg.GenerationSettings(semantic_temperature=0, coarse_temperature=0, fine_temperature=0, min_eos_p=None,
                                     max_semantic_tokens=n_sem, min_semantic_tokens=n_sem, batch_size=1)
    with Timer(device) as to:
        out = fg.generate_batch(ours, ids, settings=settings)[0]
    audio_s = out.audio.size / C.SAMPLE_RATE
    res = {"audio_seconds": audio_s, "ours_wall_s": to.seconds, "ours_rtf": to.seconds / audio_s}
    if run_stock:
        with torch.no_grad(), Timer(device) as ts:
            audio = stock.generate(**inputs, semantic_max_new_tokens=n_sem, semantic_min_new_tokens=n_sem)
        stock_audio_s = audio.shape[-1] / C.SAMPLE_RATE
        res.update({"stock_wall_s": ts.seconds, "stock_audio_seconds": stock_audio_s,
                    "stock_rtf": ts.seconds / stock_audio_s})
    return res


class StageClock:
    """Wall seconds per stage of fast_generation's pipeline while active (wraps the module's stage
    functions, which _generate_chunk looks up by name): shows where a take's time goes."""

    STAGES = ("semantic_tokens", "coarse_tokens", "fine_codes", "decode")

    def __init__(self, device: str):
        self.device = device
        self.seconds = dict.fromkeys(self.STAGES, 0.0)

    def __enter__(self):
        self._real = {name: getattr(fg, name) for name in self.STAGES}
        for name, fn in self._real.items():
            setattr(fg, name, self._timed(name, fn))
        return self

    def _timed(self, name, fn):
        def run(*a, **kw):
            with Timer(self.device) as t:
                out = fn(*a, **kw)
            self.seconds[name] += t.seconds
            return out

        return run

    def __exit__(self, *exc):
        for name, fn in self._real.items():
            setattr(fg, name, fn)
        return False


def sweep(ours, variants: int, seconds: float, device: str, sequential_sample: int = 2, stock=None,
          stock_sample: int = 1) -> dict:
    """Outputs/minute for `variants` takes of one prompt (different seeds, suno's temperatures):
    all in one batch, against ours one at a time (the rate of `sequential_sample` single runs) and,
    when `stock` is given, against `BarkModel.generate` one take at a time (`stock_sample` runs).
    Stage seconds show the ceiling of batching: the fine stage's 1024-frame windows cost the same
    per take at any batch size on a CPU, so its share of a take bounds the speed-up."""
    n_sem = max(2, int(round(seconds * C.SEMANTIC_RATE_HZ)))
    ids, _, _ = _ours_prefix(1, 20)
    settings = fg.GenerationSettings(min_eos_p=None, max_semantic_tokens=n_sem, min_semantic_tokens=n_sem,
                                     batch_size=variants)
    seeds = list(range(variants))
    fg.generate_batch(ours, ids, seeds=[0], settings=fg.GenerationSettings(min_eos_p=None, max_semantic_tokens=2))  # warm-up
    with StageClock(device) as clock_b, Timer(device) as tb:
        batched = fg.generate_batch(ours, ids * variants, seeds=seeds, settings=settings)
    k = min(sequential_sample, variants)
    with StageClock(device) as clock_1, Timer(device) as t1:
        single = [fg.generate_batch(ours, ids, seeds=[s], settings=settings)[0] for s in seeds[:k]]
    same = all(torch.equal(a.codes, b.codes) for a, b in zip(batched[:k], single))
    res = {"variants": variants, "seconds_each": seconds, "batched_wall_s": tb.seconds,
           "batched_outputs_per_min": 60 * variants / tb.seconds, "sequential_measured": k,
           "sequential_outputs_per_min": 60 * k / t1.seconds, "batched_equals_single": same,
           "batched_stage_s_per_take": {n: v / variants for n, v in clock_b.seconds.items()},
           "sequential_stage_s_per_take": {n: v / k for n, v in clock_1.seconds.items()}}
    if stock is not None:
        inputs = {kk: v.to(device) for kk, v in text_inputs(1, 20).items()}
        with torch.no_grad(), Timer(device) as ts:
            for s in seeds[:stock_sample]:
                torch.manual_seed(s)
                stock.generate(**inputs, semantic_max_new_tokens=n_sem, semantic_min_new_tokens=n_sem, do_sample=True,
                               semantic_temperature=C.DEFAULT_SEMANTIC_TEMPERATURE,
                               coarse_temperature=C.DEFAULT_COARSE_TEMPERATURE,
                               fine_temperature=C.DEFAULT_FINE_TEMPERATURE)
        res.update({"stock_measured": stock_sample, "stock_outputs_per_min": 60 * stock_sample / ts.seconds})
    return res


def run(shape: str = "bark-small", device: str = "cpu", precision: str = "auto", n_tokens_b1: int = 64,
        n_tokens_b8: int = 32, rtf_seconds: float = 10.0, stock_rtf: bool = True, sweep_variants: int = 8,
        sweep_seconds: float = 4.0) -> dict:
    precision = resolve_precision(precision, device)
    stock = bark_model(shape, full_codec=shape != "tiny").to(device)
    ours = fg.prepare_for_inference(copy.deepcopy(stock), precision, "sdpa", device)
    res = {"shape": shape, "precision": precision,
           "semantic_b1": semantic_speed(stock, ours, 1, n_tokens_b1, device),
           "semantic_b8": semantic_speed(stock, ours, 8, n_tokens_b8, device),
           "rtf": real_time_factor(stock, ours, rtf_seconds, device, stock_rtf),
           "sweep": sweep(ours, sweep_variants, sweep_seconds, device, stock=stock if stock_rtf else None)}
    del stock, ours
    release_memory()
    return res


def _random_adapter(stock, folder, seed: int = 1):
    """A LoRA adapter on every stage (rank 16 on attention and MLP: the larger preset) with random
    non-zero weights, saved the way training saves one."""
    from models import adapters as A
    from models.lora import STAGES, LoraSettings, add_lora, trainable_parameters

    bark = copy.deepcopy(stock)
    sig = A.base_signature(bark, STAGES)
    add_lora(bark, STAGES, LoraSettings(r=16, alpha=32, dropout=0.0, targets="attention+mlp"))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in trainable_parameters(bark).values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    A.save_adapter(bark, folder, method="lora", stages=STAGES, base_model="bench", base_signature=sig)
    del bark


def adapter_speed(shape: str = "bark-small", device: str = "cpu", precision: str = "auto", seconds: float = 4.0,
                  repeats: int = 2) -> dict:
    """Wall seconds of one whole take (same text, seed and length) with an adapter at scale 0.7
    against the base model, both on the fast engine as the generate job readies them: adapters
    merged into the fp32 weights, then cast (models.adapters.merge_adapters). The PEFT-wrapped
    model (LoRA layers left in the forward path, what generation did before) is measured too.
    Each figure is the best of `repeats` runs, interleaved, so load drifts hit all alike."""
    import tempfile
    from pathlib import Path

    from models import adapters as A

    precision = resolve_precision(precision, device)
    stock = bark_model(shape, full_codec=shape != "tiny")
    n_sem = max(2, int(round(seconds * C.SEMANTIC_RATE_HZ)))
    ids, _, _ = _ours_prefix(1, 20)
    settings = fg.GenerationSettings(min_eos_p=None, max_semantic_tokens=n_sem, min_semantic_tokens=n_sem,
                                     batch_size=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "adapter"
        _random_adapter(stock, folder)
        specs = [(folder, 0.7)]
        from models.lora import freeze

        models = {"base": copy.deepcopy(stock)}
        freeze(models["base"])  # as frozen as the adapted copies: only the adapter differs
        with Timer(device) as tm:
            models["merged"] = A.merge_adapters(copy.deepcopy(stock), specs)
        models["peft"] = A.apply_adapters(copy.deepcopy(stock), specs)
    del stock
    for m in models.values():
        fg.prepare_for_inference(m, precision, "sdpa", device)
    best = dict.fromkeys(models, float("inf"))
    for m in models.values():  # warm-up
        fg.generate_batch(m, ids, seeds=[0], settings=fg.GenerationSettings(min_eos_p=None, max_semantic_tokens=2))
    for _ in range(repeats):
        for name, m in models.items():
            with Timer(device) as t:
                fg.generate_batch(m, ids, seeds=[0], settings=settings)
            best[name] = min(best[name], t.seconds)
    del models
    release_memory()
    return {"shape": shape, "precision": precision, "seconds_each": seconds, "semantic_tokens": n_sem,
            "base_wall_s": best["base"], "merged_wall_s": best["merged"], "peft_wrapped_wall_s": best["peft"],
            "merge_s": tm.seconds, "repeats": repeats}
