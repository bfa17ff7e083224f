"""Speed and memory switches for Bark's transformer stages.

transformers' Bark ships only `eager` and `flash_attention_2` attention and refuses gradient
checkpointing. This module adds, without touching weights or state-dict keys:

- `enable_sdpa(model)`: every `BarkSelfAttention` runs `F.scaled_dot_product_attention`
  (flash/memory-efficient kernels on CPU and GPU), causal and non-causal, with the KV cache kept
  exactly as eager keeps it. `disable_sdpa` puts eager back.
- `enable_activation_checkpointing(model)`: each `BarkBlock` recomputes its activations in the
  backward pass (torch.utils.checkpoint, non-reentrant) instead of storing them.
- `autocast(device, precision)` and `make_grad_scaler(...)`: bf16 autocast on CPU (AVX-512 bf16 /
  AMX) and CUDA, fp16 with loss scaling on GPUs without bf16.

All switches work on a `BarkModel`, one stage, or a PEFT-wrapped stage: they swap the class of
the attention/block modules in place (LoRA layers inside `att_proj`/`out_proj` keep working).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from transformers.models.bark.modeling_bark import BarkBlock, BarkSelfAttention

from models.errors import ModelInputError
from models.names import PRECISIONS

ATTENTIONS = ("eager", "sdpa")


class BarkSdpaAttention(BarkSelfAttention):
    """BarkSelfAttention computed by `scaled_dot_product_attention` (same weights, same cache)."""

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        cache=None,
        use_cache=False,
        output_attentions=False,
        **kwargs,
    ):
        if output_attentions:  # SDPA never materialises the weights; eager does
            return BarkSelfAttention.forward(
                self, hidden_states, attention_mask, cache, use_cache, output_attentions, **kwargs
            )
        b, t, _ = hidden_states.shape
        # (b, t, 3h) -> 3 x (b, t, h) -> (b, heads, t, head_dim)
        query, key, value = self.att_proj(hidden_states).split(self.embed_dim, dim=2)
        query = query.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        key = key.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        value = value.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx, kwargs=kwargs)

        out_dtype = query.dtype
        if cpu_attention_upcast(query) and not self.training:  # in training it measured no faster
            query, key, value = query.float(), key.float(), value.float()
        mask, is_causal = self._sdpa_mask(attention_mask, t, key.shape[-2], query.dtype)
        with torch.autocast("cpu", enabled=False) if query.dtype != out_dtype else contextlib.nullcontext():
            out = F.scaled_dot_product_attention(
                query,
                key,
                value,
                attn_mask=mask,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=is_causal,
            ).to(out_dtype)
        # (b, heads, t, head_dim) -> (b, t, h)
        out = out.transpose(1, 2).reshape(b, t, self.embed_dim)
        out = self.resid_dropout(self.out_proj(out))
        return out, None

    def _sdpa_mask(self, attention_mask, q_len: int, kv_len: int, dtype):
        """The mask SDPA needs to match eager: causal is bottom-right aligned (queries are the last
        q_len of kv_len positions); a padding mask arrives in eager's additive float form."""
        if attention_mask is not None and attention_mask.dtype != torch.bool:
            # clamp before the cast: fp32's min rounds to -inf in bf16 and fully masked rows would NaN
            attention_mask = attention_mask.clamp(min=torch.finfo(dtype).min).to(dtype)
        if not self.is_causal:
            return attention_mask, False
        if attention_mask is None:
            if q_len == kv_len:
                return None, True
            if q_len == 1:  # one new token sees the whole cache
                return None, False
        causal = self.bias[:, :, kv_len - q_len : kv_len, :kv_len]  # (1, 1, q, kv) bool, True = attend
        if attention_mask is None:
            return causal, False
        if attention_mask.dtype == torch.bool:
            return attention_mask & causal, False
        return attention_mask.masked_fill(~causal, torch.finfo(dtype).min), False


def cpu_attention_upcast(query: torch.Tensor) -> bool:
    """True when inference attention should run in fp32 although the weights are bf16: torch's CPU
    SDPA kernels are slower in bf16 than in fp32 on AVX-512 CPUs (a batch-8 bark-small decode step
    measured 54 ms with a bf16 cache, 36 ms with an fp32 one), while the matmuls gain from bf16."""
    return query.device.type == "cpu" and query.dtype == torch.bfloat16


def _swap(model: torch.nn.Module, old: type, new: type) -> int:
    n = 0
    for module in model.modules():
        if type(module) is old:
            module.__class__ = new
            n += 1
    return n


def enable_sdpa(model: torch.nn.Module) -> int:
    """Route every Bark self-attention in `model` through SDPA. Returns how many were switched.

    Raises ValueError when `model` holds no Bark attention (a wrong object is a bug, not a no-op)."""
    n = _swap(model, BarkSelfAttention, BarkSdpaAttention)
    if n == 0 and not any(isinstance(m, BarkSdpaAttention) for m in model.modules()):
        raise ValueError(f"enable_sdpa: {type(model).__name__} contains no Bark self-attention layers")
    return n


def disable_sdpa(model: torch.nn.Module) -> int:
    """Put eager attention back (e.g. to read attention weights)."""
    return _swap(model, BarkSdpaAttention, BarkSelfAttention)


def set_attention(model: torch.nn.Module, attention: str) -> None:
    """`attention="sdpa"` or `"eager"`, as the training and generation options spell it."""
    if attention == "sdpa":
        enable_sdpa(model)
    elif attention == "eager":
        disable_sdpa(model)
    else:
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")


