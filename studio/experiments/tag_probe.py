"""The tag probe: what an adapter learned for each tag its dataset declares.

Each declared tag is generated in fixed carrier sentences ("[thunder] Well, here we are again."),
and the same sentence without the tag is the control; both with the adapter and with its base
model, on the same seeds. What changed is measured around the tag:

- The window. Bark has no text-to-audio alignment, so the tag's place in the semantic tokens is
  estimated proportionally: the tag starts at character c of an n-character text, so its window
  starts at semantic token round(S * c / n) of the S generated, and runs WINDOW_S seconds at
  49.9 tokens/s (clipped to the take). The control's window starts where the words after the tag
  start in the control text. A take too short for a window is measured whole ("whole take").
- The measures, in the window: loudness, non-speech share (silero VAD) and the emergent
  descriptors of models/metrics/descriptors.py, plus two token measures: the share of semantic
  tokens equal to the one before (a held or looped sound repeats tokens) and the window's length.

Torch-free: the job (workers/handlers/tag_probe.py) generates and measures; this module plans the
takes, places the windows and tabulates the results."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import fmean

from studio.errors import UserError
from studio.workspace import Workspace

KIND = "tag_probe"
TAG_SLOT = "{tag}"
CARRIERS = ("{tag} Well, here we are again.", "We waited. {tag} Then it stopped.")
SEMANTIC_RATE_HZ = 49.9  # models.constants.SEMANTIC_RATE_HZ: one semantic token per 1/49.9 s
WINDOW_S = 1.0
MIN_WINDOW_S = 0.4  # loudness (BS.1770) needs 0.4 s; a shorter window falls back to the whole take
PROPORTIONAL = f"proportional (tag's text position -> semantic tokens at {SEMANTIC_RATE_HZ} Hz, {WINDOW_S:g} s window)"
WHOLE_TAKE = "whole take (too short for a window)"
WHOLE_SPLIT = "whole take (a long carrier was generated in several passes)"
# Shown in the table, in this order: the three first, then the token measures.
MEASURES = ("loudness_lufs", "nonspeech_share", "music_likeness", "harmonicity", "silence_share",
            "repetition", "token_repetition", "window_s", "take_s")
ARMS = ("base", "adapter")
MAX_SEEDS = 16


@dataclass(frozen=True)
class Take:
    """One generation of the probe: a tag in a carrier (or its control), with or without the adapter."""
    tag: str            # bracket-free, as declared
    carrier: int        # index into the carriers
    seed: int
    with_tag: bool      # False: the control (the carrier without the tag)
    arm: str            # "base" or "adapter"
    text: str
    anchor: int         # character where the tag (control: the words after it) starts

    @property
    def key(self) -> str:
        return f"{self.arm}-{'tag' if self.with_tag else 'control'}-{self.tag}-c{self.carrier}-s{self.seed}"


def carrier_text(carrier: str, tag: str | None) -> tuple[str, int]:
    """(text, anchor): the carrier with `[tag]` in its slot, or without it (tag None: the control),
    and the character where the tag, or in the control the words after it, start."""
    if carrier.count(TAG_SLOT) != 1:
        raise UserError(f"carrier {carrier!r} must hold {TAG_SLOT} exactly once (where the tag goes)")
    before, after = carrier.split(TAG_SLOT)
    before, after = before.rstrip(), after.lstrip()
    lead = f"{before} " if before else ""
    text = f"{lead}[{tag}] {after}" if tag is not None else f"{lead}{after}"
    return text.strip(), len(lead)


def plan(tags: list[str], seeds: list[int], carriers: tuple[str, ...] | list[str] = CARRIERS) -> list[Take]:
    """Every take of a probe: tag x carrier x seed x (with tag, control) x (base, adapter)."""
    takes = []
    for tag in tags:
        for ci, carrier in enumerate(carriers):
            for with_tag in (True, False):
                text, anchor = carrier_text(carrier, tag if with_tag else None)
                takes += [Take(tag, ci, int(s), with_tag, arm, text, anchor) for arm in ARMS for s in seeds]
    return takes


def window(text: str, anchor: int, n_tokens: int) -> tuple[int, int, str]:
    """(first token, end token, alignment) of the window in a take of `n_tokens` semantic tokens."""
    size = round(WINDOW_S * SEMANTIC_RATE_HZ)
    start = min(round(n_tokens * anchor / max(len(text), 1)), n_tokens)
    end = min(start + size, n_tokens)
    if (end - start) / SEMANTIC_RATE_HZ < MIN_WINDOW_S:
        start = max(0, end - size)  # a tag near the end: the last second instead
    if (end - start) / SEMANTIC_RATE_HZ < MIN_WINDOW_S:
        return 0, n_tokens, WHOLE_TAKE
    return start, end, PROPORTIONAL


def token_repetition(tokens) -> float | None:
    """Share of tokens equal to the one before (None for fewer than two)."""
    tokens = list(tokens)
    if len(tokens) < 2:
        return None
    return sum(a == b for a, b in zip(tokens, tokens[1:])) / (len(tokens) - 1)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return fmean(values) if values else None


def _diff(a, b) -> float | None:
    return None if a is None or b is None else a - b


def table(takes: list[dict]) -> list[dict]:
    """One row per (tag, measure): the mean over carriers and seeds of each of the four cells
    (base/adapter x control/tag), and the tag's effect (tag - control) under each. `takes` are
    the job's take records: tag, arm, with_tag, measures."""
    rows = []
    for tag in dict.fromkeys(t["tag"] for t in takes):
        mine = [t for t in takes if t["tag"] == tag and not t.get("error")]
        for measure in MEASURES:
            cell = {f"{arm}_{'tag' if w else 'control'}": _mean(t["measures"].get(measure) for t in mine
                                                                 if t["arm"] == arm and t["with_tag"] == w)
                    for arm in ARMS for w in (False, True)}
            if all(v is None for v in cell.values()):
                continue
            rows.append({"tag": tag, "measure": measure, **cell,
                         "tag_effect_adapter": _diff(cell["adapter_tag"], cell["adapter_control"]),
                         "tag_effect_base": _diff(cell["base_tag"], cell["base_control"])})
    return rows


