"""Model inputs for all three stages, built exactly as `generate` builds them, and training
examples made from the same builders under teacher forcing.

The input builders here (`semantic_prefix`, `coarse_histories`, `coarse_window_prompt`,
`fine_windows`) are the ones models/generation.py runs, so a training example is, token for
token, a prompt generation would have seen with the ground truth in place of its own samples.
tests/test_models_parity.py checks that logits agree at every position (<= 1e-4).

Training API (the trainer calls only these four):

    examples = build_examples(stage, item)       # item: TokenItem (one clip)
    batch = collate(stage, examples)             # dict of tensors
    logits = stage_forward(stage, module, batch) # module: a stage, or a PEFT-wrapped stage
    loss, n_tokens = stage_loss(stage, logits, batch)

Label conditioning (models.conditioning) passes `cond` (B, H) to stage_forward; generation passes
the same vectors to the same builders (`semantic_embeds`, `coarse_embeds`, `fine_logits`).

Losses are taken over the vocabulary generation samples from (semantic: the 10000 tokens + EOS;
coarse: `coarse_candidates`, codebook 0's 1024 codes or codebook 1's 1024 plus the 48 special
tokens after them; fine: the 1024 codes), padding and prompt positions ignored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from models import constants as C
from models.errors import ModelInputError
from models.voice_prompt import VoicePrompt

IGNORE = -100
# targets one semantic example carries: positions 256..1023 of the 1024-token block
SEMANTIC_MAX_TARGETS = C.SEMANTIC_MAX_NEW_TOKENS
MAX_SEMANTIC_HISTORY_FOR_COARSE = int(math.floor(C.MAX_COARSE_HISTORY / C.SEMANTIC_TO_COARSE_RATIO))  # 209


@dataclass
class TokenItem:
    """One clip in token form."""
    text_ids: list[int]                 # raw BERT ids (models.text.encode_text), no offset
    semantic: np.ndarray                # (S,) ints in 0..9999, HuBERT+quantizer at ~50 Hz
    codes: np.ndarray                   # (8, T) ints in 0..1023, EnCodec 6 kbps at 75 Hz
    history: VoicePrompt | None = None  # a voice prompt the clip is conditioned on (usually none)
    key: str = ""                       # clip id for messages
    ended: bool = True                  # the semantic tokens end where the speaker stopped (EOS is a
                                        # target); False for generated tokens cut at a length cap
    labels: dict = field(default_factory=dict)  # the clip's labels ({"speaker": "alice", "accent": 0.3})

    def __post_init__(self):
        self.semantic = np.asarray(self.semantic, dtype=np.int64).reshape(-1)
        self.codes = np.asarray(self.codes, dtype=np.int64)
        name = self.key or "clip"
        if self.codes.ndim != 2 or self.codes.shape[0] != C.N_FINE_CODEBOOKS:
            raise ModelInputError(f"{name}: codes must be 8 x T, got shape {self.codes.shape}")
        if len(self.text_ids) > C.MAX_TEXT_TOKENS:
            raise ModelInputError(f"{name}: text is {len(self.text_ids)} tokens; Bark reads at most 256")
        if self.semantic.size and (self.semantic.min() < 0 or self.semantic.max() >= C.SEMANTIC_VOCAB_SIZE):
            raise ModelInputError(f"{name}: semantic tokens must lie in 0..9999")
        if self.codes.size and (self.codes.min() < 0 or self.codes.max() >= C.CODEBOOK_SIZE):
            raise ModelInputError(f"{name}: codes must lie in 0..1023")


@dataclass
class Example:
    """One forward pass generation makes, with teacher-forced tokens and its targets.

    semantic: text (256,), history (256,), input_ids (1+m,) = [infer, targets[:-1]], labels (256+m,)
    coarse:   input_ids (L,) = [256 semantic | infer | coarse history | window[:-1]], labels (L,)
    fine:     input_ids (1024, 8), codebook k (2..7), labels (1024,) codes of codebook k,
              fill_from (first predicted window position), n_real (window positions before the padding)
    """
    stage: str
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    n_targets: int = 0


# --- semantic --------------------------------------------------------------------------------

def semantic_prefix(text_ids, history_semantic=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(256,) text ids (+10048, pad 129595) and (256,) semantic history (last 256, pad 10000)."""
    from models.text import text_input_ids

    text = text_input_ids(text_ids)
    hist = torch.full((C.MAX_INPUT_SEMANTIC_LENGTH,), C.SEMANTIC_PAD_TOKEN, dtype=torch.long)
    if history_semantic is not None:
        prev = torch.as_tensor(history_semantic, dtype=torch.long).reshape(-1)[-C.MAX_INPUT_SEMANTIC_LENGTH:]
        hist[: prev.numel()] = prev
    return text, hist


