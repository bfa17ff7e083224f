"""Labels on clips: the speaker (a column since the first schema) plus any number of named values,
numeric (`accent=0.3`) or categorical (`emotion=angry`). A value that reads as a finite number is
numeric; `speaker` is always categorical. Within a dataset a label keeps one kind, so a typo such
as `accent=O.3` is refused instead of silently splitting the label in two.

API:
    clip_labels(clip) -> {"speaker": "p225", "accent": 0.3, ...}   (a Clip row or a clip dict)
    parse_assignment("accent=0.3") -> ("accent", 0.3)
    set_labels(db, dataset, selectors, ["speaker=alice"], unset=["accent"]) -> [clip label rows]
    list_labels(db, dataset, selectors=()) -> [clip label rows]
    replace_clip_labels(db, clip_id, "speaker=alice accent=0.3") -> one clip label row
Selectors are clip ids or name globs (`p225_*`, matched against the whole name or its file name).
Training and generation read labels only through clip_labels()."""
from __future__ import annotations

import fnmatch
import math
import re
import shlex
from typing import Iterable

from sqlalchemy import select

from studio.datasets.models import Clip, Dataset
from studio.datasets.store import get_dataset_row
from studio.db import Database
from studio.errors import NotFound, UserError

SPEAKER = "speaker"
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
MAX_VALUE_CHARS = 100  # the speaker column's width; categories are short names, not sentences
NUMERIC, CATEGORICAL = "numeric", "categorical"


def clip_labels(clip) -> dict[str, str | float]:
    """Every label of one clip, the speaker first when it has one."""
    get = clip.get if isinstance(clip, dict) else lambda k: getattr(clip, k, None)
    out: dict[str, str | float] = {}
    if get("speaker"):
        out[SPEAKER] = get("speaker")
    out.update(get("labels") or {})
    return out


def kind_of(value: str | float) -> str:
    return NUMERIC if isinstance(value, (int, float)) else CATEGORICAL


def format_value(value: str | float) -> str:
    return f"{value:g}" if kind_of(value) == NUMERIC else str(value)


def format_labels(labels: dict) -> str:
    """'speaker=alice accent=0.3 "emotion=very angry"': the syntax parse_assignments reads back."""
    out = []
    for name, value in labels.items():
        token = f"{name}={format_value(value)}"
        out.append(token if re.fullmatch(r"[^\s'\"\\]+", token) else shlex.quote(token))
    return " ".join(out)


def parse_assignment(token: str, where: str = "") -> tuple[str, str | float]:
    """'accent=0.3' -> ('accent', 0.3); 'emotion=angry' -> ('emotion', 'angry')."""
    at = f"{where}: " if where else ""
    if "=" not in token:
        raise UserError(f"{at}label {token!r} needs the form name=value (e.g. speaker=alice, accent=0.3)")
    name, raw = (part.strip() for part in token.split("=", 1))
    if not NAME_RE.match(name):
        raise UserError(f"{at}label {token!r}: the name must be 1-40 letters, digits, '_' or '-', starting with a letter")
    if not raw:
        raise UserError(f"{at}label {token!r} has no value (to remove a label, use --unset {name})")
    if len(raw) > MAX_VALUE_CHARS or any(ch in raw for ch in "\n\r\t"):
        raise UserError(f"{at}label {name}: a value is one line of at most {MAX_VALUE_CHARS} characters")
    if name.lower() == SPEAKER:
        return SPEAKER, raw
    try:
        number = float(raw)
    except ValueError:
        return name, raw
    if not math.isfinite(number):
        raise UserError(f"{at}label {token!r}: a numeric label needs a finite number")
    return name, number


def split_tokens(text: str, where: str = "") -> list[str]:
    """A line as the UI takes it ('speaker=alice "emotion=very angry"') -> its tokens."""
    try:
        return shlex.split(text or "")
    except ValueError as exc:
        raise UserError(f"{where + ': ' if where else ''}labels {text!r}: {exc}") from None


def parse_assignments(text: str, where: str = "") -> dict[str, str | float]:
    return dict(parse_assignment(t, where) for t in split_tokens(text, where))


def _clip_name(c: Clip) -> str:
    return f"clip {c.id} ({c.name})"


def name_matches(clip_name: str, pattern: str) -> bool:
    """A glob against the clip's whole name (upload/takes/p225_001.wav) or its file name."""
    return fnmatch.fnmatchcase(clip_name, pattern) or fnmatch.fnmatchcase(re.split(r"[/:]", clip_name)[-1], pattern)


def select_clips(s, dataset_id: int, dataset: str, selectors: Iterable[str]) -> list[Clip]:
    """Clips (not deleted) matching any selector, in id order; every selector must match one."""
    clips = list(s.scalars(select(Clip).where(Clip.dataset_id == dataset_id, Clip.deleted_at.is_(None))
                           .order_by(Clip.id)))
    chosen: dict[int, Clip] = {}
    for sel in selectors:
        sel = str(sel).strip()
        if sel.isdigit():
            hits = [c for c in clips if c.id == int(sel)]
        else:
            hits = [c for c in clips if name_matches(c.name, sel)]
        if not hits:
            hint = "; a label is written name=value" if NAME_RE.match(sel) else ""
            raise NotFound(f"no clip of {dataset} matches {sel!r} (give clip ids or name globs such as 'p225_*'{hint})")
        chosen.update((c.id, c) for c in hits)
    return [chosen[k] for k in sorted(chosen)]


