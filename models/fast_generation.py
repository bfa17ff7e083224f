"""Fast, batched Bark generation: text -> semantic -> coarse -> fine -> audio.

What it does that `BarkModel.generate` does not:
- a preallocated KV cache per causal stage (no torch.cat per step), attention through SDPA;
- many prompts and variants in one batch, each row with its own voice prompt, temperature-free
  per-row RNG (`seeds`): row i of a batch gives the same tokens as row i generated alone;
  rows that reach EOS leave the semantic batch (their cache rows are dropped);
- coarse windows continue from the previous window's cache while the window's prefix is
  unchanged (the first ~630 coarse tokens without a voice prompt); stock re-encodes ~890
  positions for every 60 new tokens;
- bf16 weights for inference where the device has bf16 (`prepare_for_inference`), and
  torch.compile of the decode step on CUDA when asked.

Greedy (temperature 0) in fp32 it reproduces `BarkModel.generate` token for token
(tests/test_perf_generation.py). Inputs are built with models.layouts' builders, the same ones
training examples use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models import constants as C
from models.attention import cpu_attention_upcast, enable_sdpa, maybe_compile, resolve_precision
from models.errors import ModelInputError
from models.rng import RowRandom, draw, row_randoms
from models.layouts import (
    MAX_SEMANTIC_HISTORY_FOR_COARSE,
    coarse_histories,
    coarse_target_length,
    coarse_window_prompt,
    fine_start_buffer,
    fine_windows,
    semantic_prefix,
)


def prepare_for_inference(bark, precision: str = "auto", attention: str = "sdpa", device=None):
    """Put `bark` (in place) in eval mode on `device`, with SDPA attention and, for bf16/fp16,
    weights cast to that dtype (decoding is memory-bound: half the bytes per token)."""
    device = torch.device(device or next(bark.parameters()).device)
    precision = resolve_precision(precision, device)
    bark.eval().to(device)
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        for stage in (bark.semantic, bark.coarse_acoustics, bark.fine_acoustics):
            stage.to(dtype)
    if attention == "sdpa":
        enable_sdpa(bark)
    return bark


# --- the causal decode core ------------------------------------------------------------------


class StaticKVCache:
    """Keys/values of every layer in two preallocated tensors: (layers, B, heads, max_len, head_dim)."""

    def __init__(self, stage, batch: int, max_len: int):
        cfg = stage.config
        p = stage.lm_head.weight
        shape = (cfg.num_layers, batch, cfg.num_heads, max_len, cfg.hidden_size // cfg.num_heads)
        # bf16 weights on CPU keep an fp32 cache: torch's CPU attention kernels read it faster
        dtype = torch.float32 if cpu_attention_upcast(p) else p.dtype
        self.k = torch.empty(shape, dtype=dtype, device=p.device)
        self.v = torch.empty(shape, dtype=dtype, device=p.device)
        self.length = 0

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only `rows`, in that order (finished sequences stop costing compute; a shared
        prefill is copied out to the rows that share it)."""
        self.k = self.k[:, rows]
        self.v = self.v[:, rows]


