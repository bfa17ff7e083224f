"""Summaries of metric values (mean, t-based 95% CI, median, spread), overall or per group."""
from __future__ import annotations

import math


def summarize(values) -> dict:
    v = [float(x) for x in values if isinstance(x, (int, float)) and math.isfinite(x)]
    n = len(v)
    if not n:
        return {"n": 0, "mean": None, "ci95": None, "median": None, "std": None, "min": None, "max": None}
    mean = sum(v) / n
    srt = sorted(v)
    median = srt[n // 2] if n % 2 else (srt[n // 2 - 1] + srt[n // 2]) / 2
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else 0.0
    ci = None
    if n > 1:
        from scipy import stats

        half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
        ci = [mean - half, mean + half]
    return {"n": n, "mean": mean, "ci95": ci, "median": median, "std": std, "min": srt[0], "max": srt[-1]}


def group_summary(rows: list[dict], key: str | None, metric: str):
    """summarize(metric) over all rows (key None) or for each value of rows[key]."""
    if key is None:
        return summarize([r.get(metric) for r in rows])
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(str(r.get(key)), []).append(r.get(metric))
    return {k: summarize(v) for k, v in sorted(groups.items())}
