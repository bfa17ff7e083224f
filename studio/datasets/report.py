"""The dataset report: how much there is (against the tiers), what it is like (length, SNR and
loudness distributions, markers, diversity, speakers) and what to worry about. `dataset show
--json` prints the same figures the tab shows."""
from __future__ import annotations

import io
import math
import re
import statistics
from collections import Counter

from sqlalchemy import select

from studio.datasets.api import segments_with_text
from studio.datasets.labels import NUMERIC, clip_labels, format_value, kind_of
from studio.datasets.lint import KNOWN_TAGS, lint, tags
from studio.datasets.models import Clip, PreparedVersion, Transcript
from studio.datasets.store import dataset_dict, get_dataset_row, latest_version, trim_bounds
from studio.db import Database

# (name, minimum seconds, minimum clips, what it buys) in rising order.
TIERS = (
    ("zero-shot", 5, 1, "a voice prompt from one 5-12 s clip"),
    ("basic", 3 * 60, 50, "3-10 min / 50-100 clips: a first LoRA"),
    ("quality", 60 * 60, 300, "1-3 h / 300+ clips: a dependable fine-tune"),
    ("professional", 10 * 3600, 1000, "10-24 h / 1000+ clips: a full fine-tune"),
)
_CAPS = re.compile(r"\b[A-Z]{2,}\b")
# Label-conditioned training learns one vector per speaker or category, and one per end of a
# numeric label, from that value's clips alone. Under a minute (4-12 segments of 5-15 s) it sees
# too few examples to learn the voice rather than the recordings; the report warns below this.
LABEL_MIN_SECONDS = 60.0
NUMERIC_BINS = 5  # the report's histogram of a numeric label; its first and last bins are the "ends"
TAG_MIN_CLIPS = 5  # a declared tag in fewer clips than this gives the model too few examples to tie it to a sound
TAG_EXAMPLES = 3


def tier_for(seconds: float, clips: int) -> dict:
    reached = None
    for name, min_s, min_n, what in TIERS:
        if seconds >= min_s and clips >= min_n:
            reached = name
    nxt = next(((n, s, c, w) for n, s, c, w in TIERS if not (seconds >= s and clips >= c)), None)
    out = {"tier": reached or "below zero-shot", "seconds": round(seconds, 2), "clips": clips}
    if nxt:
        out["next"] = {"tier": nxt[0], "needs_seconds": round(max(0.0, nxt[1] - seconds), 1),
                       "needs_clips": max(0, nxt[2] - clips), "what": nxt[3]}
    return out


def marker_counts(texts: list[str]) -> dict[str, int]:
    counts: Counter = Counter()
    for t in texts:
        for tag in tags(t):
            counts[tag] += 1
        counts["♪ (sung)"] += t.count("♪") // 2
        counts["— (hesitation)"] += t.count("—")
        counts["... (hesitation)"] += t.count("...") + t.count("…")
        counts["CAPITALS (emphasis)"] += len([w for w in _CAPS.findall(t) if f"[{w}]" not in t])
    return {k: v for k, v in sorted(counts.items()) if v}


def sentence_mix(texts: list[str]) -> dict[str, int]:
    mix = Counter()
    for t in texts:
        end = re.sub(r"[\s\]\"'”’)♪]+$", "", re.sub(r"\[[^\]]*\]\s*$", "", t.strip()))
        mix["question" if end.endswith("?") else "exclamation" if end.endswith("!") else "statement"] += 1
    return dict(mix)


def _dist(values: list[float]) -> dict:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"n": 0}
    return {"n": len(vals), "min": round(min(vals), 2), "median": round(statistics.median(vals), 2),
            "mean": round(statistics.fmean(vals), 2), "max": round(max(vals), 2),
            "stdev": round(statistics.pstdev(vals), 2)}


