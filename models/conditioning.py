"""Label conditioning: one learned vector per speaker (or category of any categorical label) and
two endpoint vectors per numeric label, trained jointly with one shared LoRA.

Where it enters Bark (the same in training and in both generation engines; the builders are
models.layouts.with_condition / coarse_embeds / fine_logits, parity-tested like the layouts):
- semantic: added to the summed text + history embeddings (the 256 prefix positions);
- coarse:   added to the prompt's semantic window and infer token (its first 257 positions);
  the coarse history and the generated tokens are left alone, so a window that continues the
  previous window's KV cache sees exactly what a fresh prompt sees;
- fine:     added at every position of the 1024-frame window (one forward per codebook).
Decode steps of the causal stages take plain token embeddings.

A condition value becomes a weight per table row (`weights`): a speaker one-hot, a mix
{alice: 0.7, bob: 0.3} its normalised weights, a numeric value v in [lo, hi] the pair
(1 - a, a) on its endpoints with a = (v - lo) / (hi - lo). A stage's vector is weights @ table.
Several labels add their vectors. A label left out contributes nothing.

On disk: the adapter manifest's "conditioning" entry lists the labels (names, categories, numeric
ranges); each trained stage's folder holds conditioning.safetensors ({"table": (rows, hidden)}).
The vectors are never merged into weights: generation adds them at run time.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from models.errors import ModelInputError

CATEGORICAL, NUMERIC = "categorical", "numeric"
TABLE_FILE = "conditioning.safetensors"
_ATTR = "_studio_conditioning"  # bark.__dict__ entry (not a registered submodule: the stage weights stay Bark's own)


@dataclass
class LabelSpec:
    """One label an adapter is conditioned on: its categories, or its numeric range."""
    name: str
    kind: str                                   # categorical | numeric
    categories: list[str] = field(default_factory=list)
    lo: float = 0.0
    hi: float = 1.0

    @property
    def n_rows(self) -> int:
        return len(self.categories) if self.kind == CATEGORICAL else 2

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.kind == CATEGORICAL:
            d.pop("lo"), d.pop("hi")
        else:
            d.pop("categories")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LabelSpec":
        return cls(name=d["name"], kind=d["kind"], categories=list(d.get("categories") or []),
                   lo=float(d.get("lo", 0.0)), hi=float(d.get("hi", 1.0)))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def label_specs(names, labels: list[dict]) -> list[LabelSpec]:
    """The specs for conditioning on `names`, read from the clips' labels: a label whose values
    are all numbers is numeric (its range is theirs; `speaker` is always categorical), any other
    categorical (its categories sorted)."""
    specs = []
    for name in dict.fromkeys(names):
        values = [lab.get(name) for lab in labels if lab.get(name) not in (None, "")]
        if not values:
            raise ModelInputError(f"--condition {name}: no clip carries the label {name!r}; label the clips first")
        if name != "speaker" and all(_is_number(v) for v in values):
            lo, hi = float(min(values)), float(max(values))
            if lo == hi:
                raise ModelInputError(f"--condition {name}: every clip has {name}={lo:g}; a numeric label needs "
                                      f"at least two different values")
            specs.append(LabelSpec(name, NUMERIC, lo=lo, hi=hi))
        else:
            categories = sorted({str(v) for v in values})
            specs.append(LabelSpec(name, CATEGORICAL, categories=categories))
    return specs


class Conditioning(torch.nn.Module):
    """The tables of one adapter: per stage a (rows, hidden) parameter, rows = every label's
    categories or endpoints in spec order. Zero at the start of training (the student starts as
    the base)."""

    def __init__(self, specs: list[LabelSpec], hidden: dict[str, int], scale: float = 1.0):
        super().__init__()
        self.specs = list(specs)
        self.scale = float(scale)  # the adapter's scale at generation (0 = base, 1 = as trained)
        self.offsets, n = {}, 0
        for spec in self.specs:
            self.offsets[spec.name] = n
            n += spec.n_rows
        self.n_rows = n
        self.tables = torch.nn.ParameterDict({s: torch.nn.Parameter(torch.zeros(n, h)) for s, h in hidden.items()})

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def weights(self, values: dict | None, source: str = "") -> torch.Tensor:
        """(rows,) float32 for one condition: {label: category | {category: weight} | number}.
        A label it does not carry, an unknown category or a number outside the range is refused
        with one line naming it."""
        w = torch.zeros(self.n_rows)
        where = f"{source}: " if source else ""
        by_name = {s.name: s for s in self.specs}
        for name, value in (values or {}).items():
            if value is None or value == "" or value == {}:
                continue
            spec = by_name.get(name)
            if spec is None:
                if source:  # a clip's other labels are not conditioned on: ignored in training
                    continue
                raise ModelInputError(f"unknown label {name!r}: this adapter is conditioned on "
                                      f"{', '.join(self.names) or 'nothing'}")
            at = self.offsets[name]
            if spec.kind == CATEGORICAL:
                mix = value if isinstance(value, dict) else {str(value): 1.0}
                total = 0.0
                for category, weight in mix.items():
                    if str(category) not in spec.categories:
                        raise ModelInputError(f"{where}unknown {name} {str(category)!r}; this adapter knows "
                                              f"{', '.join(spec.categories)}")
                    if not _is_number(weight) or weight <= 0:
                        raise ModelInputError(f"{where}{name} {category}: the weight must be a number > 0, got {weight!r}")
                    total += float(weight)
                for category, weight in mix.items():
                    w[at + spec.categories.index(str(category))] += float(weight) / total
            else:
                if not _is_number(value):
                    raise ModelInputError(f"{where}{name} is a numeric label ({spec.lo:g}..{spec.hi:g}); got {value!r}")
                v = float(value)
                if not spec.lo <= v <= spec.hi:
                    raise ModelInputError(f"{where}{name}={v:g} is outside the trained range {spec.lo:g}..{spec.hi:g}")
                a = (v - spec.lo) / (spec.hi - spec.lo)
                w[at], w[at + 1] = 1.0 - a, a
        return w

    def vectors(self, stage: str, weights: torch.Tensor) -> torch.Tensor:
        """(B, rows) weights -> (B, hidden) vectors for `stage` (times the adapter's scale)."""
        table = self.tables[stage]
        out = weights.to(device=table.device, dtype=table.dtype) @ table
        return out * self.scale if self.scale != 1.0 else out

    def manifest(self) -> dict:
        return {"labels": [s.to_dict() for s in self.specs]}

    def save_stage(self, stage: str, folder: Path) -> None:
        from safetensors.torch import save_file

        save_file({"table": self.tables[stage].detach().float().contiguous().cpu()}, str(Path(folder) / TABLE_FILE))


def attach(bark, conditioning: Conditioning | None) -> None:
    """Make `conditioning` the one `bark` trains or generates with (None takes it off)."""
    if conditioning is None:
        bark.__dict__.pop(_ATTR, None)
    else:
        bark.__dict__[_ATTR] = conditioning


def attached(bark) -> Conditioning | None:
    return bark.__dict__.get(_ATTR)


def load(folder, manifest: dict, scale: float = 1.0) -> Conditioning | None:
    """The conditioning an adapter folder carries (None for an adapter trained without it)."""
    entry = manifest.get("conditioning")
    if not entry:
        return None
    from safetensors.torch import load_file

    specs = [LabelSpec.from_dict(d) for d in entry["labels"]]
    tables = {}
    for stage in manifest["stages"]:
        path = Path(folder) / stage / TABLE_FILE
        try:
            tables[stage] = load_file(str(path))["table"]
        except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds
            raise ModelInputError(f"adapter {str(folder)!r}: cannot read {stage}/{TABLE_FILE}: {exc}") from exc
    cond = Conditioning(specs, {s: t.shape[1] for s, t in tables.items()}, scale=scale)
    with torch.no_grad():
        for s, t in tables.items():
            if t.shape[0] != cond.n_rows:
                raise ModelInputError(f"adapter {str(folder)!r}: {s}/{TABLE_FILE} has {t.shape[0]} rows, "
                                      f"its labels need {cond.n_rows}")
            cond.tables[s].copy_(t)
    return cond.requires_grad_(False)


def request_vectors(conditioning: Conditioning | None, conditions: list[dict | None], stages) -> dict | None:
    """Per stage (B, hidden) vectors for generation rows (`conditions[i]` None: no label, a zero
    vector), or None when the model carries no conditioning. A condition for a model without it
    is refused."""
    if conditioning is None:
        if any(conditions):
            raise ModelInputError("--speaker/--label need an adapter trained with --condition; "
                                  "the chosen model and adapters carry no label conditioning")
        return None
    weights = torch.stack([conditioning.weights(c) for c in conditions])
    return {s: conditioning.vectors(s, weights) for s in stages if s in conditioning.tables}
