"""Training checkpoints, written so that a kill at any instant leaves the previous one loadable.

A run folder holds one folder per checkpoint and two pointer files:

    run/
      step-0000100/     trainable.safetensors  the trained weights (LoRA or the full stages)
                        optimizer.pt           optimizer, scheduler and grad-scaler state
                        rng.pt                 torch (CPU and CUDA) RNG states
                        adapter/               a complete adapter folder (promote = copy it)
                        state.json             step, data position, metrics, config, checksums
      latest            "step-0000100"  (switched last, atomically)
      best              "step-0000050"  (lowest mean validation loss over the stages)
      best-<stage>      "step-0000075"  (that stage's lowest validation loss: the adapter takes
                                         each stage from its own best checkpoint)

A checkpoint is first written into `.tmp-...` (files fsynced), renamed to its final name, and only
then do the pointers switch (temporary file, fsync, rename). So a crash leaves either the old
checkpoint as `latest` plus a `.tmp-` folder (cleaned up on the next save), or the new one whole.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from models.errors import ModelInputError
from models.files import atomic_write, fsync_dir, publish_folder, sha256_file, verify_files, write_json_atomic

STATE = "state.json"
LATEST = "latest"
BEST = "best"
_NAME = re.compile(r"^step-(\d{7,})$")


class CheckpointError(ModelInputError):
    """A checkpoint that is missing, incomplete or corrupt."""


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def write_checkpoint(run_dir, step: int, write_files, state: dict, *, is_best: bool = False,
                     best_stages=(), keep_last: int = 2) -> Path:
    """Write one checkpoint: `write_files(folder)` fills a temporary folder, `state` (JSON) goes in
    last with the checksum of every file; then rename, then switch `best` (if), `best-<stage>` for
    each of `best_stages`, and `latest`. Older checkpoints beyond the last `keep_last` are deleted,
    except those a pointer names."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    clean_partial(run_dir)
    final = run_dir / checkpoint_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=run_dir))
    try:
        write_files(tmp)
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        with open(tmp / STATE, "w") as f:
            json.dump({**state, "step": step, "files": files}, f, indent=2, default=str)
        if final.exists():  # the same step saved again (e.g. stopped right after a periodic save)
            trash = run_dir / f".tmp-old-{final.name}-{os.getpid()}"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        publish_folder(tmp, final, CheckpointError)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if is_best:
        _point(run_dir, BEST, final.name)
    for stage in best_stages:
        _point(run_dir, stage_best_pointer(stage), final.name)
    _point(run_dir, LATEST, final.name)  # last: until here the previous checkpoint is `latest`
    prune(run_dir, keep_last)
    return final


def _point(run_dir: Path, pointer: str, name: str) -> None:
    atomic_write(run_dir / pointer, name + "\n")


def stage_best_pointer(stage: str) -> str:
    return f"{BEST}-{stage}"


def pointer_names(run_dir) -> list[str]:
    """The pointer files of a run: latest, best and best-<stage>."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir()
                  if p.is_file() and (p.name in (LATEST, BEST) or p.name.startswith(f"{BEST}-")))


def read_pointer(run_dir, pointer: str = LATEST) -> Path | None:
    p = Path(run_dir) / pointer
    if not p.is_file():
        return None
    name = p.read_text().strip()
    return Path(run_dir) / name if _NAME.match(name) else None


def clean_partial(run_dir) -> None:
    """Remove folders a crash left half-written (never a finished checkpoint)."""
    for p in Path(run_dir).glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    for p in Path(run_dir).glob(".*.tmp"):
        p.unlink(missing_ok=True)


def list_checkpoints(run_dir) -> list[Path]:
    """Finished checkpoint folders of a run, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def prune(run_dir, keep_last: int) -> list[Path]:
    """Delete all but the last `keep_last` checkpoints and the best; returns what was deleted."""
    run_dir = Path(run_dir)
    keep = {p.name for p in list_checkpoints(run_dir)[-max(1, keep_last):]}
    for pointer in pointer_names(run_dir):
        target = read_pointer(run_dir, pointer)
        if target is not None:
            keep.add(target.name)
    gone = []
    for p in list_checkpoints(run_dir):
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    if gone:
        fsync_dir(run_dir)
    return gone


def resolve(path) -> Path:
    """A checkpoint folder from a checkpoint path or a run folder (its `latest`)."""
    path = Path(path)
    if (path / STATE).is_file():
        return path
    latest = read_pointer(path)
    if latest is not None:
        return latest
    if path.is_dir() and list_checkpoints(path):
        raise CheckpointError(f"run folder {str(path)!r} has checkpoints but no readable 'latest' pointer")
    raise CheckpointError(f"no checkpoint at {str(path)!r}")


def read_state(path, verify: bool = True) -> dict:
    """The checkpoint's state.json, after checking every file against its checksum."""
    folder = resolve(path)
    spath = folder / STATE
    try:
        state = json.loads(spath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {str(folder)!r}: {STATE} is missing or corrupt ({exc})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"checkpoint {str(folder)!r}: {STATE} is not a training state")
    if verify:
        verify_files(folder, state.get("files"), CheckpointError, "checkpoint")
    state["path"] = str(folder)
    return state


def update_state(folder, updates: dict) -> None:
    """Rewrite fields of a finished checkpoint's state.json atomically (e.g. metrics added later)."""
    folder = Path(folder)
    state = json.loads((folder / STATE).read_text())
    write_json_atomic(folder / STATE, {**state, **updates})