def build_report(db: Database, name: str) -> dict:
    from studio.datasets.prepare import repair_versions

    with db.read() as s:
        dataset_id = get_dataset_row(s, name).id
    repair_versions(db, dataset_id)  # a version a killed prepare left 'running' is marked interrupted
    with db.read() as s:
        ds = get_dataset_row(s, name)
        versions = [{"version": v.version, "status": v.status, "job_id": v.job_id,
                     "interrupted": (v.stats or {}).get("interrupted")}
                    for v in s.scalars(select(PreparedVersion).where(PreparedVersion.dataset_id == ds.id)
                                       .order_by(PreparedVersion.version))]
        rows = list(s.execute(select(Clip, Transcript).outerjoin(Transcript, Transcript.clip_id == Clip.id)
                              .where(Clip.dataset_id == ds.id, Clip.deleted_at.is_(None)).order_by(Clip.id)))
        excluded = sum(1 for c, _ in rows if c.excluded_at is not None)
        rows = [(c, t) for c, t in rows if c.excluded_at is None]  # excluded clips are counted, not reported
        version = latest_version(s, ds.id)
        segments = [g for g in segments_with_text(s, ds.id, version.id) if g["in_use"]] if version else []
        info = dataset_dict(ds)
        version_info = {"version": version.version, "settings": version.settings, "stats": version.stats} if version else None
    clip_secs = [trim_bounds(c)[1] - trim_bounds(c)[0] for c, _ in rows]
    texts = [t.text for _, t in rows if t and t.text]
    lint_by_clip = {c.id: lint(t.text if t else None, t.asr_text if t else None, info["allow_free_tags"], info["tags"])
                    for c, t in rows}
    label_dist = label_distributions([(clip_labels(c), secs) for (c, _), secs in zip(rows, clip_secs)])
    tag_stats = tag_counts([(c, t.text) for c, t in rows if t and t.text], info["tags"])
    kept = [g for g in segments if g["kept"]]
    trainable = [g for g in kept if g["text"]]
    speakers: dict[str, dict] = {}
    for (c, _), secs in zip(rows, clip_secs):
        sp = speakers.setdefault(c.speaker or "(unlabelled)", {"clips": 0, "seconds": 0.0})
        sp["clips"] += 1
        sp["seconds"] = round(sp["seconds"] + secs, 2)
    basis = "prepared" if version else "raw"
    tier = tier_for(sum(g["duration"] for g in trainable), len(trainable)) if version \
        else tier_for(sum(clip_secs), len(rows))
    warnings = _warnings(rows, lint_by_clip, version, segments, kept, trainable, speakers)
    warnings += label_warnings(label_dist) + tag_warnings(tag_stats)
    return {
        "dataset": info,
        "clips": len(rows),
        "excluded_clips": excluded,
        "raw_duration_s": round(sum(clip_secs), 2),
        "transcribed_clips": len(texts),
        "human_checked_clips": sum(1 for _, t in rows if t and t.source == "human"),
        "ai_generated_clips": sum(1 for c, _ in rows if c.provenance == "ai"),
        "prepared": version_info,
        "versions": versions,
        "segments": len(segments),
        "kept_segments": len(kept),
        "training_segments": len(trainable),
        "training_duration_s": round(sum(g["duration"] for g in trainable), 2),
        "tier_basis": basis,
        "tier": tier,
        "lengths_s": _dist([g["duration"] for g in segments] if version else clip_secs),
        "snr_db": _dist([g["snr_db"] for g in segments]),
        "loudness_lufs": _dist([g["lufs"] for g in segments]),
        "markers": marker_counts(texts),
        "known_markers": list(KNOWN_TAGS),
        "diversity": {"sentence_mix": sentence_mix(texts), "words_per_clip": _dist([len(t.split()) for t in texts]),
                      "length_spread_s": _dist(clip_secs)},
        "speakers": speakers,
        "labels": label_dist,
        "label_min_seconds": LABEL_MIN_SECONDS,
        "tags": tag_stats,
        "lint": {str(cid): issues for cid, issues in lint_by_clip.items() if issues},
        "warnings": warnings,
        "prepared_clips": clip_outcomes(rows, segments, version_info),
        "_plot_data": {"lengths": [g["duration"] for g in segments] if version else clip_secs,
                       "snr": [g["snr_db"] for g in segments if g["snr_db"] is not None],
                       "lufs": [g["lufs"] for g in segments if g["lufs"] is not None]},
    }


