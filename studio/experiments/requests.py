"""How a sweep is asked for, for the CLI (`bark-studio sweep --axis ... --range ... --mix ...`) and
the Experiments tab's launcher alike: the `NAME=V1,V2` / `NAME=LOW:HIGH` / `NAME=PATH:SCALE+...`
parsers, audio file and text lists, and the estimate of what a request costs before it is
launched (grid size, and time from the newest sweep measured on this workspace). No torch."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from sqlalchemy import select

from models.names import AUDIO_SUFFIXES
from studio import jobs
from studio.datasets import labels
from studio.db import Database
from studio.errors import NotFound, UserError
from studio.experiments import arms as arm_specs
from studio.experiments import grid
from studio.train_cost import duration_text

TEXT_AXES = ("adapter_mix", "prompt", "arm")  # axes whose values are names, not numbers
# Seconds per output until a sweep on this workspace measures it: a rough CPU figure per model.
GUESS_SECONDS_PER_OUTPUT = {"tiny": 1.0, "small": 25.0, "suno/bark-small": 25.0, "large": 60.0, "suno/bark": 60.0}


def audio_files(items) -> list[str]:
    """Files as given; folders expand to their audio files, sorted by name."""
    out = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(str(f.resolve()) for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise UserError(f"{item}: the folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            out += found
        elif p.is_file():
            out.append(str(p.resolve()))
        else:
            raise UserError(f"{item}: no such file or folder")
    return out


def texts(given, texts_file: str | None = None) -> list[str]:
    if texts_file:
        path = Path(texts_file)
        if not path.is_file():
            raise UserError(f"{texts_file}: no such texts file")
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(given)


def _steps(spec: str, lo: float, hi: float, n: str) -> list[float]:
    try:
        count = int(n)
    except ValueError:
        count = 0
    if count < 2:
        raise UserError(f"--axis {spec!r}: the number of steps after the last ':' must be a whole number >= 2")
    return [round(lo + (hi - lo) * k / (count - 1), 6) for k in range(count)]


def parse_axis(spec: str) -> tuple[str, list]:
    """NAME=V1,V2,... -> (name, values); numbers except for the named axes. A numeric axis also
    takes NAME=LOW:HIGH:STEPS (label:accent=0:1:5), and speaker_mix=A:B:STEPS sweeps t = 0..1 from
    speaker A to speaker B (speaker_mix_ends gives A and B)."""
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or not values.strip():
        raise UserError(f"--axis {spec!r}: write NAME=V1,V2,... (e.g. semantic_temperature=0.5,0.7,1.0)")
    if name.startswith(grid.LABEL_AXIS) and not labels.NAME_RE.match(name[len(grid.LABEL_AXIS):]):
        raise UserError(f"--axis {spec!r}: write label:NAME=LOW:HIGH:STEPS with the name of a numeric label "
                        f"(e.g. label:accent=0:1:5)")
    if name == grid.SPEAKER_MIX:
        parts = values.split(":")
        if len(parts) != 3 or not parts[0].strip() or not parts[1].strip():
            raise UserError(f"--axis {spec!r}: write speaker_mix=FROM:TO:STEPS (e.g. speaker_mix=alice:bob:5)")
        return name, _steps(spec, 0.0, 1.0, parts[2])
    if ":" in values and name not in TEXT_AXES:
        lo, _, rest = values.partition(":")
        hi, _, n = rest.partition(":")
        try:
            return name, _steps(spec, float(lo), float(hi), n)
        except ValueError:
            raise UserError(f"--axis {spec!r}: write NAME=LOW:HIGH:STEPS with numbers (e.g. label:accent=0:1:5)") from None
    raw = [v.strip() for v in values.split(",") if v.strip()]
    try:
        vals = [float(v) if name not in TEXT_AXES else v for v in raw]
    except ValueError:
        raise UserError(f"--axis {spec!r}: values must be numbers") from None
    return name, vals


def speaker_mix_ends(specs) -> list[str] | None:
    """The two speakers of a `speaker_mix=A:B:STEPS` axis among the --axis specs (None: no such axis)."""
    for spec in specs:
        name, _, values = spec.partition("=")
        if name.strip() == grid.SPEAKER_MIX:
            parse_axis(spec)
            return [v.strip() for v in values.split(":")[:2]]
    return None


def parse_range(spec: str) -> tuple[str, list[float]]:
    """NAME=LOW:HIGH -> (name, [low, high]) for random sweeps."""
    name, sep, values = spec.partition("=")
    lo, colon, hi = values.partition(":")
    try:
        if not sep or not colon:
            raise ValueError
        return name.strip(), [float(lo), float(hi)]
    except ValueError:
        raise UserError(f"--range {spec!r}: write NAME=LOW:HIGH (e.g. adapter_scale=0:2.5)") from None


def parse_mix(spec: str, ws=None) -> tuple[str, list[dict]]:
    """NAME=PATH:SCALE+PATH:SCALE -> (name, [{path, scale}])."""
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip():
        raise UserError(f"--mix {spec!r}: write NAME=PATH:SCALE+PATH:SCALE")
    return name.strip(), arm_specs.adapter_specs(rest, "--mix", ws)


# Conditioning axes against the adapter -------------------------------------------------------------

def checked(ws, request: dict) -> dict:
    """grid.normalize, then the conditioning axes (label:NAME, speaker_mix) checked against the
    adapter each point generates with, so a bad one is refused before a job is queued."""
    request = grid.normalize(request)
    check_conditioning(ws, request)
    return request


class Conditioned(NamedTuple):
    """The conditioned adapter a point generates with: how messages name it, its labels
    ({name: manifest spec}, empty when no adapter is conditioned) and its dataset."""
    adapter: str
    labels: dict
    dataset: str | None = None

    def on(self) -> str:
        return f"{self.adapter} is conditioned on {', '.join(self.labels)}"


def check_conditioning(ws, request: dict) -> None:
    """A label:NAME axis needs a numeric label of the conditioned adapter, every value inside its
    trained range; speaker_mix needs two of its speakers; a fixed --speaker or --label, a speaker,
    category or in-range number the adapter knows. One line naming the axis or option otherwise."""
    swept = {**request["axes"], **(request.get("ranges") or {})}
    axes = [a for a in swept if a.startswith(grid.LABEL_AXIS) or a == grid.SPEAKER_MIX]
    fixed = bool(request.get("speaker") or request.get("labels"))
    seen = set()
    for point in grid.points(request) if axes or fixed else []:
        paths = tuple(a["path"] for a in grid.generation_params(request, point)["adapters"])
        if paths in seen:
            continue
        seen.add(paths)
        cond = _conditioned(ws, paths)
        for axis in axes:
            where = f"--axis {axis}"
            if not cond.labels:
                needs = "speaker" if axis == grid.SPEAKER_MIX else axis[len(grid.LABEL_AXIS):]
                raise UserError(f"{where}: {cond.adapter}; sweeping {axis} needs an adapter trained with "
                                f"--condition {needs} (--adapter NAME)")
            if axis == grid.SPEAKER_MIX:
                _check_speakers(where, cond, request["speaker_mix"])
            else:
                _check_label(ws, where, cond, axis[len(grid.LABEL_AXIS):], swept[axis])
        if fixed:
            _check_fixed(cond, request)


def _check_fixed(cond: Conditioned, request: dict) -> None:
    """The request's own --speaker and --label values against the adapter's trained labels
    (the words of models.conditioning's refusal at generation, said before a job exists)."""
    given = [(f"--speaker {name}", labels.SPEAKER, name) for name in request.get("speaker") or {}]
    given += [(f"--label {name}", name, value) for name, value in (request.get("labels") or {}).items()]
    for where, name, value in given:
        spec = cond.labels.get(name)
        if spec is None:
            raise UserError(f"{where}: {cond.on()}" if cond.labels else
                            f"{where}: {cond.adapter}; it needs an adapter trained with --condition {name}")
        if spec["kind"] == labels.NUMERIC:
            lo, hi = float(spec["lo"]), float(spec["hi"])
            if isinstance(value, str):
                raise UserError(f"{where}: {name} is a numeric label ({lo:g}..{hi:g}); got {value!r}")
            if not lo <= float(value) <= hi:
                raise UserError(f"{where}: {name}={float(value):g} is outside the trained range {lo:g}..{hi:g}")
        elif str(value) not in spec["categories"]:
            raise UserError(f"{where}: unknown {name} {str(value)!r}; {cond.adapter} knows "
                            f"{', '.join(spec['categories'])}")


def _conditioned(ws, paths) -> Conditioned:
    """The conditioned adapter among `paths` (generation takes at most one)."""
    from studio.training import read_manifest

    if not paths:
        return Conditioned("no adapter is chosen", {})
    for path in paths:
        folder = Path(path) if Path(path).is_absolute() or ws is None else ws.root / path
        manifest = read_manifest(folder)
        specs = (manifest.get("conditioning") or {}).get("labels") or []
        if specs:
            return Conditioned(f"adapter {folder.name}", {d["name"]: d for d in specs},
                               (manifest.get("dataset") or {}).get("name"))
    return Conditioned(f"adapter {', '.join(Path(p).name for p in paths)} was trained without --condition", {})


def _check_speakers(where: str, cond: Conditioned, ends) -> None:
    spec = cond.labels.get(labels.SPEAKER)
    if spec is None:
        raise UserError(f"{where}: {cond.on()}, not on speaker")
    for name in ends:
        if name not in spec["categories"]:
            raise UserError(f"{where}: unknown speaker {name!r}; {cond.adapter} knows {', '.join(spec['categories'])}")


def _check_label(ws, where: str, cond: Conditioned, name: str, values: list) -> None:
    spec = cond.labels.get(name)
    if spec is None:
        kind = _dataset_label_kinds(ws, cond.dataset).get(name)
        if kind == labels.CATEGORICAL:
            raise UserError(f"{where}: {name} is a categorical label, not a number, and {cond.on()}")
        if kind == labels.NUMERIC:
            raise UserError(f"{where}: {cond.adapter} was not trained on {name} (it is conditioned on "
                            f"{', '.join(cond.labels)}); train with --condition {name} to sweep it")
        raise UserError(f"{where}: unknown label {name!r}; {cond.on()}")
    if spec["kind"] != labels.NUMERIC:
        hint = (f"sweep speakers with speaker_mix={':'.join(spec['categories'][:2])}:STEPS" if name == labels.SPEAKER
                else f"give one as a fixed --label {name}=VALUE")
        raise UserError(f"{where}: {name} is a categorical label ({', '.join(spec['categories'])}), not a number; "
                        f"{hint}")
    lo, hi = float(spec["lo"]), float(spec["hi"])
    outside = [float(v) for v in values if not lo <= float(v) <= hi]
    if outside:
        raise UserError(f"{where}: {outside[0]:g} is outside the range {lo:g}..{hi:g} {cond.adapter} was trained on")


def _dataset_label_kinds(ws, dataset: str | None) -> dict[str, str]:
    """{label: numeric | categorical} over the active clips of the adapter's dataset (if it still exists)."""
    from studio.datasets.store import list_clips

    if ws is None or not dataset:
        return {}
    try:
        clips = list_clips(ws.db, dataset)
    except NotFound:
        return {}
    return {k: labels.kind_of(v) for c in clips if c["state"] == "active" for k, v in labels.clip_labels(c).items()}


# Cost before launch ------------------------------------------------------------------------------

def seconds_per_output(db: Database, model: str) -> tuple[float, str]:
    """The newest succeeded sweep of this model on this workspace: its wall time per output.
    Without one, a rough guess, and the words say which it is."""
    with db.read() as s:
        rows = s.execute(select(jobs.Job.params, jobs.Job.result, jobs.Job.started_at, jobs.Job.finished_at)
                         .where(jobs.Job.kind == "sweep", jobs.Job.status == "succeeded")
                         .order_by(jobs.Job.id.desc()).limit(20)).all()
    for params, result, started, finished in rows:
        n = (result or {}).get("outputs")
        if (params or {}).get("model") == model and n and started and finished:
            return max(0.1, (finished - started).total_seconds() / n), "measured by the last sweep of this model here"
    return GUESS_SECONDS_PER_OUTPUT.get(model, 30.0), "a rough guess until a sweep of this model runs here"


def estimate_md(db: Database, request: dict) -> str:
    """The grid size and time of a request, or why it cannot run, as one Markdown line."""
    try:
        request = grid.normalize(request)
    except UserError as exc:
        return f"⚠️ {exc}"
    n = len(grid.points(request))
    per, basis = seconds_per_output(db, request["model"])
    swept = grid.swept(request)
    shape = " × ".join(f"{len(request['axes'][a])} {a}" for a in request["axes"] if len(request["axes"][a]) > 1)
    return (f"**{n} output{'s' if n != 1 else ''}**" + (f" ({shape})" if shape else "")
            + f" · about **{duration_text(n * per)}** ({per:.3g} s each, {basis})"
            + ("" if swept else " · nothing varies: pick two or more values of some axis"))
