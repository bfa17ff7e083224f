"""Statistics of listening tests (numpy and scipy only).

MOS: mean with a t-based 95% CI, and a two-way cluster bootstrap that resamples raters and items
(ratings of one rater, or of one item, are not independent, so the naive CI is too narrow).
A/B: win rate with an exact two-sided binomial (sign) test; ties ("no preference") are left out
of the test and reported beside it, with a ties-as-half win rate too. Position bias: an exact
binomial test of "side A chosen" against 1/2. Bradley-Terry (MM algorithm, Hunter 2004) with
rater-clustered bootstrap intervals. Screening: robust z-scores of each rater's bias."""
from __future__ import annotations

import numpy as np
from scipy import stats as sps

Z_OUTLIER = 3.29  # two-sided p = 0.001


def t_interval(x, level: float = 0.95) -> dict:
    """Mean, sample SD and the t-based interval of the mean."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return {"n": n, "mean": mean, "sd": float("nan"), "ci": [float("nan"), float("nan")]}
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci": [mean - half, mean + half]}


def cluster_bootstrap_means(scores, rater_idx, item_idx, system_idx, n_systems: int, *, n_boot: int = 2000,
                            seed: int = 0, level: float = 0.95) -> np.ndarray:
    """Percentile CI per system of the mean score, resampling raters and items with replacement
    (two-way cluster bootstrap). A rating's weight in a replicate is (times its rater was drawn) x
    (times its item was drawn). Returns (n_systems, 2); NaN where a system never appears."""
    scores = np.asarray(scores, dtype=float)
    r = np.asarray(rater_idx)
    i = np.asarray(item_idx)
    sy = np.asarray(system_idx)
    n_r, n_i = int(r.max()) + 1, int(i.max()) + 1
    rng = np.random.default_rng(seed)
    w_r = rng.multinomial(n_r, np.full(n_r, 1 / n_r), size=n_boot)  # (B, R) draw counts
    w_i = rng.multinomial(n_i, np.full(n_i, 1 / n_i), size=n_boot)  # (B, I)
    w = w_r[:, r] * w_i[:, i]  # (B, N) weight of each rating per replicate
    out = np.full((n_systems, 2), np.nan)
    for k in range(n_systems):
        mask = sy == k
        if not mask.any():
            continue
        den = w[:, mask].sum(axis=1)
        num = (w[:, mask] * scores[mask]).sum(axis=1)
        means = num[den > 0] / den[den > 0]
        if len(means):
            out[k] = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return out


def sign_test(wins: int, losses: int, ties: int = 0, level: float = 0.95) -> dict:
    """Exact two-sided binomial test of wins vs losses at p = 1/2; ties are excluded from the test."""
    n = wins + losses
    out = {"wins": wins, "losses": losses, "ties": ties, "n_decided": n,
           "win_rate": wins / n if n else float("nan"),
           "win_rate_ties_half": (wins + ties / 2) / (n + ties) if n + ties else float("nan"),
           "p_value": float("nan"), "ci": [float("nan"), float("nan")],
           "ties_handling": "ties (no preference) excluded from the sign test and the win rate; "
                            "win_rate_ties_half counts each tie as half a win"}
    if n:
        res = sps.binomtest(wins, n, 0.5)
        ci = res.proportion_ci(confidence_level=level, method="exact")
        out["p_value"] = float(res.pvalue)
        out["ci"] = [float(ci.low), float(ci.high)]
    return out


def position_bias(chose_a: int, chose_b: int) -> dict:
    """Do raters favour a side? Exact binomial test of side-A choices against 1/2."""
    n = chose_a + chose_b
    out = {"chose_a": chose_a, "chose_b": chose_b, "rate_a": chose_a / n if n else float("nan"),
           "p_value": float(sps.binomtest(chose_a, n, 0.5).pvalue) if n else float("nan")}
    out["biased"] = bool(n and out["p_value"] < 0.05)
    return out


def bradley_terry(wins: np.ndarray, max_iter: int = 10_000, tol: float = 1e-10) -> tuple[np.ndarray, bool]:
    """Log-strengths (mean 0) from a win matrix, wins[i, j] = times i beat j (ties as 0.5 each way).

    The MLE exists only when every system has beaten, and lost to, the rest in a connected way;
    when it does not, 0.5 virtual ties between every pair are added (a light prior) and the second
    value returned is True."""
    w = np.asarray(wins, dtype=float)
    k = len(w)
    regularised = not _strongly_connected(w)
    if regularised:
        w = w + 0.5 * (1 - np.eye(k))
    n = w + w.T  # comparisons per pair
    total_wins = w.sum(axis=1)
    p = np.ones(k)
    for _ in range(max_iter):
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = total_wins / denom
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(np.log(new) - np.log(p))) < tol:
            p = new
            break
        p = new
    return np.log(p) - np.log(p).mean(), regularised


def _strongly_connected(w: np.ndarray) -> bool:
    k = len(w)
    adj = w > 0

    def reach(a: np.ndarray) -> bool:
        seen, stack = {0}, [0]
        while stack:
            u = stack.pop()
            for v in np.nonzero(a[u])[0]:
                if v not in seen:
                    seen.add(int(v))
                    stack.append(int(v))
        return len(seen) == k

    return reach(adj) and reach(adj.T)


def bt_bootstrap(pairs: list[tuple[int, int, float, int]], n_systems: int, *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Bradley-Terry fit and percentile intervals, resampling raters (clusters) with replacement.
    `pairs` holds (i, j, outcome, rater) with outcome 1 if i won, 0 if j won, 0.5 for a tie."""
    arr = np.asarray(pairs, dtype=float)
    raters = np.unique(arr[:, 3]).astype(int)

    def matrix(rows: np.ndarray) -> np.ndarray:
        m = np.zeros((n_systems, n_systems))
        np.add.at(m, (rows[:, 0].astype(int), rows[:, 1].astype(int)), rows[:, 2])
        np.add.at(m, (rows[:, 1].astype(int), rows[:, 0].astype(int)), 1 - rows[:, 2])
        return m

    est, _ = bradley_terry(matrix(arr))
    by_rater = {r: arr[arr[:, 3] == r] for r in raters}
    rng = np.random.default_rng(seed)
    boots = np.empty((n_boot, n_systems))
    for b in range(n_boot):
        draw = rng.choice(raters, size=len(raters), replace=True)
        boots[b], _ = bradley_terry(matrix(np.concatenate([by_rater[r] for r in draw])))
    ci = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)], axis=0).T  # (K, 2)
    return est, ci