def label_distributions(clips: list[tuple[dict, float]]) -> dict[str, dict]:
    """Per label: categories with their clips and audio, or a numeric label's range and bins.
    `clips` pairs each clip's labels with its (trimmed) seconds."""
    names = list(dict.fromkeys(name for labels, _ in clips for name in labels))
    out = {}
    for name in names:
        have = [(labels[name], secs) for labels, secs in clips if name in labels]
        numeric = [(v, secs) for v, secs in have if kind_of(v) == NUMERIC]
        d: dict = {"kind": "numeric" if len(numeric) == len(have) else "categorical",
                   "clips": len(have), "unlabelled_clips": len(clips) - len(have),
                   "seconds": round(sum(secs for _, secs in have), 2)}
        if d["kind"] == "numeric":
            values = [v for v, _ in numeric]
            lo, hi = min(values), max(values)
            width = (hi - lo) / NUMERIC_BINS
            bins = [{"from": round(lo + i * width, 4), "to": round(lo + (i + 1) * width, 4), "clips": 0, "seconds": 0.0}
                    for i in range(NUMERIC_BINS if width else 1)]
            for v, secs in numeric:
                b = bins[min(int((v - lo) / width), NUMERIC_BINS - 1) if width else 0]
                b["clips"] += 1
                b["seconds"] = round(b["seconds"] + secs, 2)
            d.update(min=lo, max=hi, mean=round(statistics.fmean(values), 4), bins=bins)
        else:
            values: dict[str, dict] = {}
            for v, secs in have:
                slot = values.setdefault(format_value(v), {"clips": 0, "seconds": 0.0})
                slot["clips"] += 1
                slot["seconds"] = round(slot["seconds"] + secs, 2)
            d["values"] = dict(sorted(values.items()))
        out[name] = d
    return out


def label_warnings(dist: dict[str, dict]) -> list[str]:
    why = f"under the {LABEL_MIN_SECONDS:.0f} s each value needs to learn its own conditioning"
    w = []
    for name, d in dist.items():
        if d["kind"] == "categorical":
            for value, v in d["values"].items():
                if len(d["values"]) > 1 and v["seconds"] < LABEL_MIN_SECONDS:  # one value alone conditions nothing
                    w.append(f"label {name}={value} has {v['seconds']:.0f} s of audio ({v['clips']} clip(s)), {why}")
        elif len(d["bins"]) == 1:
            w.append(f"label {name} is {format_value(d['min'])} on every labelled clip: a numeric label needs audio "
                     f"at both ends of its range to learn what it changes")
        else:
            for end, b in (("low", d["bins"][0]), ("high", d["bins"][-1])):
                if b["seconds"] < LABEL_MIN_SECONDS:
                    w.append(f"label {name} has {b['seconds']:.0f} s of audio at its {end} end "
                             f"({format_value(b['from'])}-{format_value(b['to'])}), {why}")
        if d["unlabelled_clips"]:
            w.append(f"label {name} is missing on {d['unlabelled_clips']} clip(s): label them or leave {name} out of "
                     f"training's conditions")
    return w


def tag_counts(texts: list[tuple], declared: list[str]) -> dict[str, dict]:
    """Each declared tag, and any other tag that is not one of Bark's markers: how often it occurs,
    in how many clips, and a few example clips. `texts` pairs each clip row with its transcript."""
    out = {f"[{t}]": {"declared": True, "count": 0, "clips": 0, "examples": []} for t in declared}
    for c, text in texts:
        found = Counter(tags(text))
        for tag, n in found.items():
            if tag in KNOWN_TAGS:
                continue
            slot = out.setdefault(tag, {"declared": False, "count": 0, "clips": 0, "examples": []})
            slot["count"] += n
            slot["clips"] += 1
            if len(slot["examples"]) < TAG_EXAMPLES:
                slot["examples"].append({"clip_id": c.id, "name": c.name, "text": text[:120]})
    return out


def tag_warnings(stats: dict[str, dict]) -> list[str]:
    w = []
    for tag, t in stats.items():
        if t["declared"] and t["clips"] < TAG_MIN_CLIPS:
            w.append(f"declared tag {tag} appears in {t['clips']} clip(s): under {TAG_MIN_CLIPS}, too few examples "
                     f"for training to tie the tag to a sound")
    return w


