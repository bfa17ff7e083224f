"""Expanding a sweep request into the list of generations it makes. Pure: no database, no model.

A request names fixed parameters (model, voice, adapter, temperatures, prompts, seeds) and axes
to sweep. Besides the named axes, an adapter trained with --condition sweeps `speaker_mix` (t from
0 = all of one speaker to 1 = all of the other, `speaker_mix: [a, b]` on the request) and any
numeric label as `label:NAME`. `grid` makes every combination; `random` draws `n` points (numeric axes given as
[low, high] ranges are drawn uniformly; listed axes are drawn from their lists), seeded."""
from __future__ import annotations

import itertools
import random
from typing import Any

from studio import conditioning
from studio.errors import UserError
from studio.inference import DEFAULT_MODEL, inference_options

TEMPERATURES = ("semantic_temperature", "coarse_temperature", "fine_temperature")
AXES = (*TEMPERATURES, "adapter_scale", "adapter_mix", "prompt", "seed", "arm")
NUMERIC = (*TEMPERATURES, "adapter_scale", "seed")
SPEAKER_MIX, LABEL_AXIS = "speaker_mix", "label:"  # the conditioning axes: speaker_mix and label:NAME
DEFAULTS = {"semantic_temperature": 0.7, "coarse_temperature": 0.7, "fine_temperature": 0.5}  # suno's defaults
MAX_POINTS = 2000


def _check_value(axis: str, value: Any) -> Any:
    if axis in TEMPERATURES:
        v = float(value)
        if not 0.0 <= v <= 5.0:
            raise UserError(f"{axis} {v} is outside 0..5")
        return v
    if axis == "adapter_scale":
        v = float(value)
        if not -4.0 <= v <= 8.0:
            raise UserError(f"adapter_scale {v} is outside -4..8")
        return v
    if axis == "seed":
        return int(value)
    if axis == SPEAKER_MIX:
        v = float(value)
        if not 0.0 <= v <= 1.0:
            raise UserError(f"speaker_mix t={v:g} is outside 0..1 (0: the first speaker, 1: the second)")
        return v
    if axis.startswith(LABEL_AXIS):
        return float(value)
    return value


def is_axis(name: str) -> bool:
    return name in AXES or name == SPEAKER_MIX or (name.startswith(LABEL_AXIS) and len(name) > len(LABEL_AXIS))


def is_numeric(name: str) -> bool:
    return name in NUMERIC or name == SPEAKER_MIX or name.startswith(LABEL_AXIS)


def normalize(request: dict) -> dict:
    """Check a sweep request and fill defaults. Returns the request as stored on the sweep row."""
    mode = request.get("mode", "grid")
    if mode not in ("grid", "random"):
        raise UserError(f"sweep mode {mode!r}: use grid or random")
    axes = dict(request.get("axes") or {})
    prompts = [p for p in request.get("prompts") or [] if p and p.strip()]
    if "prompt" not in axes:
        if not prompts:
            raise UserError("a sweep needs at least one prompt")
        axes["prompt"] = prompts
    if "seed" not in axes:
        axes["seed"] = list(request.get("seeds") or [0])
    for axis in axes:
        if not is_axis(axis):
            raise UserError(f"unknown sweep axis {axis!r}; sweepable: {', '.join(AXES)}, speaker_mix, label:NAME")
    ranges = dict(request.get("ranges") or {})
    for axis, rng in ranges.items():
        if not is_numeric(axis) or axis == "seed":
            raise UserError(f"axis {axis!r} cannot take a range; ranges work for {', '.join(NUMERIC[:-1])}, "
                            f"speaker_mix and label:NAME")
        if mode != "random":
            raise UserError(f"a range for {axis} needs --random N (a grid takes listed values)")
        lo, hi = (float(x) for x in rng)
        if lo > hi:
            raise UserError(f"range for {axis}: low {lo} is above high {hi}")
        _check_value(axis, lo), _check_value(axis, hi)
        ranges[axis] = [lo, hi]
    for axis, values in axes.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"axis {axis!r} needs a non-empty list of values")
        axes[axis] = [_check_value(axis, v) for v in values]
    if ("adapter_scale" in axes or "adapter_scale" in ranges) and not request.get("adapter"):
        raise UserError("sweeping adapter_scale needs an adapter (--adapter PATH)")
    mixes = request.get("mixes") or {}
    if "adapter_mix" in axes:
        missing = [m for m in axes["adapter_mix"] if m not in mixes]
        if missing:
            raise UserError(f"adapter_mix values {missing} are not defined mixes (--mix NAME=PATH:SCALE+...)")
    arms = {a["name"]: a for a in request.get("arms") or []}
    if "arm" in axes:
        missing = [a for a in axes["arm"] if a not in arms]
        if missing:
            raise UserError(f"arms {missing} are not arms of the experiment ({', '.join(arms) or 'none'})")
    ends = request.get("speaker_mix")
    if SPEAKER_MIX in axes or SPEAKER_MIX in ranges:
        if not (isinstance(ends, list) and len(ends) == 2 and all(isinstance(e, str) and e for e in ends)
                and ends[0] != ends[1]):
            raise UserError("the speaker_mix axis needs its two speakers: --axis speaker_mix=alice:bob:STEPS")
    engine, precision = inference_options(request)
    n = int(request.get("n") or 0)
    if mode == "random" and n < 1:
        raise UserError("a random sweep needs n >= 1 points")
    out = {**request, "mode": mode, "axes": axes, "ranges": ranges, "mixes": mixes, "n": n,
           "engine": engine, "precision": precision,
           "model": request.get("model") or DEFAULT_MODEL, "batch_size": max(1, int(request.get("batch_size") or 4))}
    if len(points(out)) > MAX_POINTS:
        raise UserError(f"the sweep makes {len(points(out))} outputs; the limit is {MAX_POINTS}")
    return out


