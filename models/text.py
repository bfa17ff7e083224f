"""Text to Bark's semantic-stage text ids, and long text into generation-sized chunks.

Bark reads BERT (multilingual, cased) word pieces without [CLS]/[SEP], offset by 10048 and
padded to 256 positions with 129595. Over 256 pieces Bark silently truncates; we refuse, naming
the count, so a user never loses the end of a line without knowing.
"""
from __future__ import annotations

import re
import unicodedata

import torch

from models import constants as C
from models.errors import ModelInputError

_SPACES = re.compile(r"\s+")
# A sentence ends at . ! ? … (or CJK 。！？) followed by space, or at a line break; a closing
# quote or bracket after the mark stays with its sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])[\"'”’)\]]*\s+|\n\s*\n|(?<=[。！？])")
_CLAUSE_END = re.compile(r"(?<=[,;:—–])\s+")

# ~13 s of speech fits the 768-token semantic budget; at ~2.5 words/s that is ~30 words.
DEFAULT_MAX_WORDS = 30


def normalize_text(text: str) -> str:
    """Unicode NFC, whitespace collapsed to single spaces, trimmed (as suno's `_normalize_whitespace`)."""
    if not isinstance(text, str):
        raise ModelInputError(f"text must be a string, got {type(text).__name__}")
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


def encode_text(tokenizer, text: str) -> list[int]:
    """Raw BERT ids of `text` (no special tokens, no offset). Errors when empty or over 256 pieces."""
    clean = normalize_text(text)
    if not clean:
        raise ModelInputError("text is empty")
    ids = tokenizer(clean, add_special_tokens=False)["input_ids"]
    if len(ids) > C.MAX_TEXT_TOKENS:
        raise ModelInputError(
            f"text is {len(ids)} tokens long; Bark reads at most {C.MAX_TEXT_TOKENS} per generation "
            f"(split it into sentences, or shorten: {clean[:40]!r}...)")
    return list(ids)


def text_input_ids(ids: list[int] | torch.Tensor) -> torch.Tensor:
    """(256,) long: ids + 10048, padded with 129595 (exactly what BarkSemanticModel.generate feeds)."""
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if ids.numel() > C.MAX_TEXT_TOKENS:
        raise ModelInputError(f"text is {ids.numel()} tokens long; Bark reads at most {C.MAX_TEXT_TOKENS}")
    out = torch.full((C.MAX_TEXT_TOKENS,), C.TEXT_PAD_TOKEN, dtype=torch.long)
    out[: ids.numel()] = ids + C.TEXT_ENCODING_OFFSET
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, in order, each normalised; empty pieces dropped."""
    clean = unicodedata.normalize("NFC", text or "").strip()
    return [s for s in (normalize_text(p) for p in _SENTENCE_END.split(clean)) if s]


def split_for_generation(text: str, max_words: int = DEFAULT_MAX_WORDS, tokenizer=None) -> list[str]:
    """Chunks for one Bark pass each: whole sentences joined up to `max_words` words; a longer
    sentence is cut at clause marks, then between words. With a tokenizer, every chunk is also
    kept under the 256-token limit."""
    if max_words < 1:
        raise ModelInputError(f"max_words must be at least 1, got {max_words}")
    pieces: list[str] = []
    for sentence in split_sentences(text):
        if _fits(sentence, max_words, tokenizer):
            pieces.append(sentence)
            continue
        for clause in (normalize_text(c) for c in _CLAUSE_END.split(sentence)):
            if clause and _fits(clause, max_words, tokenizer):
                pieces.append(clause)
            elif clause:
                pieces.extend(_split_words(clause, max_words, tokenizer))
    chunks: list[str] = []
    for piece in pieces:
        joined = f"{chunks[-1]} {piece}" if chunks else piece
        if chunks and _fits(joined, max_words, tokenizer):
            chunks[-1] = joined
        else:
            chunks.append(piece)
    return chunks


def _fits(text: str, max_words: int, tokenizer) -> bool:
    if len(text.split()) > max_words:
        return False
    return tokenizer is None or len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= C.MAX_TEXT_TOKENS


def _split_words(text: str, max_words: int, tokenizer) -> list[str]:
    out: list[str] = []
    for word in text.split():
        if out and _fits(f"{out[-1]} {word}", max_words, tokenizer):
            out[-1] = f"{out[-1]} {word}"
        else:
            if not _fits(word, max_words, tokenizer):
                raise ModelInputError(f"a single word is over {C.MAX_TEXT_TOKENS} tokens: {word[:40]!r}...")
            out.append(word)
    return out