def causal_forward(stage, embeds: torch.Tensor, cache: StaticKVCache) -> torch.Tensor:
    """Run `embeds` (B, t, h) at positions cache.length.. through a Bark causal stage; returns the
    float logits of the last position (B, V). Same modules (LoRA layers included) as stage.forward."""
    b, t, _ = embeds.shape
    start = cache.length
    end = start + t
    if end > stage.config.block_size:
        raise ModelInputError(f"sequence of {end} positions exceeds the model's {stage.config.block_size}")
    pos = torch.arange(start, end, device=embeds.device)
    dtype = stage.lm_head.weight.dtype
    h = embeds.to(dtype) + stage.position_embeds_layer(pos)[None]
    for i, block in enumerate(stage.layers):
        attn = block.attn
        x = block.layernorm_1(h)
        # (b, t, 3h) -> 3 x (b, heads, t, head_dim)
        q, k, v = attn.att_proj(x).split(attn.embed_dim, dim=2)
        q = q.view(b, t, attn.num_heads, attn.head_dim).transpose(1, 2).to(cache.k.dtype)
        cache.k[i, :, :, start:end] = k.view(b, t, attn.num_heads, attn.head_dim).transpose(1, 2)
        cache.v[i, :, :, start:end] = v.view(b, t, attn.num_heads, attn.head_dim).transpose(1, 2)
        keys, values = cache.k[i, :, :, :end], cache.v[i, :, :, :end]
        if t == 1:
            o = F.scaled_dot_product_attention(q, keys, values)
        elif start == 0:
            o = F.scaled_dot_product_attention(q, keys, values, is_causal=True)
        else:  # a chunk after a cached prefix: bottom-right causal
            o = F.scaled_dot_product_attention(q, keys, values, attn_mask=attn.bias[0, 0, start:end, :end])
        h = h + attn.out_proj(o.to(dtype).transpose(1, 2).reshape(b, t, attn.embed_dim))  # (b, t, h)
        h = h + block.mlp(block.layernorm_2(h))
    cache.length = end
    return stage.lm_head(stage.layernorm_final(h[:, -1])).float()


def _decoder(stage, compile_step: bool):
    """causal_forward, compiled on CUDA when asked (single-token steps have static shapes)."""
    device = stage.lm_head.weight.device
    if not compile_step or device.type != "cuda":
        return causal_forward
    key = "_studio_compiled_forward"
    if key not in stage.__dict__:
        stage.__dict__[key] = maybe_compile(causal_forward, True, device)
    return stage.__dict__[key]


def sample(logits: torch.Tensor, temperature: float, generators: list[RowRandom] | None,
           active: list[bool] | None = None) -> torch.Tensor:
    """(B, V) float logits -> (B,) ids. temperature <= 0: argmax. Each row draws from its own
    random stream on the logits' device (models.rng), so a row's draw does not depend on the rest
    of the batch; rows marked inactive (past their own length, kept only to fill the batch) take
    the argmax and leave their stream alone."""
    if temperature is None or temperature <= 0:
        return logits.argmax(-1)
    probs = F.softmax(logits / temperature, dim=-1)
    if generators is None:
        return torch.multinomial(probs, 1)[:, 0]
    return torch.cat([
        draw(probs[i : i + 1], g)[:, 0] if active is None or active[i] else probs[i : i + 1].argmax(-1)
        for i, g in enumerate(generators)
    ])


def _generators(seeds, n: int) -> list[RowRandom] | None:
    """One random stream per row; each makes its generator on the device it draws on."""
    if seeds is None:
        return None
    if len(seeds) != n:
        raise ModelInputError(f"got {len(seeds)} seeds for {n} prompts")
    return row_randoms(seeds)


# --- stages ------------------------------------------------------------------------------------