def swept(request: dict) -> list[str]:
    """The axes that vary (more than one value, or a range)."""
    return [a for a, v in request["axes"].items() if len(v) > 1] + list(request.get("ranges") or {})


def points(request: dict) -> list[dict]:
    """Each output's axis values, in a stable order."""
    axes, ranges = request["axes"], request.get("ranges") or {}
    if request["mode"] == "grid":
        names = list(axes)
        return [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]
    rng = random.Random(int(request.get("random_seed") or 0))
    out = []
    for _ in range(request["n"]):
        p = {a: rng.choice(v) for a, v in axes.items()}
        for a, (lo, hi) in ranges.items():
            p[a] = round(rng.uniform(lo, hi), 4)
        out.append(p)
    return out


def generation_params(request: dict, point: dict) -> dict:
    """Everything that reproduces one output: model, voice, adapters with scales, text, seed, temperatures,
    engine and precision (the sweep job stores the precision 'auto' resolved to). Stored params
    without engine/precision (older sweeps) were made by the reference engine in fp32."""
    arm = next((a for a in request.get("arms") or [] if a["name"] == point.get("arm")), None)
    model = (arm or {}).get("model") or request["model"]
    voice = (arm or {}).get("voice") if arm else request.get("voice")
    adapters = [dict(a) for a in (arm or {}).get("adapters") or []] if arm else []
    if not arm and request.get("adapter"):
        adapters = [{"path": request["adapter"], "scale": float(request.get("adapter_scale_fixed", 1.0))}]
    if "adapter_scale" in point:
        adapters = [{"path": request["adapter"], "scale": float(point["adapter_scale"])}]
    if "adapter_mix" in point:
        adapters = [dict(a) for a in request["mixes"][point["adapter_mix"]]]
    speaker = (arm or {}).get("speaker") if arm else request.get("speaker")
    labels = dict(((arm or {}).get("labels") if arm else request.get("labels")) or {})
    if SPEAKER_MIX in point:
        speaker = conditioning.between(*request["speaker_mix"], float(point[SPEAKER_MIX]))
    labels.update({axis[len(LABEL_AXIS):]: float(v) for axis, v in point.items() if axis.startswith(LABEL_AXIS)})
    params = {"model": model, "voice": voice, "adapters": adapters, "text": point["prompt"],
              "seed": int(point["seed"]), "arm": point.get("arm") or (arm or {}).get("name") or "",
              "max_new_semantic": request.get("max_new_semantic"),
              "engine": request.get("engine") or "fast", "precision": request.get("precision") or "auto"}
    for t in TEMPERATURES:
        params[t] = float(point.get(t, request.get(t, DEFAULTS[t])))
    params.update({k: v for k, v in (("speaker", speaker), ("labels", labels)) if v})
    for axis in point:
        if axis in ("adapter_scale", "adapter_mix", SPEAKER_MIX) or axis.startswith(LABEL_AXIS):
            params[axis] = point[axis]
    return params
