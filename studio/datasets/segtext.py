"""Which part of a clip's transcript belongs to a segment cut from it.

Word times come from Whisper (on the clip's timeline). A machine transcript's words are the word
list itself; a human-edited text is aligned to the ASR words first (difflib over spoken forms),
so tags and punctuation the user added travel with the words around them."""
from __future__ import annotations

from difflib import SequenceMatcher

from studio.datasets.lint import spoken_words


def _norm(token: str) -> str:
    words = spoken_words(token)
    return words[0] if words else ""


def token_times(text: str, words: list[dict]) -> list[float | None]:
    """For each whitespace token of `text`, the midpoint time of the ASR word it matches (None when
    it matches none: a tag, or a word the user added)."""
    tokens = text.split()
    a = [_norm(t) for t in tokens]
    b = [_norm(w["word"]) for w in words]
    times: list[float | None] = [None] * len(tokens)
    for block in SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            w = words[block.b + k]
            times[block.a + k] = (w["start"] + w["end"]) / 2
    # unmatched tokens inherit the time of the nearest matched token before them (else after)
    last = None
    for i, t in enumerate(times):
        if t is None:
            times[i] = last
        else:
            last = t
    nxt = None
    for i in range(len(times) - 1, -1, -1):
        if times[i] is None:
            times[i] = nxt
        else:
            nxt = times[i]
    return times


def segment_text(text: str | None, words: list[dict] | None, start: float, end: float, whole_clip: bool) -> str | None:
    """The text of the segment [start, end] (clip timeline). Without word times the whole text goes
    to a segment only when it is the clip's only one; otherwise the text is unknown (None)."""
    if not text:
        return None
    if whole_clip:
        return text
    if not words:
        return None
    tokens = text.split()
    times = token_times(text, words)
    picked = [tok for tok, t in zip(tokens, times) if t is not None and start <= t < end]
    return " ".join(picked) or None