@torch.no_grad()
def semantic_tokens(stage, text: torch.Tensor, history: torch.Tensor, *, max_new_tokens: int = C.SEMANTIC_MAX_NEW_TOKENS,
                    temperature: float = C.DEFAULT_SEMANTIC_TEMPERATURE, min_eos_p: float | None = C.DEFAULT_MIN_EOS_P,
                    min_new_tokens: int = 0, generators=None, compile_step: bool = False) -> list[torch.Tensor]:
    """text (B, 256) offset ids, history (B, 256) -> per row the semantic tokens before EOS.

    Same rules as BarkSemanticModel.generate: tokens 10001..10047 suppressed; EOS forced when its
    probability exceeds `min_eos_p`; at most `max_new_tokens`. `min_new_tokens` forbids EOS before
    that many tokens (benchmarks use it to fix the length)."""
    device = stage.lm_head.weight.device
    b = text.shape[0]
    max_new_tokens = min(max_new_tokens, stage.config.block_size - C.MAX_INPUT_SEMANTIC_LENGTH)
    emb = stage.input_embeds_layer
    text, history = text.to(device), history.to(device)
    # variants of one prompt (a sweep's takes) share their prefill: encode each distinct prompt once
    distinct, row_of = torch.unique(torch.cat([text, history], dim=1), dim=0, return_inverse=True)
    text, history = distinct[:, : text.shape[1]], distinct[:, text.shape[1] :]
    infer = torch.full((len(distinct), 1), C.SEMANTIC_INFER_TOKEN, dtype=torch.long, device=device)
    embeds = torch.cat([emb(text) + emb(history), emb(infer)], dim=1)  # (distinct, 257, h)
    cache = StaticKVCache(stage, len(distinct), C.MAX_INPUT_SEMANTIC_LENGTH + 1 + max_new_tokens)
    step = _decoder(stage, compile_step)
    logits = causal_forward(stage, embeds, cache)
    if not torch.equal(row_of, torch.arange(b, device=row_of.device)):  # unique() sorts: back to row order
        cache.keep(row_of)
        logits = logits[row_of]
    out = torch.full((b, max_new_tokens), C.SEMANTIC_PAD_TOKEN, dtype=torch.long)
    lengths = torch.full((b,), max_new_tokens, dtype=torch.long)
    alive = torch.arange(b)  # original row index of each live cache row
    gens = generators
    for n in range(max_new_tokens):
        logits[:, C.SEMANTIC_VOCAB_SIZE + 1 :] = -math.inf  # suppress 10001..10047
        if n < min_new_tokens:
            logits[:, C.SEMANTIC_EOS_TOKEN] = -math.inf
        elif min_eos_p:
            eos_p = F.softmax(logits, dim=-1)[:, C.SEMANTIC_EOS_TOKEN]
            force = eos_p > min_eos_p
            logits[force, : C.SEMANTIC_EOS_TOKEN] = -math.inf
            logits[force, C.SEMANTIC_EOS_TOKEN + 1 :] = -math.inf
        nxt = sample(logits, temperature, gens).cpu()
        done = nxt == C.SEMANTIC_EOS_TOKEN
        out[alive[~done], n] = nxt[~done]
        lengths[alive[done]] = n
        if done.any():
            keep = (~done).nonzero(as_tuple=True)[0]
            if keep.numel() == 0:
                break
            alive, nxt = alive[keep], nxt[keep]
            cache.keep(keep.to(device))
            gens = [gens[i] for i in keep.tolist()] if gens is not None else None
        if n + 1 == max_new_tokens:
            break
        logits = step(stage, emb(nxt.to(device)[:, None]), cache)
    return [out[i, : lengths[i]] for i in range(b)]


@torch.no_grad()
def coarse_tokens(stage, semantic: list[torch.Tensor], histories: list, *, temperature: float = C.DEFAULT_COARSE_TEMPERATURE,
                  generators=None, compile_step: bool = False) -> list[torch.Tensor]:
    """Per row: semantic tokens (S,) and a voice prompt (or None) -> coarse codes (2, T) in 0..1023.

    Rows whose histories have the same lengths are decoded together. Windows as
    BarkCoarseModel.generate makes them; a window continues the previous one's cache when its
    prompt is the previous prompt plus what was generated."""
    groups: dict[tuple[int, int], list[int]] = {}
    hist = [coarse_histories(h) for h in histories]
    for i, (xs, xc) in enumerate(hist):
        groups.setdefault((xs.numel(), xc.numel()), []).append(i)
    out: list[torch.Tensor | None] = [None] * len(semantic)
    for rows in groups.values():
        gens = [generators[i] for i in rows] if generators is not None else None
        codes = _coarse_group(stage, [semantic[i] for i in rows], [hist[i] for i in rows], temperature, gens, compile_step)
        for i, c in zip(rows, codes):
            out[i] = c
    return out


