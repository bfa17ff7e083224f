"""Text to 24 kHz audio: our own loop over Bark's three stages, with a KV cache in the causal
stages, per-row seeds, voice prompts, batching, and long text split at sentence ends.

It builds inputs with models/layouts.py (the builders training uses) and applies transformers'
own logits processors in transformers' order, so with the same seed (one row) or greedy settings
it gives transformers' BarkModel.generate output token for token (tests/test_models_generation.py).
Two deliberate differences: every row samples from its own seeded generator and draws nothing
once it has ended (EOS, or its own coarse length) while batch mates go on, so a variant
regenerated alone sounds the same as in any batch; and the fine stage runs each row at its own
length (transformers pads the batch to its longest row first).

Stage modules come in already loaded (`BarkStages.from_bark(bark)`), adapters already applied by
the caller; whatever attention implementation they carry (eager, SDPA) is used as is.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from models import constants as C
from models import fast_generation as FG
from models import layouts as L
from models.errors import ModelInputError
from models.rng import RowRandom, draw
from models.voice_prompt import VoicePrompt

SENTENCE_GAP_S = 0.25  # silence between the chunks of a long text


@dataclass
class Sampling:
    """Sampling settings (suno's defaults). A temperature of 0 means greedy (argmax)."""
    semantic_temperature: float = C.DEFAULT_SEMANTIC_TEMPERATURE
    coarse_temperature: float = C.DEFAULT_COARSE_TEMPERATURE
    fine_temperature: float = C.DEFAULT_FINE_TEMPERATURE
    min_eos_p: float | None = C.DEFAULT_MIN_EOS_P
    top_k: int | None = None
    top_p: float | None = None
    semantic_max_new_tokens: int = C.SEMANTIC_MAX_NEW_TOKENS

    def __post_init__(self):
        for name in ("semantic_temperature", "coarse_temperature", "fine_temperature"):
            v = getattr(self, name)
            if v is None or not (0.0 <= float(v) <= 5.0):
                raise ModelInputError(f"{name.replace('_', ' ')} must be between 0 and 5, got {v}")
        if self.min_eos_p is not None and not (0.0 <= self.min_eos_p <= 1.0):
            raise ModelInputError(f"min_eos_p must be between 0 and 1, got {self.min_eos_p}")
        if self.top_k is not None and self.top_k < 0:
            raise ModelInputError(f"top_k must be >= 0, got {self.top_k}")
        if self.top_p is not None and not (0.0 < self.top_p <= 1.0):
            raise ModelInputError(f"top_p must be in (0, 1], got {self.top_p}")
        if not (1 <= self.semantic_max_new_tokens <= C.SEMANTIC_MAX_NEW_TOKENS):
            raise ModelInputError(f"semantic_max_new_tokens must be 1..{C.SEMANTIC_MAX_NEW_TOKENS}")

    @classmethod
    def greedy(cls, **kw) -> "Sampling":
        return cls(semantic_temperature=0.0, coarse_temperature=0.0, fine_temperature=0.0, **kw)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BarkStages:
    """The four loaded parts generation runs (adapters, if any, already applied)."""
    semantic: torch.nn.Module
    coarse: torch.nn.Module
    fine: torch.nn.Module
    codec: torch.nn.Module

    @classmethod
    def from_bark(cls, bark) -> "BarkStages":
        return cls(bark.semantic, bark.coarse_acoustics, bark.fine_acoustics, bark.codec_model)

    @property
    def device(self) -> torch.device:
        return next(self.semantic.parameters()).device


@dataclass
class Request:
    """One thing to say: text, an optional voice prompt, and the seed of this variant."""
    text: str
    voice: VoicePrompt | None = None
    seed: int = 0


@dataclass
class Result:
    audio: np.ndarray                 # (samples,) float32 at 24 kHz
    sample_rate: int
    chunks: list[str]                 # the text pieces generated one pass each
    semantic: list[np.ndarray] = field(default_factory=list)   # per chunk (S,)
    codes: list[np.ndarray] = field(default_factory=list)      # per chunk (8, T)

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


# --- logits processing and token choice (transformers' processors, transformers' order) --------

def _warpers(temperature: float, top_k, top_p) -> list:
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    out = []
    if temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    if top_k:
        out.append(TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=1))
    if top_p is not None and top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1))
    return out