def semantic_embeds(module, text: torch.Tensor, history: torch.Tensor, input_ids: torch.Tensor,
                    cond: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 256 + n, H): emb(text) + emb(history) over 256 positions, then emb(input_ids)
    (input_ids starts with the infer token). The same sum BarkSemanticModel.generate makes.
    `cond` (B, H): a label-conditioning vector added to the 256 summed positions."""
    emb = module.get_input_embeddings()
    return torch.cat([with_condition(emb(text) + emb(history), cond), emb(input_ids)], dim=1)


# --- label conditioning (models.conditioning): where its vector enters each stage ------------------

COARSE_CONDITIONED_POSITIONS = C.MAX_COARSE_INPUT_LENGTH + 1  # the prompt's semantic window + infer token


def with_condition(embeds: torch.Tensor, cond: torch.Tensor | None, n_positions: int | None = None) -> torch.Tensor:
    """(B, T, H) embeddings with `cond` (B, H) added at the first n_positions (all when None)."""
    if cond is None:
        return embeds
    add = cond.to(device=embeds.device, dtype=embeds.dtype)[:, None, :]
    if n_positions is None or n_positions >= embeds.shape[1]:
        return embeds + add
    return torch.cat([embeds[:, :n_positions] + add, embeds[:, n_positions:]], dim=1)


def coarse_embeds(module, input_ids: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """(B, L, H) coarse input embeddings, `cond` added at the prompt's first 257 positions."""
    return with_condition(module.get_input_embeddings()(input_ids), cond, COARSE_CONDITIONED_POSITIONS)


