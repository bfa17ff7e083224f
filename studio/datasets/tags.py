"""A dataset's own tags (`[thunder]`, `[rain intensifies]`): declared with the dataset, accepted by
the linter, offered by the editor's palette and counted in the report. Stored bracket-free."""
from __future__ import annotations

import re
from typing import Iterable

from studio.datasets.lint import KNOWN_TAGS
from studio.datasets.store import dataset_dict, get_dataset_row
from studio.db import Database
from studio.errors import UserError

MAX_TAG_CHARS = 60


def normalise(raw: str) -> str:
    """' [rain  intensifies] ' -> 'rain intensifies'; refuses what cannot be a tag."""
    inner = " ".join((raw or "").strip().removeprefix("[").removesuffix("]").split())
    if not inner or len(inner) > MAX_TAG_CHARS or any(ch in inner for ch in "[]♪"):
        raise UserError(f"tag {raw!r}: a tag is 1-{MAX_TAG_CHARS} characters of text without brackets or ♪")
    if f"[{inner}]".lower() in {t.lower() for t in KNOWN_TAGS}:
        raise UserError(f"tag {raw!r} is one of Bark's own markers already ({', '.join(KNOWN_TAGS)})")
    return inner


def bracketed(tags: Iterable[str]) -> list[str]:
    return [f"[{t}]" for t in tags]


def update_tags(db: Database, dataset: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> list[str]:
    """Declare and/or withdraw tags; returns the dataset's tags (bracket-free, in declaration order)."""
    add, remove = [normalise(t) for t in add], [normalise(t) for t in remove]
    with db.write() as s:
        ds = get_dataset_row(s, dataset)
        tags = list(ds.tags or [])
        for t in remove:
            if t not in tags:
                raise UserError(f"{dataset}: tag [{t}] is not declared (declared: {', '.join(bracketed(tags)) or 'none'})")
            tags.remove(t)
        tags += [t for t in dict.fromkeys(add) if t not in tags]
        ds.tags = tags
        return dataset_dict(ds)["tags"]