def clip_outcomes(rows, segments: list[dict], version_info: dict | None) -> list[dict]:
    """Per clip of the prepared version: its segments, each kept or dropped with the reason, or the
    reason the clip gave no segments at all."""
    if version_info is None:
        return []
    errors = {e["clip_id"]: e["error"] for e in version_info["stats"].get("clip_errors", [])}
    by_clip: dict[int, list[dict]] = {}
    for g in segments:
        by_clip.setdefault(g["clip_id"], []).append(
            {"index": g["index"], "start": g["start"], "end": g["end"], "duration": g["duration"],
             "snr_db": g["snr_db"], "kept": g["kept"], "reject_reason": g["reject_reason"]})
    out = []
    for c, _ in rows:
        segs = by_clip.get(c.id, [])
        note = errors.get(c.id) or (None if segs else "no speech found")
        out.append({"clip_id": c.id, "clip_name": c.name, "kept": sum(1 for g in segs if g["kept"]),
                    "segments": segs, "error": note})
    return out


def prepare_outcomes(db: Database, name: str) -> dict[int, str]:
    """Clip id -> its outcome line in the newest ready version ({} before any prepare)."""
    with db.read() as s:
        ds = get_dataset_row(s, name)
        version = latest_version(s, ds.id)
        if version is None:
            return {}
        rows = [(c, None) for c in s.scalars(select(Clip).where(Clip.dataset_id == ds.id, Clip.in_use()).order_by(Clip.id))]
        outcomes = clip_outcomes(rows, segments_with_text(s, ds.id, version.id), {"stats": version.stats})
    return {o["clip_id"]: outcome_line(o) for o in outcomes}


def outcome_line(outcome: dict) -> str:
    """One clip's prepare outcome in a line: '2/3 kept; dropped #1: snr 12.1 dB is under 20 dB'."""
    segs = outcome["segments"]
    if not segs:
        return f"not prepared: {outcome['error']}"
    dropped = [f"#{g['index'] + 1}: {g['reject_reason']}" for g in segs if not g["kept"]]
    line = f"{outcome['kept']}/{len(segs)} kept"
    return line + (f"; dropped {'; '.join(dropped)}" if dropped else "")


def _warnings(rows, lint_by_clip, version, segments, kept, trainable, speakers) -> list[str]:
    w = []
    ai = sum(1 for c, _ in rows if c.provenance == "ai")
    if ai:
        w.append(f"{ai} clip(s) are AI-generated audio: training on synthetic speech degrades (collapses) models; "
                 f"prefer human recordings")
    if not rows:
        w.append("no clips yet: import recordings")
    untranscribed = sum(1 for _, t in rows if not (t and t.text))
    if untranscribed:
        w.append(f"{untranscribed} clip(s) have no transcript: run transcribe or type them")
    machine = sum(1 for _, t in rows if t and t.text and t.source == "machine")
    if machine:
        w.append(f"{machine} transcript(s) are machine-made and not yet checked by a person")
    errors = sum(1 for issues in lint_by_clip.values()
                 if any(i["severity"] == "error" and i["code"] != "empty" for i in issues))
    if errors:
        w.append(f"{errors} transcript(s) have linter errors")
    if not version and rows:
        w.append("not prepared yet: run prepare to make 24 kHz segments")
    if version:
        rejected = len(segments) - len(kept)
        if rejected:
            w.append(f"{rejected} of {len(segments)} segment(s) were filtered out (low SNR or clipping)")
        no_text = len(kept) - len(trainable)
        if no_text:
            w.append(f"{no_text} kept segment(s) have no text (transcribe, then prepare again to cut on words)")
        clipped = sum(1 for g in segments if g["clipped_fraction"] > 0)
        if clipped:
            w.append(f"{clipped} segment(s) show clipping in the original recording")
    if len(speakers) > 1 and "(unlabelled)" in speakers:
        w.append("some clips have no speaker label in a multi-speaker set")
    return w


