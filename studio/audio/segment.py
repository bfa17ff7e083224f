"""Cutting a clip into training segments of about 5-15 s, on silences between speech regions and,
when a transcript has word timestamps, on the gaps between words (never inside a word).

Times are seconds on the clip's own timeline. A segment runs from the start of its first speech
unit to the end of its last, so silence at its edges is trimmed."""
from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_MIN_S, DEFAULT_MAX_S = 5.0, 15.0  # Bark's semantic context holds ~15 s (768 tokens at 49.9 Hz)


@dataclass(frozen=True)
class Unit:
    start: float
    end: float


def speech_units(regions: list[tuple[float, float]], words: list[dict] | None = None) -> list[Unit]:
    """Units that must not be split: VAD regions, subdivided at word gaps when words exist."""
    units = [Unit(float(s), float(e)) for s, e in regions if e > s]
    if not words:
        return units
    out: list[Unit] = []
    for u in units:
        inside = [w for w in words if w["end"] > u.start and w["start"] < u.end]
        if len(inside) < 2:
            out.append(u)
            continue
        # cut points between consecutive words, at the middle of the gap
        cuts = [(a["end"] + b["start"]) / 2 for a, b in zip(inside, inside[1:]) if b["start"] >= a["end"]]
        bounds = [u.start, *[c for c in cuts if u.start < c < u.end], u.end]
        out += [Unit(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    return out


def split_long(unit: Unit, max_s: float) -> list[Unit]:
    """A single unit longer than max_s (one breath of speech, no words known) in even pieces."""
    n = math.ceil((unit.end - unit.start) / max_s - 1e-9)
    if n <= 1:
        return [unit]
    step = (unit.end - unit.start) / n
    return [Unit(unit.start + i * step, unit.start + (i + 1) * step) for i in range(n)]


def plan_segments(units: list[Unit], min_s: float = DEFAULT_MIN_S, max_s: float = DEFAULT_MAX_S) -> list[tuple[float, float]]:
    """Group consecutive units into segments, every one at most max_s and as few as possible under
    min_s (dynamic programming over cut points; a cut costs nothing, a short segment costs its
    shortfall squared, and lengths near the middle of the range are preferred)."""
    pieces: list[Unit] = []
    for u in units:
        pieces += split_long(u, max_s)
    n = len(pieces)
    if n == 0:
        return []
    ideal = (min_s + max_s) / 2
    best = [math.inf] * (n + 1)
    back = [0] * (n + 1)
    best[0] = 0.0
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            length = pieces[j - 1].end - pieces[i].start
            if length > max_s + 1e-9:
                break
            cost = best[i] + (max(0.0, min_s - length) ** 2) * 100 + ((length - ideal) / max_s) ** 2
            if cost < best[j]:
                best[j], back[j] = cost, i
    segments = []
    j = n
    while j > 0:
        i = back[j]
        segments.append((pieces[i].start, pieces[j - 1].end))
        j = i
    return segments[::-1]
