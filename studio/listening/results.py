"""A session's votes turned into what the owner reads: screening, MOS or A/B statistics,
Bradley-Terry for more than two systems, plots (matplotlib Agg PNGs) and a CSV of every vote.

Gold/trap trials are used only to screen raters; they never enter a system's score. The hidden
reference is scored like any system and marked as the reference."""
from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
from sqlalchemy import select

from studio.listening import stats
from studio.listening.sessions import MOS_TRAP_MAX, get_session
from studio.listening.tables import ListenItem, ListenRater, ListenSystem, ListenVote
from studio.workspace import Workspace

NEAR_CONSTANT_MOS_SD = 0.5  # a rater whose ratings vary less than this barely listened
NEAR_CONSTANT_AB_SHARE = 0.9  # ... or who picks the same side (or no preference) this often
NEAR_CONSTANT_MIN_VOTES = 5
MAX_TRAP_FAILURES = 0  # P.808 practice: a failed trap flags the rater
MIN_BIAS_SCALE_MOS = 0.25  # z-score scale floor: a quarter of a scale point of bias is never an outlier alone
MIN_BIAS_SCALE_AB = 0.05  # ... nor 5 percentage points of disagreement with the majority


def _votes(ws: Workspace, session_id: int) -> tuple[list[ListenVote], dict, dict, dict]:
    with ws.db.read() as s:
        votes = s.scalars(select(ListenVote).where(ListenVote.session_id == session_id).order_by(ListenVote.id)).all()
        systems = {x.id: x for x in s.scalars(select(ListenSystem).where(ListenSystem.session_id == session_id))}
        raters = {r.id: r for r in s.scalars(select(ListenRater).where(ListenRater.session_id == session_id))}
        items = {i.id: i for i in s.scalars(select(ListenItem).where(ListenItem.session_id == session_id))}
        return votes, systems, raters, items


def screen_raters(test_type: str, votes: list[ListenVote], raters: dict) -> list[dict]:
    """Per rater: trap failures, near-constant answering, and |robust z| of their bias."""
    rows = {rid: {"rater_id": rid, "label": r.label, "votes": 0, "trap_trials": 0, "trap_failures": 0,
                  "near_constant": False, "z": None, "flags": [], "excluded": r.excluded}
            for rid, r in raters.items()}
    test_votes = [v for v in votes if not v.is_gold]
    for v in votes:
        row = rows[v.rater_id]
        if v.is_gold:
            row["trap_trials"] += 1
            if test_type == "mos":
                failed = v.score is None or v.score > MOS_TRAP_MAX
            else:  # the clean side is the side not holding the trap system
                failed = v.response == "none" or v.chosen_system_id is None or \
                    v.chosen_system_id != _clean_system(v)
            row["trap_failures"] += int(failed)
        else:
            row["votes"] += 1
    for rid, row in rows.items():
        mine = [v for v in test_votes if v.rater_id == rid]
        if len(mine) >= NEAR_CONSTANT_MIN_VOTES:
            if test_type == "mos":
                row["near_constant"] = bool(np.std([v.score for v in mine], ddof=1) < NEAR_CONSTANT_MOS_SD)
            else:
                counts = {}
                for v in mine:
                    counts[v.response] = counts.get(v.response, 0) + 1
                row["near_constant"] = max(counts.values()) / len(mine) >= NEAR_CONSTANT_AB_SHARE
    if test_type == "mos" and test_votes:
        bias = stats.mos_rater_bias([v.score for v in test_votes], [v.rater_id for v in test_votes],
                                    [v.stimulus_a_id for v in test_votes])
    else:
        bias = stats.ab_rater_disagreement([(v.rater_id, v.system_a_id, v.system_b_id, v.chosen_system_id)
                                            for v in test_votes])
    if len(bias) >= 3:
        ids = list(bias)
        floor = MIN_BIAS_SCALE_MOS if test_type == "mos" else MIN_BIAS_SCALE_AB
        for rid, z in zip(ids, stats.robust_z([bias[r] for r in ids], min_scale=floor)):
            rows[rid]["z"] = float(z)
    for row in rows.values():
        if row["trap_failures"] > MAX_TRAP_FAILURES:
            row["flags"].append(f"failed {row['trap_failures']} of {row['trap_trials']} trap trials")
        if row["near_constant"]:
            row["flags"].append("near-constant answers")
        if row["z"] is not None and abs(row["z"]) >= stats.Z_OUTLIER:
            row["flags"].append(f"outlier (|z| = {abs(row['z']):.2f} >= {stats.Z_OUTLIER})")
    return sorted(rows.values(), key=lambda r: r["rater_id"])