def fine_logits(module, codebook_idx: int, input_ids: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
    """The fine model's logits for one codebook; with `cond` (B, H) added at every position of the
    summed embeddings of codebooks 0..k (the sum BarkFineModel.forward makes from input_ids)."""
    if cond is None:
        return module(codebook_idx=codebook_idx, input_ids=input_ids, return_dict=True).logits
    layers = module.input_embeds_layers
    embeds = torch.stack([layers[i](input_ids[:, :, i]) for i in range(codebook_idx + 1)], dim=-1).sum(dim=-1)
    return module(codebook_idx=codebook_idx, inputs_embeds=with_condition(embeds, cond), return_dict=True).logits


def semantic_skip_reason(item: TokenItem) -> str | None:
    """Why a clip gives no semantic example, or None. Generation makes at most 768 semantic tokens
    in one pass (767 + EOS) from a history that is a voice prompt, never the clip's own earlier
    tokens; a longer clip would need an input generation never builds, so it is left out of the
    semantic stage (its coarse and fine examples are kept)."""
    n = int(item.semantic.size)
    if n > SEMANTIC_MAX_TARGETS - 1:
        return (f"{item.key or 'clip'}: {n} semantic tokens (~{n / C.SEMANTIC_RATE_HZ:.1f} s) is longer than one "
                f"Bark pass generates ({SEMANTIC_MAX_TARGETS - 1} tokens, ~{(SEMANTIC_MAX_TARGETS - 1) / C.SEMANTIC_RATE_HZ:.1f} s); "
                f"left out of the semantic stage (split it into shorter segments to train on it)")
    return None


def _semantic_examples(item: TokenItem) -> list[Example]:
    """One example: the clip's tokens and EOS as targets after [text + history | infer], the
    history being the voice prompt (if any). None for a clip over 767 tokens (semantic_skip_reason).
    `item.ended` False (a teacher's output cut at a length cap) means no EOS target: the teacher
    never chose to stop there."""
    if semantic_skip_reason(item) is not None:
        return []
    sem = torch.as_tensor(item.semantic, dtype=torch.long)
    targets = torch.cat([sem, torch.tensor([C.SEMANTIC_EOS_TOKEN])]) if item.ended else sem
    if targets.numel() == 0:
        return []
    text, hist = semantic_prefix(item.text_ids, item.history.semantic if item.history is not None else None)
    input_ids = torch.cat([torch.tensor([C.SEMANTIC_INFER_TOKEN]), targets[:-1]])
    labels = torch.cat([torch.full((C.MAX_INPUT_SEMANTIC_LENGTH,), IGNORE), targets])
    return [Example("semantic", {"text": text, "history": hist, "input_ids": input_ids, "labels": labels},
                    n_targets=targets.numel())]


# --- coarse --------------------------------------------------------------------------------------

def coarse_histories(history: VoicePrompt | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(semantic history, interleaved coarse history) as BarkCoarseModel.preprocess_histories makes
    them: codebook n offset by n*1024, +10000, trimmed to aligned lengths, last 2 coarse dropped."""
    if history is None:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    x_sem = torch.as_tensor(history.semantic, dtype=torch.long)
    x_coarse = interleave_coarse(torch.as_tensor(history.coarse, dtype=torch.long))
    ratio = C.SEMANTIC_TO_COARSE_RATIO
    n_sem = min(MAX_SEMANTIC_HISTORY_FOR_COARSE, x_sem.numel() - x_sem.numel() % 2,
                int(np.floor(x_coarse.numel() / ratio)))
    n_coarse = int(round(n_sem * ratio))
    # x[-0:] is all of x: with under 2 semantic tokens (or under 2 coarse frames) transformers keeps
    # the whole prompt, and so does generation here; training builds the same input
    return x_sem[-n_sem:], x_coarse[-n_coarse:][:-2]


def interleave_coarse(coarse: torch.Tensor) -> torch.Tensor:
    """(2, T) raw codes -> (2T,) tokens: frame-major, codebook n + n*1024, all + 10000."""
    offsets = torch.arange(coarse.shape[0], dtype=torch.long)[:, None] * C.CODEBOOK_SIZE
    return (coarse.long() + offsets).T.reshape(-1) + C.SEMANTIC_VOCAB_SIZE  # (2, T) -> (T, 2) -> (2T,)


def coarse_target_length(n_semantic: int | torch.Tensor) -> int:
    """How many interleaved coarse tokens generate makes for n semantic tokens (always even)."""
    frames = math.floor(float(n_semantic) * C.SEMANTIC_TO_COARSE_RATIO / C.N_COARSE_CODEBOOKS)
    return int(round(frames * C.N_COARSE_CODEBOOKS))


def coarse_window_prompt(semantic_full: torch.Tensor, base_semantic_idx: int, x_coarse: torch.Tensor,
                         total_generated: int) -> torch.Tensor:
    """One sliding window's prompt, as BarkCoarseModel.generate builds it (batch-free):
    256 semantic positions around the current point (pad 12048), the infer token, then the
    last 630 coarse tokens. `semantic_full` is [semantic history | semantic], pads as 12048."""
    semantic_idx = base_semantic_idx + int(round(total_generated / C.SEMANTIC_TO_COARSE_RATIO))
    sem = semantic_full[max(0, semantic_idx - MAX_SEMANTIC_HISTORY_FOR_COARSE):][: C.MAX_COARSE_INPUT_LENGTH]
    sem = F.pad(sem, (0, C.MAX_COARSE_INPUT_LENGTH - sem.numel()), value=C.COARSE_SEMANTIC_PAD_TOKEN)
    infer = torch.tensor([C.COARSE_INFER_TOKEN], dtype=torch.long, device=sem.device)
    return torch.cat([sem.long(), infer, x_coarse[-C.MAX_COARSE_HISTORY:].long()])


def coarse_candidates(target: torch.Tensor, vocab: int = C.COARSE_VOCAB) -> torch.Tensor:
    """(N,) coarse target tokens -> (N, vocab) bool: the tokens generation may sample at each
    target's position. transformers' AlternatingCodebooksLogitsProcessor (which generation runs)
    admits [10000, 11024) for codebook 0, and everything from 11024 on for codebook 1: its 1024
    codes and the special tokens 12048..12095 after them."""
    book = (target - C.SEMANTIC_VOCAB_SIZE) // C.CODEBOOK_SIZE                        # (N,) 0 or 1
    lo = C.SEMANTIC_VOCAB_SIZE + book * C.CODEBOOK_SIZE
    hi = torch.where(book == 0, lo + C.CODEBOOK_SIZE, torch.full_like(lo, vocab))
    cols = torch.arange(vocab, device=target.device)
    return (cols >= lo[:, None]) & (cols < hi[:, None])


def _coarse_examples(item: TokenItem) -> list[Example]:
    x_sem, x_coarse = coarse_histories(item.history)
    sem = torch.as_tensor(item.semantic, dtype=torch.long)
    semantic_full = torch.cat([x_sem, sem])
    n_frames = min(item.codes.shape[1], coarse_target_length(sem.numel()) // C.N_COARSE_CODEBOOKS)
    target = interleave_coarse(torch.as_tensor(item.codes[: C.N_COARSE_CODEBOOKS, :n_frames]))
    out, total = [], 0
    while total < target.numel():
        prompt = coarse_window_prompt(semantic_full, x_sem.numel(), x_coarse, total)
        window = target[total: total + C.COARSE_SLIDING_WINDOW]
        input_ids = torch.cat([prompt, window[:-1]])
        labels = torch.cat([torch.full((prompt.numel() - 1,), IGNORE), window])
        out.append(Example("coarse", {"input_ids": input_ids, "labels": labels}, n_targets=window.numel()))
        x_coarse = torch.cat([x_coarse, window])
        total += window.numel()
    return out


# --- fine ------------------------------------------------------------------------------------

@dataclass
class FineWindow:
    start: int        # first frame of the 1024-frame buffer in the (history + clip + pad) sequence
    fill_start: int   # first frame this window predicts (absolute)


def fine_windows(n_frames: int, n_history: int) -> tuple[int, list[FineWindow]]:
    """BarkFineModel.generate's schedule: (padded total length, windows). Buffers hold 1024 frames;
    after the first, each moves on by 512 and re-predicts from its middle."""
    total = n_history + n_frames
    padded = max(total, C.MAX_FINE_INPUT)
    n_loops = int(np.ceil((n_frames - (C.MAX_FINE_INPUT - n_history)) / C.MAX_FINE_HISTORY))
    n_loops = max(0, n_loops) + 1
    windows = [FineWindow(min(n * C.MAX_FINE_HISTORY, padded - C.MAX_FINE_INPUT),
                          min(n_history + n * C.MAX_FINE_HISTORY, padded - C.MAX_FINE_HISTORY))
               for n in range(n_loops)]
    return padded, windows


def fine_start_buffer(coarse: torch.Tensor, history_fine: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    """(padded, 8) frames: [fine history (<=512) | coarse codes with codebooks 2..7 = 1024 | pad 1024]."""
    n_frames = coarse.shape[-1]
    body = torch.full((n_frames, C.N_FINE_CODEBOOKS), C.FINE_PAD_TOKEN, dtype=torch.long)
    body[:, : C.N_COARSE_CODEBOOKS] = coarse.T.long()
    hist = (history_fine.T.long()[-C.MAX_FINE_HISTORY:] if history_fine is not None
            else torch.zeros((0, C.N_FINE_CODEBOOKS), dtype=torch.long))
    buf = torch.cat([hist, body])
    if buf.shape[0] < C.MAX_FINE_INPUT:
        buf = F.pad(buf, (0, 0, 0, C.MAX_FINE_INPUT - buf.shape[0]), value=C.FINE_PAD_TOKEN)
    return buf, hist.shape[0]


def _fine_examples(item: TokenItem) -> list[Example]:
    """One example per (window, codebook 2..7). Teacher forcing: frames generation has filled by
    then hold the true codes. Frames past the clip's end (a window padded to 1024) hold 1024 here;
    `stage_forward` fills them as generation does (`fill_fine_padding`), since they have no ground
    truth and carry no loss. Loss only where the target codebook's input is still 1024 (a frame
    re-predicted in an overlap sees its earlier value: copying is not learned)."""
    codes = torch.as_tensor(item.codes, dtype=torch.long)
    hist = torch.as_tensor(item.history.fine, dtype=torch.long) if item.history is not None else None
    buf, n_hist = fine_start_buffer(codes[: C.N_COARSE_CODEBOOKS], hist)
    n_real = n_hist + codes.shape[1]
    truth = buf.clone()
    truth[n_hist:n_real] = codes.T
    padded, windows = fine_windows(codes.shape[1], n_hist)
    out = []
    for w in windows:
        fill_end = w.start + C.MAX_FINE_INPUT
        for k in range(C.N_COARSE_CODEBOOKS, C.N_FINE_CODEBOOKS):
            window_in = buf[w.start:fill_end].clone()
            rel = w.fill_start - w.start
            labels = torch.full((C.MAX_FINE_INPUT,), IGNORE, dtype=torch.long)
            fresh = (window_in[rel:, k] == C.FINE_PAD_TOKEN)
            real = torch.arange(w.fill_start, fill_end) < n_real
            keep = fresh & real
            labels[rel:][keep] = truth[w.fill_start:fill_end, k][keep]
            out.append(Example("fine", {"input_ids": window_in, "codebook": torch.tensor(k), "labels": labels,
                                        "fill_from": torch.tensor(rel),
                                        "n_real": torch.tensor(min(max(n_real - w.start, 0), C.MAX_FINE_INPUT))},
                               n_targets=int(keep.sum())))
            # teacher forcing: codebook k of this window's fill region becomes the truth (pad stays pad)
            buf[w.fill_start:min(fill_end, n_real), k] = truth[w.fill_start:min(fill_end, n_real), k]
    return [ex for ex in out if ex.n_targets > 0]


def fill_fine_padding(module, input_ids: torch.Tensor, codebook: torch.Tensor, fill_from: torch.Tensor,
                      n_real: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 1024, 8) fine inputs with the padding frames (window position >= n_real) of codebooks
    2..k-1 set to what generation puts there: its own prediction of codebook j, made from the
    window as it stood before codebook j was filled (codebooks < j filled, j still 1024 from
    `fill_from` on). The fine model is not causal, so the real frames' logits depend on these
    frames. Taken in eval mode, without gradient, as the most likely code: generation samples
    them at its fine temperature (0.5 by default), and the mode of that draw keeps training
    deterministic, so N ranks and a resumed run see what one uninterrupted process saw. Only a window
    padded to 1024 frames has padding, and such a clip has one window (BarkFineModel pads only
    when history + clip < 1024), so the pre-fill state of codebook j is 1024 from `fill_from` on."""
    pad = torch.arange(input_ids.shape[1], device=input_ids.device)[None] >= n_real[:, None]     # (B, 1024)
    needs = pad.any(dim=1) & (codebook > C.N_COARSE_CODEBOOKS)
    if not bool(needs.any()):
        return input_ids
    ids = input_ids.clone()
    fresh = torch.arange(ids.shape[1], device=ids.device)[None] >= fill_from[:, None]             # (B, 1024)
    was_training = module.training
    module.eval()  # generation runs without dropout
    kind = ids.device.type
    try:
        # cache_enabled=False: autocast would otherwise keep the low-precision weight copies made
        # here, without grad, and the training forward after it would reuse them (no gradient)
        with torch.no_grad(), torch.autocast(kind, dtype=torch.get_autocast_dtype(kind),
                                             enabled=torch.is_autocast_enabled(kind), cache_enabled=False):
            for j in range(C.N_COARSE_CODEBOOKS, int(codebook[needs].max())):
                rows = (needs & (codebook > j)).nonzero(as_tuple=True)[0]
                before = ids[rows].clone()
                before[:, :, j] = torch.where(fresh[rows], C.FINE_PAD_TOKEN, before[:, :, j])
                logits = fine_logits(module, j, before, cond[rows] if cond is not None else None)
                preds = torch.argmax(logits[:, :, : C.CODEBOOK_SIZE], dim=-1)                     # (b, 1024)
                ids[rows, :, j] = torch.where(pad[rows], preds, ids[rows, :, j])
    finally:
        module.train(was_training)
    return ids


# --- the training API ------------------------------------------------------------------------------

def build_examples(stage: str, item: TokenItem) -> list[Example]:
    """Every forward pass generation would make for this clip, teacher-forced (empty if none)."""
    if stage == "semantic":
        return _semantic_examples(item)
    if stage == "coarse":
        return _coarse_examples(item)
    if stage == "fine":
        return _fine_examples(item)
    raise ModelInputError(f"unknown stage {stage!r}; choose from {', '.join(C.STAGES)}")


def _pad_stack(tensors: list[torch.Tensor], value: int) -> torch.Tensor:
    length = max(t.shape[0] for t in tensors)
    return torch.stack([F.pad(t, (0, length - t.shape[0]), value=value) for t in tensors])


def collate(stage: str, examples: list[Example]) -> dict[str, torch.Tensor]:
    """Right-padded batch. Causal stages need no attention mask: padding sits after every
    position that has a target; labels there are -100."""
    if not examples:
        raise ModelInputError(f"no {stage} examples to batch")
    if any(ex.stage != stage for ex in examples):
        raise ModelInputError(f"collate({stage!r}) got examples of another stage")
    t = [ex.tensors for ex in examples]
    if stage == "semantic":
        batch = {"text": torch.stack([x["text"] for x in t]), "history": torch.stack([x["history"] for x in t]),
                 "input_ids": _pad_stack([x["input_ids"] for x in t], C.SEMANTIC_PAD_TOKEN),
                 "labels": _pad_stack([x["labels"] for x in t], IGNORE)}
    elif stage == "coarse":
        batch = {"input_ids": _pad_stack([x["input_ids"] for x in t], C.COARSE_SEMANTIC_PAD_TOKEN),
                 "labels": _pad_stack([x["labels"] for x in t], IGNORE)}
    elif stage == "fine":
        batch = {key: torch.stack([x[key] for x in t])
                 for key in ("input_ids", "codebook", "labels", "fill_from", "n_real")}
    else:
        raise ModelInputError(f"unknown stage {stage!r}; choose from {', '.join(C.STAGES)}")
    if "cond" in t[0]:  # label-conditioning weights (models.conditioning), one row per example
        batch["cond"] = torch.stack([x["cond"] for x in t])
    return batch


def stage_forward(stage: str, module, batch: dict[str, torch.Tensor], cond: torch.Tensor | None = None) -> torch.Tensor:
    """Logits for a batch. `module` is bark.semantic / .coarse_acoustics / .fine_acoustics or a
    PEFT wrapper of one. semantic (B, 256+m, 10048); coarse (B, L, 12096); fine (B, 1024, 1056).
    `cond` (B, H): label-conditioning vectors, entered where generation enters them."""
    if stage == "semantic":
        embeds = semantic_embeds(module, batch["text"], batch["history"], batch["input_ids"], cond)
        return module(inputs_embeds=embeds, use_cache=False, return_dict=True).logits
    if stage == "coarse":
        if cond is not None:
            embeds = coarse_embeds(module, batch["input_ids"], cond)
            return module(inputs_embeds=embeds, use_cache=False, return_dict=True).logits
        return module(input_ids=batch["input_ids"], use_cache=False, return_dict=True).logits
    if stage == "fine":
        codebook = batch["codebook"]
        ids = batch["input_ids"]
        if "n_real" in batch:
            ids = fill_fine_padding(module, ids, codebook, batch["fill_from"], batch["n_real"], cond)
        logits = None
        for k in torch.unique(codebook).tolist():  # the fine model takes one codebook per call
            rows = (codebook == k).nonzero(as_tuple=True)[0]
            out = fine_logits(module, int(k), ids[rows], cond[rows] if cond is not None else None)
            if logits is None:
                logits = out.new_zeros((ids.shape[0],) + out.shape[1:])
            logits[rows] = out
        return logits
    raise ModelInputError(f"unknown stage {stage!r}; choose from {', '.join(C.STAGES)}")


def stage_loss(stage: str, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over target positions, in the vocabulary generation samples from."""
    labels = batch["labels"]
    mask = labels != IGNORE
    n = int(mask.sum())
    if n == 0:
        return logits.sum() * 0.0, 0
    flat = logits[mask].float()       # (N, V)
    target = labels[mask]             # (N,)
    if stage == "semantic":           # the 10000 tokens and EOS (generation suppresses the rest)
        scores, idx = flat[:, : C.SEMANTIC_VOCAB_SIZE + 1], target
    elif stage == "coarse":           # what generation samples from at each target's position
        scores = flat.masked_fill(~coarse_candidates(target, flat.shape[1]), float("-inf"))
        idx = target
    elif stage == "fine":
        scores, idx = flat[:, : C.CODEBOOK_SIZE], target
    else:
        raise ModelInputError(f"unknown stage {stage!r}; choose from {', '.join(C.STAGES)}")
    return F.cross_entropy(scores, idx, reduction="mean"), n