def plot_pngs(report: dict) -> dict[str, bytes]:
    """Histograms of segment length, SNR and loudness as PNG bytes (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    data = report["_plot_data"]
    specs = {"lengths": ("Length (s)", data["lengths"]), "snr": ("SNR (dB)", data["snr"]),
             "loudness": ("Loudness (LUFS)", data["lufs"])}
    out = {}
    for key, (label, values) in specs.items():
        fig = histogram_figure(Figure, label, values)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        out[key] = buf.getvalue()
    return out


def histogram_figure(figure_cls, label: str, values: list[float]):
    fig = figure_cls(figsize=(4, 2.6), dpi=100)
    ax = fig.add_subplot()
    if values:
        ax.hist(values, bins=min(30, max(5, len(values))), color="#4b7bec", edgecolor="white")
        if max(values) - min(values) < 1:  # equal values (normalised loudness): a readable 2-unit span
            mid = (max(values) + min(values)) / 2
            ax.set_xlim(mid - 1, mid + 1)
    else:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)  # -20, not "-2e1" plus offsets
    ax.set_xlabel(label)
    ax.set_ylabel("count")
    fig.tight_layout(rect=(0, 0, 1, 0.88))  # room at the top for the label the page lays over it
    return fig


def public(report: dict) -> dict:
    """The report without its private plot data (what --json prints)."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def summary_markdown(report: dict) -> str:
    t = report["tier"]
    lines = [f"**{report['dataset']['name']}**: {report['clips']} clips, {report['raw_duration_s'] / 60:.1f} min raw; "
             f"{report['training_segments']} training segments, {report['training_duration_s'] / 60:.1f} min"
             + (f" (version {report['prepared']['version']})" if report["prepared"] else ""),
             *([f"Excluded: {report['excluded_clips']} clip(s), left out of this report, prepare and training"]
               if report.get("excluded_clips") else []),
             f"Tier ({report['tier_basis']}): **{t['tier']}**"
             + (f"; next: {t['next']['tier']} needs {t['next']['needs_seconds'] / 60:.1f} more min and "
                f"{t['next']['needs_clips']} more clips" if t.get("next") else ""),
             f"Transcribed: {report['transcribed_clips']} ({report['human_checked_clips']} human-checked)"]
    if report["markers"]:
        lines.append("Markers: " + ", ".join(f"{k}: {v}" for k, v in report["markers"].items()))
    else:
        lines.append("Markers: none")
    mix = report["diversity"]["sentence_mix"]
    if mix:
        lines.append("Sentences: " + ", ".join(f"{k} {v}" for k, v in sorted(mix.items())))
    if report["speakers"]:
        lines.append("Speakers: " + ", ".join(f"{k} ({v['clips']})" for k, v in report["speakers"].items()))
    lines += label_lines(report.get("labels") or {}) + tag_lines(report.get("tags") or {})
    for key, label in (("lengths_s", "Length s"), ("snr_db", "SNR dB"), ("loudness_lufs", "LUFS")):
        d = report[key]
        if d.get("n"):
            lines.append(f"{label}: min {d['min']}, median {d['median']}, max {d['max']} (n={d['n']})")
    for w in report["warnings"]:
        lines.append(f"⚠ {w}")
    for v in report.get("versions", []):
        if v["status"] == "interrupted":
            lines.append(f"⚠ version {v['version']} was interrupted: {v['interrupted']}")
    if report.get("prepared_clips"):
        lines.append("Prepared clips:\n" + "\n".join(f"- {o['clip_name']}: {outcome_line(o)}"
                                                       for o in report["prepared_clips"]))
    return "\n\n".join(lines)


def label_lines(dist: dict[str, dict]) -> list[str]:
    lines = []
    for name, d in dist.items():
        if d["kind"] == "categorical":
            parts = [f"{v} {x['clips']} clip(s) {x['seconds'] / 60:.1f} min" for v, x in d["values"].items()]
        else:
            parts = [f"{format_value(d['min'])}..{format_value(d['max'])} (mean {format_value(d['mean'])})"]
            parts += [f"{format_value(b['from'])}-{format_value(b['to'])}: {b['clips']} clip(s) {b['seconds'] / 60:.1f} min"
                      for b in d["bins"]]
        lines.append(f"Label {name} ({d['kind']}): " + "; ".join(parts))
    return lines


def tag_lines(stats: dict[str, dict]) -> list[str]:
    lines = []
    for tag, t in stats.items():
        examples = ", ".join(f"{e['name']} (clip {e['clip_id']})" for e in t["examples"])
        lines.append(f"Tag {tag}{'' if t['declared'] else ' (not declared)'}: {t['count']} time(s) in "
                     f"{t['clips']} clip(s)" + (f", e.g. {examples}" if examples else ""))
    return lines