def _clean_system(v: ListenVote) -> int:
    # In a gold pair the trap stimulus is on the side named by `swapped` (see _TrialPlan): A when swapped.
    return v.system_b_id if v.swapped else v.system_a_id


def session_results(ws: Workspace, session_id: int, *, exclude_flagged: bool = False,
                    exclude: list[int] | None = None, n_boot: int = 2000, plots: bool = True) -> dict:
    session = get_session(ws, session_id)
    votes, systems, raters, items = _votes(ws, session["id"])
    screening = screen_raters(session["test_type"], votes, raters)
    excluded = {r["rater_id"] for r in screening if r["excluded"]} | set(int(x) for x in exclude or [])
    if exclude_flagged:
        excluded |= {r["rater_id"] for r in screening if r["flags"]}
    for row in screening:
        row["excluded"] = row["rater_id"] in excluded
    kept = [v for v in votes if not v.is_gold and v.rater_id not in excluded]
    test_systems = [x for x in sorted(systems.values(), key=lambda x: x.position) if x.kind != "trap"]
    out = {"session": {k: v for k, v in session.items() if k not in ("raters", "public_id")},
           "n_votes": len(kept), "n_votes_all": len(votes), "excluded_raters": sorted(excluded),
           "screening": screening, "mos": None, "ab": None, "plots": [],
           "method": {"confidence": 0.95, "bootstrap_replicates": n_boot,
                      "screening": f"trap failures > {MAX_TRAP_FAILURES}; near-constant (MOS SD < "
                                   f"{NEAR_CONSTANT_MOS_SD}, or one A/B answer >= {NEAR_CONSTANT_AB_SHARE:.0%}, "
                                   f"with >= {NEAR_CONSTANT_MIN_VOTES} votes); |robust z| >= {stats.Z_OUTLIER} of "
                                   "the rater's bias against the other raters (needs >= 3 raters)"}}
    if session["test_type"] == "mos":
        out["mos"] = _mos(kept, test_systems, n_boot, session["seed"])
    else:
        out["ab"] = _ab(kept, test_systems, n_boot, session["seed"])
    if plots and kept:
        out["plots"] = [str(p) for p in _plots(ws, session, out)]
    return out


def _mos(votes: list[ListenVote], systems: list[ListenSystem], n_boot: int, seed: int) -> list[dict]:
    index = {x.id: k for k, x in enumerate(systems)}
    rows = []
    boot = np.full((len(systems), 2), np.nan)
    if votes:
        r_codes = {r: k for k, r in enumerate(sorted({v.rater_id for v in votes}))}
        i_codes = {i: k for k, i in enumerate(sorted({v.item_id for v in votes}))}
        boot = stats.cluster_bootstrap_means([v.score for v in votes], [r_codes[v.rater_id] for v in votes],
                                             [i_codes[v.item_id] for v in votes],
                                             [index[v.system_a_id] for v in votes], len(systems),
                                             n_boot=n_boot, seed=seed)
    for k, x in enumerate(systems):
        summary = stats.t_interval([v.score for v in votes if v.system_a_id == x.id])
        rows.append({"system": x.name, "kind": x.kind, "n": summary["n"], "mean": summary["mean"],
                     "sd": summary["sd"], "ci_t": summary["ci"], "ci_bootstrap": [float(b) for b in boot[k]]})
    return rows


def _ab(votes: list[ListenVote], systems: list[ListenSystem], n_boot: int, seed: int) -> dict:
    pairs = []
    for x, y in itertools.combinations(systems, 2):
        relevant = [v for v in votes if {v.system_a_id, v.system_b_id} == {x.id, y.id}]
        wins = sum(v.chosen_system_id == x.id for v in relevant)
        losses = sum(v.chosen_system_id == y.id for v in relevant)
        ties = sum(v.chosen_system_id is None for v in relevant)
        test = stats.sign_test(wins, losses, ties)
        pairs.append({"system_x": x.name, "system_y": y.name, **{k: v for k, v in test.items() if k != "ties_handling"}})
    decided = [v for v in votes if v.response in ("A", "B")]
    out = {"pairs": pairs,
           "position_bias": stats.position_bias(sum(v.response == "A" for v in decided),
                                                sum(v.response == "B" for v in decided)),
           "ties": sum(v.response == "none" for v in votes),
           "ties_handling": stats.sign_test(0, 0)["ties_handling"], "bradley_terry": None}
    if len(systems) > 2 and votes:
        index = {x.id: k for k, x in enumerate(systems)}
        rows = [(index[v.system_a_id], index[v.system_b_id],
                 0.5 if v.chosen_system_id is None else float(v.chosen_system_id == v.system_a_id), v.rater_id)
                for v in votes]
        est, ci = stats.bt_bootstrap(rows, len(systems), n_boot=min(n_boot, 1000), seed=seed)
        out["bradley_terry"] = [{"system": x.name, "kind": x.kind, "score": float(est[k]),
                                 "ci": [float(ci[k, 0]), float(ci[k, 1])]} for k, x in enumerate(systems)]
        out["bradley_terry_note"] = ("log-strengths with mean 0 (ties count half a win each way); intervals from "
                                     "a bootstrap over raters")
    return out


