"""Which outputs sit far outside their arm's usual range: robust z (median and MAD) per
descriptor, with a floor under the MAD so that a tight arm does not flag noise, a minimum count
before anything is judged, and a direction per descriptor (a clip unusually *low* in
music-likeness is ordinary speech, not an event)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

THRESHOLD = 3.5  # |z| at or above this is flagged (Iglewicz & Hoaglin's modified z-score)
MIN_COUNT = 5  # an arm needs this many outputs before its "usual range" means anything
MAD_TO_SIGMA = 0.6745  # z = 0.6745 (x - median) / MAD

# descriptor: (direction, smallest MAD that counts). "high": only unusually high values matter.
RULES: dict[str, tuple[str, float]] = {
    "music_likeness": ("high", 0.03),
    "pitch_stability": ("high", 0.05),
    "harmonicity": ("high", 0.03),
    "nonspeech_share": ("high", 0.05),
    "silence_share": ("high", 0.05),
    "repetition": ("high", 0.05),
    "loudness_lufs": ("both", 2.0),
    "dynamic_range_db": ("both", 3.0),
    "duration_log_ratio": ("both", 0.25),
}


def robust_z(values: Sequence[float | None], min_mad: float = 0.0) -> list[float | None]:
    """Modified z-score of each value against the others' median/MAD; None stays None."""
    finite = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return [None] * len(values)
    med = float(np.median(finite))
    mad = max(float(np.median(np.abs(finite - med))), min_mad, 1e-12)
    return [None if v is None or not np.isfinite(v) else MAD_TO_SIGMA * (v - med) / mad for v in values]


def flag(descriptors: Sequence[dict], threshold: float = THRESHOLD, min_count: int = MIN_COUNT,
         rules: dict[str, tuple[str, float]] = RULES) -> list[list[dict]]:
    """For each output, the descriptors that put it outside the group: [{name, value, z, median}]."""
    reasons: list[list[dict]] = [[] for _ in descriptors]
    if len(descriptors) < min_count:
        return reasons
    for name, (direction, min_mad) in rules.items():
        values = [d.get(name) for d in descriptors]
        zs = robust_z(values, min_mad)
        finite = [v for v in values if v is not None and np.isfinite(v)]
        if len(finite) < min_count:
            continue
        med = float(np.median(finite))
        for i, z in enumerate(zs):
            if z is None:
                continue
            if z >= threshold or (direction == "both" and z <= -threshold):
                reasons[i].append({"name": name, "value": float(values[i]), "z": float(z), "median": med})
    return reasons


def describe_reason(reason: list[dict]) -> str:
    """One line a person reads in the log: 'music_likeness 0.61 (z=+42.0, arm median 0.00); ...'."""
    return "; ".join(f"{r['name']} {r['value']:.3g} (z={r['z']:+.1f}, arm median {r['median']:.3g})"
                     for r in sorted(reason, key=lambda r: -abs(r["z"])))
