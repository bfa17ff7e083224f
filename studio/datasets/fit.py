"""Transcripts Bark can read: a training segment's text over Bark's 256 text tokens fails the run,
so it is refused when the run is submitted, naming the clip (never a segment's storage hash)."""
from __future__ import annotations

from studio.datasets.tokens import MAX_TEXT_TOKENS, count_text_tokens
from studio.errors import UserError

# Without the real vocabulary the count is an estimate that reads up to ~40% high for prose
# (studio.datasets.tokens); refuse on it only beyond that margin, so no text that fits is refused.
ESTIMATE_MARGIN = 1.4


def overlong(items: list[dict]) -> list[dict]:
    """The training items whose text Bark cannot read whole, with their token count."""
    out = []
    for it in items:
        n, exact = count_text_tokens(it["text"])
        if n > (MAX_TEXT_TOKENS if exact else MAX_TEXT_TOKENS * ESTIMATE_MARGIN):
            out.append({**it, "tokens": n, "exact": exact})
    return out


def check_transcripts_fit(ws, dataset: str) -> None:
    """UserError naming each clip whose (segment) transcript is over Bark's text limit."""
    from studio.datasets.api import training_items
    from studio.datasets.store import get_clip

    bad = overlong(training_items(ws, dataset))
    if not bad:
        return
    names = []
    for it in bad[:5]:
        clip = get_clip(ws.db, it["clip_id"])["name"]
        names.append(f"{clip} ({it['start']:.1f}-{it['end']:.1f} s: {it['tokens']} text tokens"
                     f"{'' if it['exact'] else ', estimated'})")
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    raise UserError(f"dataset {dataset!r}: transcript too long for Bark (at most {MAX_TEXT_TOKENS} text tokens) "
                    f"in clip {'; '.join(names)}{more}. Shorten the transcript or cut the clip shorter in the "
                    f"Dataset tab, then prepare again.")