MOS_TABLE_COLUMNS = ["system", "n", "MOS", "95% CI (t)", "95% CI (cluster bootstrap)"]
AB_TABLE_COLUMNS = ["pair (first vs second)", "wins-losses-ties", "win rate", "95% CI (exact)", "p (exact binomial)"]


def _num(x: float, fmt: str = ".2f") -> str:
    return "–" if x is None or not np.isfinite(x) else format(x, fmt)


def _ci(ci: list[float]) -> str:
    return "–" if not all(np.isfinite(c) for c in ci) else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def results_table(r: dict) -> tuple[list[str], list[list]]:
    """The results as (headers, rows) for the page: per system for MOS, per pair for A/B."""
    if r["mos"]:
        return MOS_TABLE_COLUMNS, [[m["system"] + (" (reference)" if m["kind"] == "reference" else ""), m["n"],
                                    _num(m["mean"]), _ci(m["ci_t"]), _ci(m["ci_bootstrap"])] for m in r["mos"]]
    if r["ab"]:
        return AB_TABLE_COLUMNS, [[f"{p['system_x']} vs {p['system_y']}", f"{p['wins']}-{p['losses']}-{p['ties']}",
                                   _num(p["win_rate"]), _ci(p["ci"]), _num(p["p_value"], ".3g")]
                                  for p in r["ab"]["pairs"]]
    return [], []


def summary_text(r: dict, with_paths: bool = True) -> str:
    """The results as the CLI prints them and the Listen tab shows them."""
    lines = [f"session {r['session']['id']}: {r['session']['name']} - {r['n_votes']} votes used"
             f" ({r['n_votes_all']} recorded, raters excluded: {r['excluded_raters'] or 'none'})"]
    if r["mos"]:
        lines.append(f"{'system':<24} {'n':>4} {'MOS':>5}  95% CI (t)      95% CI (cluster bootstrap)")
        for m in r["mos"]:
            lines.append(f"{m['system']:<24} {m['n']:>4} {m['mean']:>5.2f}  [{m['ci_t'][0]:.2f}, {m['ci_t'][1]:.2f}]"
                         f"    [{m['ci_bootstrap'][0]:.2f}, {m['ci_bootstrap'][1]:.2f}]")
    if r["ab"]:
        for p in r["ab"]["pairs"]:
            lines.append(f"{p['system_x']} vs {p['system_y']}: {p['wins']}-{p['losses']} (ties {p['ties']}), "
                         f"win rate {p['win_rate']:.2f} [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}], "
                         f"exact binomial p = {p['p_value']:.4g}")
        pb = r["ab"]["position_bias"]
        lines.append(f"position bias: side A chosen {pb['chose_a']} of {pb['chose_a'] + pb['chose_b']} "
                     f"(p = {pb['p_value']:.4g})")
        lines.append(r["ab"]["ties_handling"])
        for b in r["ab"]["bradley_terry"] or []:
            lines.append(f"Bradley-Terry {b['system']}: {b['score']:+.2f} [{b['ci'][0]:+.2f}, {b['ci'][1]:+.2f}]")
    for s in r["screening"]:
        if s["flags"]:
            lines.append(f"flagged {s['label']} (id {s['rater_id']}): {'; '.join(s['flags'])}")
    if with_paths:  # the CLI's reader is on the machine; the studio's page shows the plots instead
        lines += [f"plot: {p}" for p in r["plots"]]
    return "\n".join(lines)