def _coarse_group(stage, semantic, hist, temperature, gens, compile_step):
    device = stage.lm_head.weight.device
    emb = stage.input_embeds_layer
    b = len(semantic)
    n_sem_hist = hist[0][0].numel()
    lengths = [coarse_target_length(s.numel()) for s in semantic]
    max_len = max(lengths)
    width = max(s.numel() for s in semantic)
    # [semantic history | semantic] per row, right-padded with the coarse pad (12048), as stock does
    sem_full = torch.full((b, n_sem_hist + width), C.COARSE_SEMANTIC_PAD_TOKEN, dtype=torch.long)
    for i, s in enumerate(semantic):
        sem_full[i, :n_sem_hist] = hist[i][0]
        sem_full[i, n_sem_hist : n_sem_hist + s.numel()] = s
    x_coarse = torch.stack([h[1] for h in hist]).long()  # (B, history)
    n_hist = x_coarse.shape[1]
    step = _decoder(stage, compile_step)
    cache, prompt_prev, total = None, None, 0
    while total < max_len:
        prompts = torch.stack([coarse_window_prompt(sem_full[i], n_sem_hist, x_coarse[i], total) for i in range(b)])
        n_new = min(C.COARSE_SLIDING_WINDOW, max_len - total)
        reuse = (
            prompt_prev is not None
            and prompts.shape[1] == prompt_prev.shape[1] + C.COARSE_SLIDING_WINDOW
            and torch.equal(prompts[:, : prompt_prev.shape[1]], prompt_prev)
        )
        if reuse:  # the cache holds prompt_prev + window[:-1]: feed the window's last token
            logits = step(stage, emb(prompts[:, -1:].to(device)), cache)
        else:
            cache = StaticKVCache(stage, b, stage.config.block_size)
            logits = causal_forward(stage, emb(prompts.to(device)), cache)
        new = torch.empty((b, n_new), dtype=torch.long)
        for j in range(n_new):
            # windows are even: token j alternates codebooks 0, 1. Stock's AlternatingCodebooks
            # processor allows [10000, 11024) then [11024, vocab): the second range includes the
            # special tokens 12048.. (fed back as they are, folded into 0..1023 at the end)
            lo = C.SEMANTIC_VOCAB_SIZE + (j % C.N_COARSE_CODEBOOKS) * C.CODEBOOK_SIZE
            hi = lo + C.CODEBOOK_SIZE if j % C.N_COARSE_CODEBOOKS == 0 else logits.shape[-1]
            masked = torch.full_like(logits, -math.inf)  # over the whole vocabulary, as stock samples
            masked[:, lo:hi] = logits[:, lo:hi]
            tok = sample(masked, temperature, gens, [total + j < n for n in lengths]).cpu()
            new[:, j] = tok
            if j + 1 < n_new:
                logits = step(stage, emb(tok.to(device)[:, None]), cache)
        x_coarse = torch.cat([x_coarse, new], dim=1)
        total += n_new
        prompt_prev = prompts
    gen = x_coarse[:, n_hist:]  # (B, max_len) interleaved
    out = []
    for i, n in enumerate(lengths):
        frames = gen[i, :n].view(-1, C.N_COARSE_CODEBOOKS).T  # (2T,) -> (T, 2) -> (2, T)
        out.append(torch.remainder(frames - C.SEMANTIC_VOCAB_SIZE, C.CODEBOOK_SIZE))
    return out


@torch.no_grad()
def fine_codes(stage, coarse: list[torch.Tensor], histories: list, *, temperature: float = C.DEFAULT_FINE_TEMPERATURE,
               generators=None) -> list[torch.Tensor]:
    """Per row: coarse codes (2, T) and a voice prompt (or None) -> all 8 codebooks (8, T).

    Rows batch together when their window schedules match (rows with the same history length that
    fit one 1024-frame window do); each row keeps its own padding, so batching does not change a
    row's codes."""
    groups: dict[tuple, list[int]] = {}
    for i, (c, h) in enumerate(zip(coarse, histories)):
        n_hist = min(h.fine.shape[1], C.MAX_FINE_HISTORY) if h is not None else 0
        padded, windows = fine_windows(c.shape[1], n_hist)
        # one-window rows share a schedule once their history length agrees; longer rows need equal lengths
        key = (n_hist, c.shape[1]) if len(windows) > 1 else (n_hist, "one window")
        groups.setdefault(key, []).append(i)
    out: list[torch.Tensor | None] = [None] * len(coarse)
    for rows in groups.values():
        gens = [generators[i] for i in rows] if generators is not None else None
        codes = _fine_group(stage, [coarse[i] for i in rows], [histories[i] for i in rows], temperature, gens)
        for i, c in zip(rows, codes):
            out[i] = c
    return out