def attention_kind(model: torch.nn.Module) -> str:
    """'sdpa', 'eager' or 'mixed' for the Bark attention layers of `model`."""
    kinds = {
        "sdpa" if isinstance(m, BarkSdpaAttention) else "eager"
        for m in model.modules()
        if isinstance(m, BarkSelfAttention)
    }
    return kinds.pop() if len(kinds) == 1 else "mixed"


# --- activation checkpointing -------------------------------------------------------------


class CheckpointedBarkBlock(BarkBlock):
    """A BarkBlock that keeps only its input in training and recomputes the rest in backward.

    Only when gradients flow and no KV cache is passed (the replay would update the cache twice);
    generation and eval run the plain block."""

    def forward(self, hidden_states, cache=None, attention_mask=None, use_cache=False, output_attentions=False, **kw):
        if self.training and torch.is_grad_enabled() and cache is None and not output_attentions:
            return checkpoint(
                BarkBlock.forward,
                self,
                hidden_states,
                None,
                attention_mask,
                False,
                False,
                use_reentrant=False,  # works with frozen inputs (LoRA) and keyword args; RNG preserved
            )
        return BarkBlock.forward(self, hidden_states, cache, attention_mask, use_cache, output_attentions, **kw)


def enable_activation_checkpointing(model: torch.nn.Module) -> int:
    """Checkpoint every Bark transformer block in `model`; returns how many blocks."""
    n = _swap(model, BarkBlock, CheckpointedBarkBlock)
    if n == 0 and not any(isinstance(m, CheckpointedBarkBlock) for m in model.modules()):
        raise ValueError(f"enable_activation_checkpointing: {type(model).__name__} contains no Bark blocks")
    # the causal stages then build no DynamicCache while training (BarkCausalModel.forward reads this)
    for m in model.modules():
        if hasattr(m, "layers") and hasattr(m, "gradient_checkpointing"):
            m.gradient_checkpointing = True
    return n


def disable_activation_checkpointing(model: torch.nn.Module) -> int:
    for m in model.modules():
        if hasattr(m, "layers") and hasattr(m, "gradient_checkpointing"):
            m.gradient_checkpointing = False
    return _swap(model, CheckpointedBarkBlock, BarkBlock)


# --- mixed precision ----------------------------------------------------------------------


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 matmuls (AVX-512 bf16 or AMX): there bf16 autocast pays."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) -> the GPU when torch sees one, else the CPU. A job's process sees only its
    worker's GPU (workers.gpu_lock.pin_job_gpu), so "cuda" is that card. An explicit CUDA device
    is checked: asking for one that is not there is an error, not a silent run on the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise ModelInputError(f"device {device!r}: not a torch device (cpu, cuda, cuda:1, ...)") from exc
    if chosen.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ModelInputError(f"device {device!r}: torch sees no CUDA GPU on this machine")
        if chosen.index is not None and chosen.index >= n:
            raise ModelInputError(f"device {device!r}: this process sees {n} GPU(s) (cuda:0..cuda:{n - 1}); "
                                  f"a worker's job sees only the worker's own card, as cuda:0")
    return chosen


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """Turn 'auto' into the fastest safe choice for `device`; check explicit ones are possible.

    GPU: bf16 where supported (Ampere and newer), else fp16 (with a GradScaler). CPU: bf16 where the
    CPU has bf16 instructions, else fp32. fp16 on CPU is refused (no loss-scaling support there)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    kind = torch.device(device).type
    if precision == "auto":
        if kind == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_supports_bf16() else "fp32"
    if precision == "fp16" and kind != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA GPU; use 'bf16' or 'fp32' on CPU")
    return precision


def autocast(device: str | torch.device, precision: str):
    """Context manager: autocast for `precision` on `device` ('fp32' is a no-op).

    Weights stay fp32 (the optimizer updates fp32 master weights); matmuls run in bf16/fp16."""
    kind = torch.device(device).type
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=kind, dtype=dtype)


@dataclass
class NoScaler:
    """Stands in for GradScaler when no loss scaling is needed (fp32, bf16): same call shape."""

    def scale(self, loss):
        return loss

    def unscale_(self, optimizer):
        return None

    def step(self, optimizer):
        optimizer.step()

    def update(self):
        return None

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        return None


def make_grad_scaler(precision: str, device: str | torch.device):
    """GradScaler for fp16 on CUDA (dynamic loss scaling keeps small gradients from flushing to
    zero), `NoScaler` otherwise. Use: scaler.scale(loss).backward(); scaler.unscale_(opt) before
    clipping; scaler.step(opt); scaler.update()."""
    precision = resolve_precision(precision, device)
    if precision == "fp16":
        return torch.amp.GradScaler("cuda")
    return NoScaler()


def apply_options(model: torch.nn.Module, attention: str = "sdpa", checkpointing: bool = False) -> torch.nn.Module:
    """One call for the model core: set the attention path and checkpointing on `model` in place."""
    set_attention(model, attention)
    if checkpointing:
        enable_activation_checkpointing(model)
    else:
        disable_activation_checkpointing(model)
    return model


def maybe_compile(module: torch.nn.Module, enabled: bool, device: str | torch.device):
    """torch.compile on CUDA when asked (on CPU with 2 cores compile time outweighs the gain)."""
    if enabled and torch.device(device).type == "cuda":
        return torch.compile(module, dynamic=True)
    return module