TABLE_COLUMNS = ("tag", "measure", "base_control", "base_tag", "adapter_control", "adapter_tag",
                 "tag_effect_base", "tag_effect_adapter")


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))


def table_text(result: dict) -> str:
    """The probe's table as aligned text (the CLI's summary)."""
    head = [f"tag probe of adapter {result['adapter']} (dataset {result.get('dataset') or '-'}): "
            f"{len(result['takes'])} takes; window: {', '.join(result['alignments']) or '-'}"]
    grid = [list(TABLE_COLUMNS)] + [[_fmt(r.get(c)) for c in TABLE_COLUMNS] for r in result["table"]]
    widths = [max(len(row[i]) for row in grid) for i in range(len(TABLE_COLUMNS))]
    return "\n".join(head + ["  ".join(x.ljust(w) for x, w in zip(row, widths)) for row in grid])


# --- what to probe ------------------------------------------------------------------------------

def probe_request(ws: Workspace, adapter: str, tags: list[str] | None = None, seeds: int = 2,
                  carriers: list[str] | None = None, max_new_semantic: int | None = None) -> dict:
    """The job's parameters, checked: the adapter exists, its dataset declares tags, the chosen
    tags are among them, the seeds and carriers make sense. Bad input fails here, before a job row."""
    from studio import training
    from studio.datasets.store import get_dataset

    row = training.get_adapter(ws, adapter)
    if not row.get("dataset"):
        raise UserError(f"adapter {row['name']!r} records no dataset, so it has no declared tags to probe")
    declared = get_dataset(ws.db, row["dataset"])["tags"]
    if not declared:
        raise UserError(f"dataset {row['dataset']!r} of adapter {row['name']!r} declares no tags "
                        f"(declare them with `bark-studio dataset tags {row['dataset']} --add NAME`)")
    wanted = [t.strip().removeprefix("[").removesuffix("]").strip() for t in (tags or []) if t.strip()] or declared
    unknown = [t for t in wanted if t not in declared]
    if unknown:
        raise UserError(f"dataset {row['dataset']!r} does not declare {', '.join(f'[{t}]' for t in unknown)} "
                        f"(declared: {', '.join(f'[{t}]' for t in declared)})")
    if not 1 <= int(seeds) <= MAX_SEEDS:
        raise UserError(f"seeds must be 1..{MAX_SEEDS}, got {seeds}")
    carriers = list(carriers or CARRIERS)
    for c in carriers:
        carrier_text(c, None)
    if max_new_semantic is not None and not 1 <= int(max_new_semantic) <= 768:
        raise UserError(f"max new semantic tokens must be 1..768, got {max_new_semantic}")
    return {"adapter": row["name"], "adapter_path": row["path"], "model": row["base_model"],
            "dataset": row["dataset"], "tags": list(dict.fromkeys(wanted)), "seeds": list(range(int(seeds))),
            "carriers": carriers, "max_new_semantic": max_new_semantic}


def take_record(take: Take, **fields) -> dict:
    return {**asdict(take), "key": take.key, **fields}


def probes(ws: Workspace, adapter: str | None = None, limit: int = 20) -> list[dict]:
    """Finished tag-probe jobs, newest first (optionally of one adapter): the job rows with results."""
    from studio import jobs

    rows = [j for j in jobs.list_jobs(ws.db, kind=KIND, limit=200)
            if j["status"] == "succeeded" and j.get("result")]
    if adapter:
        rows = [j for j in rows if j["result"].get("adapter") == adapter]
    return rows[:limit]