def _fine_group(stage, coarse, histories, temperature, gens):
    device = stage.lm_heads[0].weight.device
    bufs, starts = [], []
    for c, h in zip(coarse, histories):
        hf = torch.as_tensor(h.fine) if h is not None else None
        buf, n_hist = fine_start_buffer(c, hf)
        bufs.append(buf)
        starts.append(n_hist)
    width = max(b.shape[0] for b in bufs)
    fine_input = torch.stack([F.pad(b, (0, 0, 0, width - b.shape[0]), value=C.FINE_PAD_TOKEN) for b in bufs])
    fine_input = fine_input.to(device)  # (B, padded, 8)
    # rows of a group share n_hist/length when they need several windows; one-window rows differ
    # only in where their own padding starts, which the model sees exactly as it would alone
    _, windows = fine_windows(coarse[0].shape[1], starts[0])
    for w in windows:
        rel = w.fill_start - w.start
        buf = fine_input[:, w.start : w.start + C.MAX_FINE_INPUT]
        for book in range(C.N_COARSE_CODEBOOKS, C.N_FINE_CODEBOOKS):
            logits = stage(book, buf).logits[:, rel:, : C.CODEBOOK_SIZE].float()  # (B, 1024-rel, 1024)
            if temperature is None or temperature <= 0:
                pred = logits.argmax(-1)
            else:
                probs = F.softmax(logits / temperature, dim=-1)
                if gens is None:
                    pred = torch.multinomial(probs.reshape(-1, C.CODEBOOK_SIZE), 1).view(probs.shape[:2])
                else:
                    pred = torch.stack([draw(probs[i], g)[:, 0] for i, g in enumerate(gens)])
            buf[:, rel:, book] = pred
        fine_input[:, w.fill_start : w.fill_start + C.MAX_FINE_INPUT - rel, C.N_COARSE_CODEBOOKS:] = buf[
            :, rel:, C.N_COARSE_CODEBOOKS:
        ]
    out = []
    for i, c in enumerate(coarse):
        n = c.shape[1]
        out.append(fine_input[i, starts[i] : starts[i] + n].T.cpu())  # (n, 8) -> (8, n)
    return out


# --- whole pipeline ---------------------------------------------------------------------------


@dataclass
class GenerationSettings:
    semantic_temperature: float = C.DEFAULT_SEMANTIC_TEMPERATURE  # 0 = greedy
    coarse_temperature: float = C.DEFAULT_COARSE_TEMPERATURE
    fine_temperature: float = C.DEFAULT_FINE_TEMPERATURE
    min_eos_p: float | None = C.DEFAULT_MIN_EOS_P
    max_semantic_tokens: int = C.SEMANTIC_MAX_NEW_TOKENS  # 768 ~ 15 s
    min_semantic_tokens: int = 0
    batch_size: int = 8            # rows decoded together; memory grows linearly with it
    compile: bool = False          # torch.compile the decode step (CUDA only)


@dataclass
class Generated:
    semantic: torch.Tensor  # (S,)
    codes: torch.Tensor     # (8, T)
    audio: np.ndarray       # (T * 320,) float32 at 24 kHz


def generate_batch(bark, text_ids: list, voices: list | None = None, seeds: list[int] | None = None,
                   settings: GenerationSettings | None = None, decode_audio: bool = True) -> list[Generated]:
    """Generate one output per entry of `text_ids` (raw BERT ids per prompt; repeat a prompt with
    different seeds for variants). `voices[i]` is a VoicePrompt or None. Rows are processed in
    chunks of settings.batch_size; the result of a row does not depend on its batch mates."""
    s = settings or GenerationSettings()
    n = len(text_ids)
    voices = list(voices) if voices is not None else [None] * n
    if len(voices) != n:
        raise ModelInputError(f"got {len(voices)} voice prompts for {n} prompts")
    if seeds is not None and len(seeds) != n:
        raise ModelInputError(f"got {len(seeds)} seeds for {n} prompts")
    results: list[Generated] = []
    for lo in range(0, n, max(1, s.batch_size)):
        idx = list(range(lo, min(n, lo + s.batch_size)))
        chunk_seeds = [seeds[i] for i in idx] if seeds is not None else None
        results.extend(_generate_chunk(bark, [text_ids[i] for i in idx], [voices[i] for i in idx], chunk_seeds, s,
                                       decode_audio))
    return results