def _process(processors: list, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    from transformers.generation.logits_process import LogitNormalization

    for p in processors + [LogitNormalization()]:  # Bark's configs set renormalize_logits=True
        logits = p(input_ids, logits)
    return logits


def _choose(scores: torch.Tensor, sample: bool, generators: list[RowRandom],
            active: list[bool] | None = None) -> torch.Tensor:
    """(B, V) scores -> (B,) tokens: argmax, or one multinomial draw per row from its own random
    stream, on the scores' device (models.rng).
    Rows marked inactive (past EOS or their own length, kept only while batch mates go on) take
    the argmax and leave their generator alone: a row's draws never depend on its batch mates'
    lengths, so it gives the same tokens alone as in any batch."""
    if not sample:
        return torch.argmax(scores, dim=-1)
    probs = F.softmax(scores, dim=-1)
    return torch.cat([draw(probs[i:i + 1], g)[:, 0]
                      if active is None or active[i] else torch.argmax(probs[i:i + 1], dim=-1)
                      for i, g in enumerate(generators)])


# --- the cached decode loop both causal stages use -------------------------------------------------

Chooser = Callable[[int, torch.Tensor], "torch.Tensor | None"]


def causal_decode(module, first: dict, max_new_tokens: int, choose: Chooser) -> torch.Tensor:
    """Prefill with `first` (input_ids= or inputs_embeds=), then one token per step with the KV
    cache. `choose(step, logits)` gets the raw float32 logits of the last position (B, V) and
    returns the (B,) next tokens, or None to stop. Returns (B, n) chosen tokens."""
    out = module(**first, use_cache=True, return_dict=True)
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    chosen: list[torch.Tensor] = []
    for step in range(max_new_tokens):
        logits = out.logits[:, -1].to(dtype=torch.float32, copy=True)
        tokens = choose(step, logits)
        if tokens is None:
            break
        chosen.append(tokens)
        if step + 1 == max_new_tokens:
            break
        out = module(input_ids=tokens[:, None], cache=cache, use_cache=True, return_dict=True)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
    if not chosen:  # on the inputs' device, as the chosen tokens would be (callers cat it there)
        return torch.zeros((first_batch(first), 0), dtype=torch.long, device=next(iter(first.values())).device)
    return torch.stack(chosen, dim=1)


def first_batch(first: dict) -> int:
    return next(iter(first.values())).shape[0]


# --- the three stages ------------------------------------------------------------------------------

@torch.no_grad()
def semantic_tokens(module, text_ids: list[list[int]], histories: list[np.ndarray | None],
                    sampling: Sampling, generators: list[RowRandom],
                    teacher: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Semantic tokens per row, EOS excluded. `teacher(step, raw_logits)` may replace the sampler
    (teacher forcing: the parity tests record logits through exactly this loop)."""
    from transformers.generation.logits_process import (BarkEosPrioritizerLogitsProcessor,
                                                        SuppressTokensLogitsProcessor)

    device = next(module.parameters()).device
    prefixes = [L.semantic_prefix(ids, h) for ids, h in zip(text_ids, histories)]
    text = torch.stack([p[0] for p in prefixes]).to(device)
    hist = torch.stack([p[1] for p in prefixes]).to(device)
    b = text.shape[0]
    infer = torch.full((b, 1), C.SEMANTIC_INFER_TOKEN, dtype=torch.long, device=device)
    embeds = L.semantic_embeds(module, text, hist, infer)             # (B, 257, H)

    suppress = list(range(C.SEMANTIC_VOCAB_SIZE, C.SEMANTIC_PAD_TOKEN)) + \
        list(range(C.SEMANTIC_PAD_TOKEN + 1, C.SEMANTIC_OUTPUT_VOCAB))
    sample = sampling.semantic_temperature > 0
    processors = [SuppressTokensLogitsProcessor(suppress, device=device),
                  BarkEosPrioritizerLogitsProcessor(eos_token_id=C.SEMANTIC_EOS_TOKEN,
                                                    min_eos_p=sampling.min_eos_p, device=device)]
    if sample:
        processors += _warpers(sampling.semantic_temperature, sampling.top_k, sampling.top_p)
    seq = torch.ones((b, C.MAX_INPUT_SEMANTIC_LENGTH + 1), dtype=torch.long, device=device)
    unfinished = torch.ones(b, dtype=torch.bool, device=device)

    def choose(step, logits):
        nonlocal seq, unfinished
        if not bool(unfinished.any()):
            return None
        tokens = (teacher(step, logits) if teacher is not None
                  else _choose(_process(processors, seq, logits), sample, generators, unfinished.tolist()))
        tokens = torch.where(unfinished, tokens, torch.full_like(tokens, C.SEMANTIC_PAD_TOKEN))
        seq = torch.cat([seq, tokens[:, None]], dim=1)
        unfinished = unfinished & (tokens != C.SEMANTIC_EOS_TOKEN)
        return tokens

    out = causal_decode(module, {"inputs_embeds": embeds}, sampling.semantic_max_new_tokens, choose)
    rows = []
    for row in out.cpu():
        end = (row == C.SEMANTIC_EOS_TOKEN).nonzero()
        rows.append(row[: int(end[0])] if len(end) else row)
    return rows


@torch.no_grad()
def coarse_tokens(module, semantic: list[torch.Tensor], history: VoicePrompt | None,
                  sampling: Sampling, generators: list[RowRandom],
                  teacher: Callable[[int, int, torch.Tensor], torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Per row (2, T) raw coarse codes. Rows share one voice prompt (batch by voice).
    `teacher(window, step, raw_logits)` may replace the sampler (teacher forcing)."""
    from transformers.generation.logits_process import AlternatingCodebooksLogitsProcessor

    device = next(module.parameters()).device
    x_sem, x_coarse = L.coarse_histories(history)
    b = len(semantic)
    longest = max(s.numel() for s in semantic)
    sem = torch.stack([F.pad(s.long(), (0, longest - s.numel()), value=C.COARSE_SEMANTIC_PAD_TOKEN)
                       for s in semantic])                               # (B, S)
    semantic_full = torch.cat([x_sem[None].expand(b, -1), sem], dim=1).to(device)
    lengths = [L.coarse_target_length(s.numel()) for s in semantic]
    total_len = max(lengths)
    x_coarse = x_coarse[None].expand(b, -1).to(device)
    n_hist = x_coarse.shape[1]
    sample = sampling.coarse_temperature > 0
    warpers = _warpers(sampling.coarse_temperature, sampling.top_k, sampling.top_p) if sample else []
    total = n_window = 0
    while total < total_len:
        prompt = torch.stack([L.coarse_window_prompt(semantic_full[i], x_sem.numel(), x_coarse[i], total)
                              for i in range(b)])                       # (B, 256 + 1 + hist)
        processors = [AlternatingCodebooksLogitsProcessor(prompt.shape[1], C.SEMANTIC_VOCAB_SIZE,
                                                          C.CODEBOOK_SIZE)] + warpers
        seq = prompt

        def choose(step, logits, n_window=n_window, start=total):
            nonlocal seq
            active = [start + step < n for n in lengths]  # rows past their own length draw nothing
            tokens = (teacher(n_window, step, logits) if teacher is not None
                      else _choose(_process(processors, seq, logits), sample, generators, active))
            seq = torch.cat([seq, tokens[:, None]], dim=1)
            return tokens

        n_new = min(C.COARSE_SLIDING_WINDOW, total_len - total)
        window = causal_decode(module, {"input_ids": prompt}, n_new, choose)
        x_coarse = torch.cat([x_coarse, window], dim=1)
        total += window.shape[1]
        n_window += 1
    out = []
    for i in range(b):
        flat = x_coarse[i, n_hist: n_hist + lengths[i]].cpu()
        # (2T,) interleaved -> (T, 2) -> (2, T), raw codes
        out.append(torch.remainder(flat.view(-1, C.N_COARSE_CODEBOOKS) - C.SEMANTIC_VOCAB_SIZE,
                                   C.CODEBOOK_SIZE).T.contiguous())
    return out


FineChooser = Callable[[int, L.FineWindow, int, torch.Tensor], torch.Tensor]


@torch.no_grad()
def fine_codes(module, coarse: torch.Tensor, history: VoicePrompt | None, temperature: float,
               generator: RowRandom | None, choose: FineChooser | None = None) -> torch.Tensor:
    """(2, T) coarse codes of one row -> (8, T) codes, BarkFineModel.generate's schedule.
    `choose(window_index, window, k, logits)` may replace the sampler (teacher forcing in tests)."""
    device = next(module.parameters()).device
    n_frames = coarse.shape[-1]
    hist = torch.as_tensor(history.fine) if history is not None else None
    buf, n_hist = L.fine_start_buffer(coarse, hist)
    buf = buf.to(device)[None]                                          # (1, padded, 8)
    _, windows = L.fine_windows(n_frames, n_hist)
    for wi, w in enumerate(windows):
        rel = w.fill_start - w.start
        window = buf[:, w.start: w.start + C.MAX_FINE_INPUT].clone()    # (1, 1024, 8)
        for k in range(C.N_COARSE_CODEBOOKS, C.N_FINE_CODEBOOKS):
            logits = module(codebook_idx=k, input_ids=window, return_dict=True).logits
            if choose is not None:
                preds = choose(wi, w, k, logits)
            elif not temperature:  # greedy (transformers spells it fine_temperature=1.0)
                preds = torch.argmax(logits[:, rel:, : C.CODEBOOK_SIZE], -1)
            else:
                # in fp32 as the causal stages sample (a bf16 model gives bf16 logits)
                scores = logits[:, rel: C.MAX_FINE_INPUT, : C.CODEBOOK_SIZE].float()
                probs = F.softmax(scores / temperature, dim=-1)
                preds = draw(probs.reshape(-1, C.CODEBOOK_SIZE), generator).view(1, -1)
            window[:, rel:, k] = preds.long()
        buf[:, w.fill_start: w.fill_start + (C.MAX_FINE_INPUT - rel), C.N_COARSE_CODEBOOKS:] = \
            window[:, rel:, C.N_COARSE_CODEBOOKS:]
    return buf[0, n_hist: n_hist + n_frames].T.cpu()                    # (8, T)


@torch.no_grad()
def decode_codes(codec, codes: torch.Tensor) -> np.ndarray:
    """(8, T) codes -> (samples,) float32 at 24 kHz with the EnCodec decoder (as BarkModel does)."""
    device = next(codec.parameters()).device
    emb = codec.quantizer.decode(codes.long().to(device)[:, None])      # (8, 1, T) -> (1, D, T)
    audio = codec.decoder(emb)                                          # (1, 1, samples)
    return audio.squeeze().float().cpu().numpy().astype(np.float32)


# --- text to audio ---------------------------------------------------------------------------------

def generate(stages: BarkStages, tokenizer, requests: list[Request], sampling: Sampling | None = None,
             max_words: int | None = None, batch_size: int = 8,
             progress: Callable[[int, int], None] | None = None, fast: bool = False) -> list[Result]:
    """Audio for each request. Long texts are split at sentence ends; all chunks of all requests
    that share a voice run batched together (up to batch_size rows per pass). Chunk j of a
    request with seed s samples from a random stream seeded s + j (on the model's device), so a
    request's audio does not depend on what it was batched with."""
    from models.text import DEFAULT_MAX_WORDS, encode_text, split_for_generation

    sampling = sampling or Sampling()
    if not requests:
        return []
    rows = []   # (request index, chunk index, text ids)
    chunks_of: list[list[str]] = []
    for ri, req in enumerate(requests):
        chunks = split_for_generation(req.text, max_words or DEFAULT_MAX_WORDS, tokenizer)
        if not chunks:
            raise ModelInputError(f"request {ri + 1}: text is empty")
        chunks_of.append(chunks)
        rows.extend((ri, ci, encode_text(tokenizer, chunk)) for ci, chunk in enumerate(chunks))

    per_row: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    groups: dict[int, list] = {}
    for row in rows:  # batch rows that share a voice prompt (coarse histories must align)
        groups.setdefault(id(requests[row[0]].voice), []).append(row)
    done = 0
    for group in groups.values():
        voice = requests[group[0][0]].voice
        for start in range(0, len(group), batch_size):
            part = group[start: start + batch_size]
            gens = [RowRandom(int(requests[ri].seed) + ci) for ri, ci, _ in part]
            # [perf] fast=True: models.fast_generation's engine (static KV cache, coarse windows
            # continued from the cache, batched fine stage); same tokens for greedy / same seeds.
            # It has no top-k / top-p sampling: those run through the model core's loop.
            if fast and FG.handles(sampling):
                codes, sems = FG.run_rows(stages, part, voice, sampling, gens)
            else:
                codes, sems = _run_rows(stages, part, voice, sampling, gens)
            for (ri, ci, _), code, sem in zip(part, codes, sems):
                per_row[(ri, ci)] = (sem, code)
            done += len(part)
            if progress:
                progress(done, len(rows))

    results = []
    gap = np.zeros(int(SENTENCE_GAP_S * C.SAMPLE_RATE), dtype=np.float32)
    for ri, chunks in enumerate(chunks_of):
        pieces, sems, codes = [], [], []
        for ci in range(len(chunks)):
            sem, code = per_row[(ri, ci)]
            sems.append(sem.numpy())
            codes.append(code.numpy())
            if ci:
                pieces.append(gap)
            pieces.append(decode_codes(stages.codec, code) if code.shape[1] else np.zeros(0, np.float32))
        results.append(Result(np.concatenate(pieces), C.SAMPLE_RATE, chunks, sems, codes))
    return results


def _run_rows(stages: BarkStages, part, voice: VoicePrompt | None, sampling: Sampling,
              gens: list[RowRandom]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(codes (8, T) per row, semantic (S,) per row) for rows sharing one voice."""
    hist = voice.semantic if voice is not None else None
    sem = semantic_tokens(stages.semantic, [ids for _, _, ids in part], [hist] * len(part), sampling, gens)
    nonempty = [i for i, s in enumerate(sem) if s.numel() > 0]
    codes: list[torch.Tensor] = [torch.zeros((C.N_FINE_CODEBOOKS, 0), dtype=torch.long)] * len(part)
    if nonempty:
        coarse = coarse_tokens(stages.coarse, [sem[i] for i in nonempty], voice, sampling,
                               [gens[i] for i in nonempty])
        for i, c in zip(nonempty, coarse):
            if c.shape[1]:
                codes[i] = fine_codes(stages.fine, c, voice, sampling.fine_temperature, gens[i])
    return codes, sem