def robust_z(x, min_scale: float = 0.0) -> np.ndarray:
    """Robust z-scores: (x - median) / (1.4826 * MAD). When the MAD is 0 (most values equal) the
    mean absolute deviation (x 1.2533) is the scale instead; `min_scale` floors the scale, so that
    differences too small to matter (raters who agree almost perfectly) never make an outlier."""
    x = np.asarray(x, dtype=float)
    med = np.median(x)
    scale = 1.4826 * np.median(np.abs(x - med))
    if scale == 0:
        scale = 1.2533 * np.mean(np.abs(x - med))
    scale = max(scale, min_scale)
    if scale == 0:
        return np.zeros_like(x)
    return (x - med) / scale


def mos_rater_bias(scores, rater_idx, stimulus_idx) -> dict[int, float]:
    """Each rater's mean deviation from the other raters' mean of the same stimuli
    (leave-one-out, so a rater cannot pull the consensus toward themself)."""
    scores = np.asarray(scores, dtype=float)
    r, st = np.asarray(rater_idx), np.asarray(stimulus_idx)
    sums = np.bincount(st, weights=scores)
    counts = np.bincount(st)
    out: dict[int, float] = {}
    for rater in np.unique(r):
        mask = r == rater
        own_sum = np.bincount(st[mask], weights=scores[mask], minlength=len(sums))
        own_n = np.bincount(st[mask], minlength=len(sums))
        devs = []
        for k in np.nonzero(mask)[0]:
            others = counts[st[k]] - own_n[st[k]]
            if others > 0:
                devs.append(scores[k] - (sums[st[k]] - own_sum[st[k]]) / others)
        if devs:
            out[int(rater)] = float(np.mean(devs))
    return out


def ab_rater_disagreement(votes: list[tuple[int, int, int, int | None]]) -> dict[int, float]:
    """Each rater's share of decided A/B votes that go against the other raters' majority for the
    same pair of systems. `votes` holds (rater, system_i, system_j, winner or None for a tie)."""
    tally: dict[tuple[int, int], dict[int, float]] = {}
    per_rater: dict[tuple[int, tuple[int, int]], dict[int, float]] = {}
    for rater, i, j, winner in votes:
        if winner is None:
            continue
        key = (min(i, j), max(i, j))
        tally.setdefault(key, {}).setdefault(winner, 0)
        tally[key][winner] += 1
        per_rater.setdefault((rater, key), {}).setdefault(winner, 0)
        per_rater[(rater, key)][winner] += 1
    against: dict[int, list[int]] = {}
    for rater, i, j, winner in votes:
        if winner is None:
            continue
        key = (min(i, j), max(i, j))
        own = per_rater[(rater, key)]
        lo, hi = key
        lo_others = tally[key].get(lo, 0) - own.get(lo, 0)
        hi_others = tally[key].get(hi, 0) - own.get(hi, 0)
        if lo_others == hi_others:
            continue  # no majority among the others
        majority = lo if lo_others > hi_others else hi
        against.setdefault(rater, []).append(int(winner != majority))
    return {r: float(np.mean(v)) for r, v in against.items()}
