"""How a generation names its label conditioning (an adapter trained with --condition), one
definition for every place that asks for it: `generate --speaker/--label`, an experiment arm's
`speaker=`/`label=`, a listening-session system and a sweep's fixed values and axes.

Stored on a job's params as {"speaker": {"alice": 0.7, "bob": 0.3}, "labels": {"accent": 0.35}};
`condition` turns those params into what models.generation.Request takes. The model checks the
names and ranges against the adapter's manifest (models.conditioning) when it loads. No torch."""
from __future__ import annotations

from studio.errors import UserError


def speaker_mix(specs, where: str = "--speaker") -> dict[str, float]:
    """['alice:0.7', 'bob:0.3'] (or 'alice') -> {'alice': 0.7, 'bob': 0.3}."""
    mix: dict[str, float] = {}
    for spec in specs:
        name, _, weight = spec.partition(":")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise UserError(f"{where} {spec}: the weight after ':' must be a number") from None
        if not name.strip() or value <= 0 or name.strip() in mix:
            raise UserError(f"{where} {spec}: give each speaker once as NAME or NAME:WEIGHT with a weight > 0")
        mix[name.strip()] = value
    return mix


def label_value(spec: str, where: str = "--label") -> tuple[str, object]:
    """'accent=0.35' -> ('accent', 0.35); a value that reads as a number is one."""
    name, eq, raw = spec.partition("=")
    if not eq or not name.strip() or not raw.strip():
        raise UserError(f"{where} {spec}: write NAME=VALUE, e.g. accent=0.35")
    try:
        return name.strip(), float(raw)
    except ValueError:
        return name.strip(), raw.strip()


def condition_params(speakers, labels, where_speaker: str = "--speaker", where_label: str = "--label") -> dict:
    """--speaker alice:0.7 --speaker bob:0.3 --label accent=0.35 -> {"speaker": {"alice": 0.7, "bob":
    0.3}, "labels": {"accent": 0.35}}; keys without values are left out."""
    mix = speaker_mix(speakers, where_speaker)
    values = dict(label_value(spec, where_label) for spec in labels)
    return {k: v for k, v in (("speaker", mix), ("labels", values)) if v}


def condition(params: dict) -> dict | None:
    """A job's `speaker`/`labels` params -> the condition a generation Request takes (None: none)."""
    return {**({"speaker": params["speaker"]} if params.get("speaker") else {}), **(params.get("labels") or {})} or None


def between(a: str, b: str, t: float) -> dict[str, float]:
    """The speaker mix at t along a -> b (t = 0: all a, 1: all b); a zero weight is left out."""
    return {name: w for name, w in ((a, round(1.0 - t, 6)), (b, round(t, 6))) if w > 0}
