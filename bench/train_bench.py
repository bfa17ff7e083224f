"""Training throughput and peak memory: our LoRA / full fine-tune against the stock loop.

Stock = what a user writes from the public Bark fine-tuning notebooks with transformers + PEFT:
the 513-position concatenated layout [text 256 | history 256 | infer | semantic...], eager
attention, fp32, AdamW over every trainable parameter.
Ours = models.layouts (the 257-position layout generate really uses), models.lora's LoRA config,
SDPA attention and bf16 autocast from models.attention.

Both predict the same targets (semantic tokens + EOS), so "trained tokens/s" compares the same
work; positions/s is reported beside it (our layout needs 256 fewer positions per example).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from bench.measure import PeakMemory, Timer, release_memory
from bench.shapes import semantic_stage
from models import constants as C
from models.attention import autocast, enable_activation_checkpointing, resolve_precision, set_attention
from models.layouts import build_examples, collate, stage_forward, stage_loss, TokenItem
from models.lora import LoraSettings, lora_config


def _clips(batch: int, n_semantic: int, seed: int = 0) -> list[TokenItem]:
    g = np.random.default_rng(seed)
    return [TokenItem(text_ids=g.integers(1_000, 30_000, 40).tolist(), semantic=g.integers(0, 10_000, n_semantic),
                      codes=np.zeros((8, 1), np.int64), key=f"bench{i}") for i in range(batch)]


def stock_batch(items: list[TokenItem]) -> tuple[torch.Tensor, torch.Tensor]:
    """Notebook layout: input [text(256) | history(256) | infer | targets[:-1]], targets = semantic + EOS."""
    rows, targets = [], []
    for it in items:
        text = torch.full((256,), C.TEXT_PAD_TOKEN, dtype=torch.long)
        text[: len(it.text_ids)] = torch.tensor(it.text_ids) + C.TEXT_ENCODING_OFFSET
        hist = torch.full((256,), C.SEMANTIC_PAD_TOKEN, dtype=torch.long)
        tgt = torch.cat([torch.as_tensor(it.semantic), torch.tensor([C.SEMANTIC_EOS_TOKEN])])
        rows.append(torch.cat([text, hist, torch.tensor([C.SEMANTIC_INFER_TOKEN]), tgt[:-1]]))
        targets.append(tgt)
    return torch.stack(rows), torch.stack(targets)


def _stock_step(model, opt, batch):
    ids, targets = batch
    logits = model(input_ids=ids, use_cache=False).logits  # (B, 512 + n, V)
    pred = logits[:, 512:]  # the infer position predicts the first target
    loss = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), targets.reshape(-1))
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return targets.numel(), ids.numel()


def _our_step(model, opt, batch, device, precision):
    with autocast(device, precision):
        logits = stage_forward("semantic", model, batch)
    loss, n = stage_loss("semantic", logits, batch)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return n, batch["text"].shape[0] * (256 + batch["input_ids"].shape[1])


def training_flops(config, positions: int, batch: int, lora: bool) -> float:
    """Model FLOPs of one training step of a causal Bark stage over `batch` x `positions`.
    Matmuls: forward 2 FLOPs per weight per position; backward 2 more for input gradients, and 2
    more for weight gradients only when the weights train (full fine-tune; LoRA's own are negligible).
    Causal attention: 2 T^2 d per layer forward (the kernels skip the masked half), 3x with backward."""
    d, layers, vocab = config.hidden_size, config.num_layers, config.output_vocab_size
    weights = layers * 12 * d * d + d * vocab  # qkv 3d^2 + out d^2 + mlp 8d^2 per layer, and lm_head
    matmul = 2 * weights * positions * batch * (2 if lora else 3)
    attention = 3 * layers * 2 * positions * positions * d * batch
    return float(matmul + attention)


def _peft(model):
    from peft import get_peft_model

    return get_peft_model(model, lora_config(LoraSettings()))


def run(shape: str = "bark-small", batch: int = 2, n_semantic: int = 255, steps: int = 2, device: str = "cpu",
        precision: str = "auto", configs: tuple[str, ...] = ("stock_full", "stock_lora", "ours_lora", "ours_full")) -> dict:
    precision = resolve_precision(precision, device)
    items = _clips(batch, n_semantic)
    stock = stock_batch(items)
    ours = collate("semantic", [ex for it in items for ex in build_examples("semantic", it)])
    base = semantic_stage(shape).to(device)
    results = {}
    for name in configs:
        release_memory()
        with PeakMemory(device) as pm:
            model = copy.deepcopy(base).train()
            if name.endswith("lora"):
                model = _peft(model)
            else:
                for p in model.parameters():
                    p.requires_grad_(True)
            params = [p for p in model.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=1e-5)  # state only for trained parameters
            if name.startswith("ours"):
                set_attention(model, "sdpa")
                if shape == "bark" and name == "ours_full":
                    enable_activation_checkpointing(model)
                step = lambda: _our_step(model, opt, {k: v.to(device) for k, v in ours.items()}, device, precision)  # noqa: E731
            else:
                step = lambda: _stock_step(model, opt, tuple(t.to(device) for t in stock))  # noqa: E731
            step()  # warm-up (allocator, oneDNN kernels); not timed
            trained = positions = 0
            with Timer(device) as t:
                for _ in range(steps):
                    n, p = step()
                    trained += n
                    positions += p
        results[name] = {
            "trained_tokens_per_s": trained / t.seconds,
            "positions_per_s": positions / t.seconds,
            "peak_bytes": pm.peak_bytes,
            "trainable_params": sum(p.numel() for p in params),
            "step_s": t.seconds / steps,
            "precision": precision if name.startswith("ours") else "fp32",
            "attention": "sdpa" if name.startswith("ours") else "eager",
            "positions_per_example": (256 + ours["input_ids"].shape[1]) if name.startswith("ours") else stock[0].shape[1],
        }
        r = results[name]
        r["model_flops_per_s"] = training_flops(base.config, r["positions_per_example"], batch,
                                                name.endswith("lora")) / r["step_s"]
        del model, opt, params, step
    release_memory()
    return {"shape": shape, "batch": batch, "semantic_tokens": n_semantic, "steps": steps, "configs": results}