def _plots(ws: Workspace, session: dict, res: dict) -> list[Path]:
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = ws.exports_dir / "listening" / f"session-{session['id']}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    if res["mos"]:
        rows = [r for r in res["mos"] if r["n"]]
        fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(rows)), 3.5))
        xs = np.arange(len(rows))
        for off, key, label in ((-0.1, "ci_t", "95% CI (t)"), (0.1, "ci_bootstrap", "95% CI (cluster bootstrap)")):
            lo = [r["mean"] - r[key][0] if np.isfinite(r[key][0]) else 0 for r in rows]
            hi = [r[key][1] - r["mean"] if np.isfinite(r[key][1]) else 0 for r in rows]
            ax.errorbar(xs + off, [r["mean"] for r in rows], yerr=[lo, hi], fmt="o", capsize=4, label=label)
        ax.set_xticks(xs, [r["system"] + (" (ref)" if r["kind"] == "reference" else "") for r in rows], rotation=20)
        ax.set_ylim(1, 5)
        ax.set_ylabel("MOS")
        ax.legend(fontsize=8)
        ax.set_title(session["name"])
        paths.append(_save(fig, folder, "mos", [session["name"], rows]))
    if res["ab"]:
        pairs = [p for p in res["ab"]["pairs"] if p["n_decided"]]
        if pairs:
            # at least 3 in tall: a one-pair plot 2 in tall was scaled up in the page into giant text
            fig, ax = plt.subplots(figsize=(7, max(3.0, 0.6 * len(pairs) + 1.8)))
            ys = np.arange(len(pairs))
            rates = [p["win_rate"] for p in pairs]
            ax.barh(ys, rates, xerr=[[r - p["ci"][0] for r, p in zip(rates, pairs)],
                                     [p["ci"][1] - r for r, p in zip(rates, pairs)]], capsize=4)
            ax.axvline(0.5, color="k", lw=0.8, ls="--")
            ax.set_yticks(ys, [f"{p['system_x']} vs {p['system_y']}" for p in pairs])
            ax.set_xlim(0, 1)
            ax.set_xlabel("win rate of the first system (exact 95% CI; ties excluded)")
            ax.set_title(textwrap.fill(session["question"], 70), fontsize=10)
            paths.append(_save(fig, folder, "ab", [session["question"], pairs]))
        if res["ab"]["bradley_terry"]:
            bt = res["ab"]["bradley_terry"]
            fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(bt)), 3.5))
            xs = np.arange(len(bt))
            ax.errorbar(xs, [b["score"] for b in bt], yerr=[[b["score"] - b["ci"][0] for b in bt],
                                                            [b["ci"][1] - b["score"] for b in bt]], fmt="o", capsize=4)
            ax.set_xticks(xs, [b["system"] for b in bt], rotation=20)
            ax.set_ylabel("Bradley-Terry log-strength")
            paths.append(_save(fig, folder, "bradley_terry", bt))
    return paths


def _save(fig, folder: Path, kind: str, drawn) -> Path:
    """Write the plot as KIND-<hash of the numbers drawn>.png and remove that kind's older files: a
    new result is a new file name, so neither the page nor a cache can show a stale plot."""
    import hashlib
    import json

    import matplotlib.pyplot as plt

    digest = hashlib.sha256(json.dumps(drawn, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = folder / f"{kind}-{digest}.png"
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)  # a page reading the plot never sees it half written
    for old in [*folder.glob(f"{kind}-*.png"), folder / f"{kind}.png"]:
        if old != path and not old.name.endswith(".tmp.png"):
            old.unlink(missing_ok=True)
    return path


CSV_COLUMNS = ["vote_id", "rater_id", "rater_label", "rater_excluded", "item", "is_gold", "system_a", "system_b",
               "swapped", "response", "score", "chosen_system", "plays_a", "plays_b", "listened_a_s", "listened_b_s",
               "response_time_ms", "server_elapsed_ms", "seed", "presented_at", "client_submitted_at", "recorded_at"]


def export_csv(ws: Workspace, session_id: int, target: Path) -> Path:
    """One row per vote, with system names (owner-side only)."""
    session = get_session(ws, session_id)
    votes, systems, raters, items = _votes(ws, session["id"])
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    name = lambda sid: systems[sid].name if sid in systems else ""  # noqa: E731
    with open(target, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for v in votes:
            w.writerow([v.id, v.rater_id, raters[v.rater_id].label, raters[v.rater_id].excluded, items[v.item_id].key,
                        v.is_gold, name(v.system_a_id), name(v.system_b_id), v.swapped, v.response,
                        "" if v.score is None else v.score, name(v.chosen_system_id) if v.chosen_system_id else "",
                        v.plays_a, v.plays_b, round(v.listened_a_s, 3), round(v.listened_b_s, 3),
                        "" if v.response_time_ms is None else v.response_time_ms, v.server_elapsed_ms,
                        "" if v.seed is None else v.seed, v.presented_at.isoformat(),
                        v.client_submitted_at or "", v.recorded_at.isoformat()])
    return target
