"""The transcript linter: unknown or unbalanced brackets, text over Bark's 256 text tokens, and
transcripts far from what Whisper heard. Also the marker palette the editor offers."""
from __future__ import annotations

import re
import string

from studio.datasets.tokens import MAX_TEXT_TOKENS, count_text_tokens

# Bark's non-speech markers (suno's README); [MAN]/[WOMAN] bias the speaker.
KNOWN_TAGS = ("[laughter]", "[laughs]", "[sighs]", "[music]", "[gasps]", "[clears throat]", "[MAN]", "[WOMAN]")
# What the editor's palette inserts: the tags, ♪ around sung lines, hesitation, and emphasis.
PALETTE = (*KNOWN_TAGS, "♪", "—", "...", "CAPITALS")
FREE_TAG_EXAMPLES = ("[thunder]", "[sad scene, raining outside]")
FAR_FROM_ASR_WER = 0.5
_TAG = re.compile(r"\[([^\[\]]*)\]")
_PUNCT = str.maketrans("", "", string.punctuation + "—–…♪¿¡“”‘’")


def tags(text: str) -> list[str]:
    return [f"[{m.group(1)}]" for m in _TAG.finditer(text or "")]


def spoken_words(text: str) -> list[str]:
    """Words a listener hears: tags and ♪ removed, lower case, punctuation dropped."""
    no_tags = _TAG.sub(" ", text or "")
    return [w for w in no_tags.lower().translate(_PUNCT).split() if w]


def word_error_rate(reference: list[str], hypothesis: list[str]) -> float:
    if not reference:
        return 0.0 if not hypothesis else 1.0
    prev = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        cur = [i] + [0] * len(hypothesis)
        for j, h in enumerate(hypothesis, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(reference)


def lint(text: str | None, asr_text: str | None = None, allow_free_tags: bool = False,
         declared: tuple[str, ...] | list[str] = ()) -> list[dict]:
    """Problems with one transcript, each {"code", "severity", "message"}. `declared` holds the
    dataset's own tags, bracket-free ("thunder"): accepted like Bark's markers."""
    issues: list[dict] = []

    def add(code: str, severity: str, message: str) -> None:
        issues.append({"code": code, "severity": severity, "message": message})

    text = text or ""
    if not text.strip():
        add("empty", "error", "no transcript: transcribe the clip or type what is said")
        return issues
    depth = 0
    for ch in text:
        if ch == "[":
            if depth:
                add("unbalanced", "error", "a '[' opens inside another tag; tags do not nest")
            depth += 1
        elif ch == "]":
            if depth == 0:
                add("unbalanced", "error", "a ']' closes a tag that was never opened")
                depth = 1
            depth -= 1
    if depth > 0:
        add("unbalanced", "error", "a '[' is never closed")
    if text.count("♪") % 2:
        add("unbalanced", "error", "an odd number of ♪: a sung line goes between two ♪")
    own = tuple(f"[{t}]" for t in declared)
    known_lower = {t.lower(): t for t in KNOWN_TAGS + own}
    for tag in dict.fromkeys(tags(text)):
        if tag in KNOWN_TAGS or tag in own:
            continue
        if tag.lower() in known_lower:
            where = "the dataset's declared tags" if known_lower[tag.lower()] in own else "Bark's markers"
            add("tag-case", "warning", f"{tag} is written {known_lower[tag.lower()]} in {where}")
        elif not allow_free_tags:
            add("unknown-tag", "warning", f"unknown tag {tag}: Bark knows {', '.join(KNOWN_TAGS)}; declare the "
                                          f"dataset's own with `dataset tags --add` (or allow free tags)")
    n, exact = count_text_tokens(text)
    if n > MAX_TEXT_TOKENS:
        how = "" if exact else " (estimated)"
        add("too-long", "error", f"{n} text tokens{how}: Bark reads at most {MAX_TEXT_TOKENS}; cut the clip shorter")
    if asr_text:
        wer = word_error_rate(spoken_words(text), spoken_words(asr_text))
        if wer > FAR_FROM_ASR_WER:
            add("far-from-asr", "warning", f"far from what Whisper heard (word error {wer:.0%}): {asr_text[:80]!r}")
    return issues