def _generate_chunk(bark, text_ids, voices, seeds, s, decode_audio):
    prefixes = [semantic_prefix(t, v.semantic if v is not None else None) for t, v in zip(text_ids, voices)]
    text = torch.stack([p[0] for p in prefixes])
    history = torch.stack([p[1] for p in prefixes])
    gens = _generators(seeds, len(text_ids))
    sem = semantic_tokens(bark.semantic, text, history, max_new_tokens=s.max_semantic_tokens,
                          temperature=s.semantic_temperature, min_eos_p=s.min_eos_p,
                          min_new_tokens=s.min_semantic_tokens, generators=gens, compile_step=s.compile)
    keep = [i for i, t in enumerate(sem) if coarse_target_length(t.numel()) > 0]
    fine: list[torch.Tensor] = []
    if keep:
        got = coarse_tokens(bark.coarse_acoustics, [sem[i] for i in keep], [voices[i] for i in keep],
                            temperature=s.coarse_temperature,
                            generators=[gens[i] for i in keep] if gens is not None else None, compile_step=s.compile)
        fine = fine_codes(bark.fine_acoustics, got, [voices[i] for i in keep], temperature=s.fine_temperature,
                          generators=[gens[i] for i in keep] if gens is not None else None)
    out = []
    for i, t in enumerate(sem):
        codes = fine[keep.index(i)] if i in keep else torch.zeros((C.N_FINE_CODEBOOKS, 0), dtype=torch.long)
        audio = decode(bark, codes) if decode_audio else np.zeros(0, np.float32)
        out.append(Generated(semantic=t, codes=codes, audio=audio))
    return out


@torch.no_grad()
def decode(bark, codes: torch.Tensor) -> np.ndarray:
    """(8, T) codes -> float32 audio at 24 kHz (EnCodec decoder, as BarkModel.codec_decode)."""
    if codes.shape[-1] == 0:
        return np.zeros(0, np.float32)
    codec = bark.codec_model
    dev = next(codec.parameters()).device
    emb = codec.quantizer.decode(codes.to(dev)[:, None])  # (8, T) -> (8, 1, T) codebooks-first
    audio = codec.decoder(emb)  # (1, 1, samples)
    return audio.reshape(-1).float().cpu().numpy()


def handles(sampling) -> bool:
    """Whether this engine implements `sampling` (a models.generation.Sampling): it has no top-k / top-p."""
    return not (sampling.top_k or (sampling.top_p is not None and sampling.top_p < 1.0))


def run_rows(stages, part, voice, sampling, gens: list[RowRandom]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Drop-in for models.generation._run_rows (same arguments, same (codes, semantic) result) when
    `handles(sampling)`: the fast engine under models.generation.generate's request handling."""
    text_ids = [ids for _, _, ids in part]
    prefixes = [semantic_prefix(t, voice.semantic if voice is not None else None) for t in text_ids]
    sem = semantic_tokens(stages.semantic, torch.stack([p[0] for p in prefixes]), torch.stack([p[1] for p in prefixes]),
                          max_new_tokens=sampling.semantic_max_new_tokens, temperature=sampling.semantic_temperature,
                          min_eos_p=sampling.min_eos_p, generators=gens)
    keep = [i for i, s in enumerate(sem) if coarse_target_length(s.numel()) > 0]
    codes = [torch.zeros((C.N_FINE_CODEBOOKS, 0), dtype=torch.long) for _ in part]
    if keep:
        sub = [gens[i] for i in keep]
        coarse = coarse_tokens(stages.coarse, [sem[i] for i in keep], [voice] * len(keep),
                               temperature=sampling.coarse_temperature, generators=sub)
        fine = fine_codes(stages.fine, coarse, [voice] * len(keep), temperature=sampling.fine_temperature, generators=sub)
        for i, c in zip(keep, fine):
            codes[i] = c
    return codes, sem