def dataset_kinds(clips: Iterable[Clip]) -> dict[str, tuple[str, Clip, str | float]]:
    """name -> (kind, a clip that has it, its value there): the kinds the dataset already uses."""
    out: dict[str, tuple[str, Clip, str | float]] = {}
    for c in clips:
        for name, value in clip_labels(c).items():
            out.setdefault(name, (kind_of(value), c, value))
    return out


def _check_kind(name: str, value, known: dict, dataset: str, where: str) -> None:
    """Refuse a value of the other kind than `name` has on the dataset's other clips."""
    if name not in known or kind_of(value) == known[name][0]:
        return
    kind, other, other_value = known[name]
    raise UserError(f"{where}: {name}={format_value(value)} is {'a number' if kind_of(value) == NUMERIC else 'not a number'}, "
                    f"but {name} is {kind} in {dataset} ({name}={format_value(other_value)} on {_clip_name(other)})")


def check_kinds(s, dataset_id: int, dataset: str, assignments: list[str]) -> None:
    """Refuse import labels of the other kind than the dataset's clips have (before anything is stored)."""
    known = dataset_kinds(s.scalars(select(Clip).where(Clip.dataset_id == dataset_id, Clip.deleted_at.is_(None))))
    for token in assignments:
        _check_kind(*parse_assignment(token), known, dataset, "--label")


def _apply(c: Clip, values: dict, unset: Iterable[str], replace: bool) -> None:
    labels = {} if replace else dict(c.labels or {})
    if replace:
        c.speaker = ""
    for name in unset:
        if name == SPEAKER:
            c.speaker = ""
        labels.pop(name, None)
    for name, value in values.items():
        if name == SPEAKER:
            c.speaker = value
        else:
            labels[name] = value
    c.labels = labels  # a new dict, so the JSON column is written


def row(c: Clip) -> dict:
    return {"clip_id": c.id, "name": c.name, "labels": clip_labels(c)}


def set_labels(db: Database, dataset: str, selectors: list[str], assignments: list[str],
               unset: Iterable[str] = ()) -> list[dict]:
    """Set and/or remove labels on every selected clip, all or nothing."""
    unset = [u.strip() for u in unset]
    if not selectors:
        raise UserError("name the clips to label: clip ids or name globs such as 'p225_*'")
    if not assignments and not unset:
        raise UserError("give labels to set (name=value) or --unset NAME")
    for name in unset:
        if not NAME_RE.match(name):
            raise UserError(f"--unset {name!r}: not a label name")
    with db.write() as s:
        ds = get_dataset_row(s, dataset)
        chosen = select_clips(s, ds.id, dataset, selectors)
        where = _clip_name(chosen[0]) if len(chosen) == 1 else \
            f"{len(chosen)} clips of {dataset} ({', '.join(c.name for c in chosen[:3])}{', ...' if len(chosen) > 3 else ''})"
        values = dict(parse_assignment(a, where) for a in assignments)
        ids = {c.id for c in chosen}
        others = s.scalars(select(Clip).where(Clip.dataset_id == ds.id, Clip.deleted_at.is_(None), Clip.id.notin_(ids)))
        known = dataset_kinds(others)
        for name, value in values.items():
            _check_kind(name, value, known, dataset, where)
        for c in chosen:
            _apply(c, values, unset, replace=False)
        return [row(c) for c in chosen]


def replace_clip_labels(db: Database, clip_id: int, text: str) -> dict:
    """Make a clip's labels exactly those written in `text` (the per-clip editor)."""
    with db.write() as s:
        c = s.get(Clip, clip_id)
        if c is None:
            raise NotFound(f"no clip {clip_id}")
        values = parse_assignments(text, _clip_name(c))
        known = dataset_kinds(s.scalars(select(Clip).where(Clip.dataset_id == c.dataset_id, Clip.deleted_at.is_(None),
                                                           Clip.id != c.id)))
        dataset = s.get(Dataset, c.dataset_id).name
        for name, value in values.items():
            _check_kind(name, value, known, dataset, _clip_name(c))
        _apply(c, values, (), replace=True)
        return row(c)


def list_labels(db: Database, dataset: str, selectors: list[str] | None = None) -> list[dict]:
    with db.read() as s:
        ds = get_dataset_row(s, dataset)
        if selectors:
            return [row(c) for c in select_clips(s, ds.id, dataset, selectors)]
        return [row(c) for c in s.scalars(select(Clip).where(Clip.dataset_id == ds.id, Clip.deleted_at.is_(None))
                                          .order_by(Clip.id))]
