"""Trained adapters and training checkpoints: their rows, and the file operations the Train tab and
`bark-studio adapters` run on them (list, promote a checkpoint to an adapter, delete, resolve a
name for generation).

No torch here: the web process lists, promotes and deletes. Checkpoint folders and adapter folders
are written by models/checkpoints.py and models/adapters.py inside jobs; what this module does to
them (copy, delete, re-point `latest`) keeps their on-disk contract: a folder appears under its
final name in one rename, and a pointer file is replaced atomically."""
from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime
from pathlib import Path

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from models.files import atomic_write, new_folder
from models.names import DEFAULT_METHOD, NAME_RE
from studio.db import Base, utcnow
from studio.errors import NotFound, UserError

CHECKPOINT_RE = re.compile(r"^step-(\d{7,})$")


class Adapter(Base):
    __tablename__ = "adapters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    path: Mapped[str] = mapped_column(String(300))              # relative to the workspace
    base_model: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(8))               # lora | full
    stages: Mapped[list] = mapped_column(JSON, default=list)
    dataset: Mapped[str | None] = mapped_column(String(120))
    dataset_hash: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[int | None] = mapped_column(Integer, index=True)
    checkpoint: Mapped[str | None] = mapped_column(String(300))  # the checkpoint it came from
    manifest: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def as_dict(self) -> dict:
        metrics = (self.manifest or {}).get("metrics") or {}
        return {"id": self.id, "name": self.name, "path": self.path, "base_model": self.base_model,
                "method": self.method, "stages": self.stages, "dataset": self.dataset,
                "dataset_hash": self.dataset_hash, "job_id": self.job_id, "checkpoint": self.checkpoint,
                "val_loss": metrics.get("val_loss"), "step": metrics.get("step"),
                "manifest": self.manifest, "created_at": _iso(self.created_at)}


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (Index("ix_checkpoints_job_step", "job_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(300), unique=True)  # relative to the workspace
    val_loss: Mapped[float | None] = mapped_column(Float)
    is_best: Mapped[bool] = mapped_column(Boolean, default=False)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)    # forgetting guard etc.
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def as_dict(self) -> dict:
        return {"id": self.id, "job_id": self.job_id, "step": self.step, "path": self.path,
                "val_loss": self.val_loss, "is_best": self.is_best, "metrics": self.metrics,
                "created_at": _iso(self.created_at)}


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") + "Z" if t else None


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name) or name == "latest":
        raise UserError(f"adapter name {name!r} is not allowed: use 1-80 letters, digits, '.', '_' or '-' "
                        "(and not 'latest')")
    return name


def run_dir(ws, job_id: int) -> Path:
    """Where a training job keeps its checkpoints."""
    return ws.checkpoints_dir / str(job_id)


# --- checkpoints ---------------------------------------------------------------------------------

def record_checkpoint(ws, job_id: int, info: dict) -> dict:
    """A training job wrote a checkpoint (info from models.training's on_checkpoint)."""
    rel = ws.relative(Path(info["path"]))
    with ws.db.write() as s:
        if info.get("is_best"):
            s.execute(update(Checkpoint).where(Checkpoint.job_id == job_id).values(is_best=False))
        row = s.scalars(select(Checkpoint).where(Checkpoint.path == rel)).first()
        if row is None:
            row = Checkpoint(job_id=job_id, step=int(info["step"]), path=rel)
            s.add(row)
        row.val_loss = info.get("val_loss")
        row.is_best = bool(info.get("is_best"))
        best_stages = list(info.get("best_stages") or [])
        if best_stages:  # a stage has one best checkpoint: the newer one takes it over
            for other in s.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.path != rel)):
                kept = [st for st in (other.metrics or {}).get("best_stages") or [] if st not in best_stages]
                if kept != ((other.metrics or {}).get("best_stages") or []):
                    other.metrics = {**other.metrics, "best_stages": kept}
        row.metrics = {"forgetting": info.get("forgetting") or {}, "best_stages": best_stages,
                       "val_loss_stages": info.get("val_loss_stages") or {}}
        for gone in info.get("deleted") or []:
            old = s.scalars(select(Checkpoint).where(Checkpoint.path == ws.relative(Path(gone)))).first()
            if old is not None:
                s.delete(old)
        s.flush()
        return row.as_dict()


def list_checkpoints(ws, job_id: int | None = None) -> list[dict]:
    with ws.db.read() as s:
        q = select(Checkpoint).order_by(Checkpoint.job_id.desc(), Checkpoint.step)
        if job_id is not None:
            q = q.where(Checkpoint.job_id == job_id)
        return [c.as_dict() for c in s.scalars(q)]


def get_checkpoint(ws, checkpoint_id: int) -> dict:
    with ws.db.read() as s:
        row = s.get(Checkpoint, checkpoint_id)
        if row is None:
            raise NotFound(f"no checkpoint {checkpoint_id}")
        return row.as_dict()


def delete_checkpoint(ws, checkpoint_id: int) -> dict:
    """Delete a checkpoint folder and its row. A run's `latest`/`best` pointer that named it moves to
    the newest remaining checkpoint (or goes away with the last one), so resume never dangles."""
    from studio.jobs import Job

    ck = get_checkpoint(ws, checkpoint_id)
    with ws.db.read() as s:
        job = s.get(Job, ck["job_id"])
        if job is not None and job.status == "running":
            raise UserError(f"checkpoint {checkpoint_id} belongs to job {job.id}, which is running; stop it first")
    folder = ws.inside(ck["path"])
    run = folder.parent
    trash = run / f".tmp-delete-{folder.name}-{os.getpid()}"
    if folder.exists():
        os.rename(folder, trash)  # gone from its final name at once; the bytes go next
    remaining = sorted((p for p in run.iterdir() if p.is_dir() and CHECKPOINT_RE.match(p.name)),
                       key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1))) if run.is_dir() else []
    pointers = ["latest", "best"] + sorted(p.name for p in run.glob("best-*")) if run.is_dir() else []
    for pointer in pointers:
        pfile = run / pointer
        if pfile.is_file() and pfile.read_text().strip() == folder.name:
            if remaining:
                _write_pointer(pfile, remaining[-1].name)
            else:
                pfile.unlink()
    shutil.rmtree(trash, ignore_errors=True)
    forget_checkpoint_row(ws, checkpoint_id)
    return ck


def forget_checkpoint_row(ws, checkpoint_id: int) -> None:
    """Drop the row of a checkpoint whose folder is already gone (pruned by a run killed before it
    could say so); delete_checkpoint is for folders that exist."""
    with ws.db.write() as s:
        row = s.get(Checkpoint, checkpoint_id)
        if row is not None:
            s.delete(row)


def _write_pointer(target: Path, name: str) -> None:
    atomic_write(target, name + "\n")


def promote_checkpoint(ws, checkpoint_id: int, name: str) -> dict:
    """Turn a checkpoint into a named adapter (a copy of its adapter folder, manifest updated)."""
    ck = get_checkpoint(ws, checkpoint_id)
    src = ws.inside(ck["path"]) / "adapter"
    if not (src / "manifest.json").is_file():
        raise UserError(f"checkpoint {checkpoint_id} ({ck['path']}) holds no adapter folder")
    return install_adapter(ws, src, name, job_id=ck["job_id"], checkpoint=ck["path"])


# --- adapters ------------------------------------------------------------------------------------

def install_adapter(ws, src: Path, name: str, *, job_id: int | None = None, checkpoint: str | None = None) -> dict:
    """Copy an adapter folder into ws.adapters_dir/<name> atomically and add its row."""
    name = check_name(name)
    if adapter_exists(ws, name):
        raise UserError(f"an adapter named {name!r} already exists")
    manifest = read_manifest(src)
    final = ws.adapters_dir / name
    if final.exists():
        raise UserError(f"adapter folder {ws.relative(final)} already exists")
    with new_folder(final, UserError, "adapter folder") as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        manifest.update({"name": name, "parent_checkpoint": checkpoint or manifest.get("parent_checkpoint")})
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    try:
        return register_adapter(ws, name, final, manifest, job_id=job_id, checkpoint=checkpoint)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise


def adapter_exists(ws, name: str) -> bool:
    with ws.db.read() as s:
        return s.scalars(select(Adapter.id).where(Adapter.name == name)).first() is not None


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing: not an adapter folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is corrupt: {exc}") from None
    if not isinstance(manifest, dict) or "stages" not in manifest or "base_model" not in manifest:
        raise UserError(f"{path} is not a bark-studio adapter manifest")
    return manifest


def register_adapter(ws, name: str, folder: Path, manifest: dict, *, job_id: int | None = None,
                     checkpoint: str | None = None) -> dict:
    dataset = manifest.get("dataset") or {}
    with ws.db.write() as s:
        row = Adapter(name=check_name(name), path=ws.relative(folder), base_model=str(manifest["base_model"]),
                      method=str(manifest.get("method", DEFAULT_METHOD)), stages=list(manifest["stages"]),
                      dataset=dataset.get("name"), dataset_hash=dataset.get("hash"), job_id=job_id,
                      checkpoint=checkpoint, manifest=manifest)
        s.add(row)
        s.flush()
        return row.as_dict()


def list_adapters(ws) -> list[dict]:
    with ws.db.read() as s:
        return [a.as_dict() for a in s.scalars(select(Adapter).order_by(Adapter.created_at.desc(), Adapter.id.desc()))]


def get_adapter(ws, name: str) -> dict:
    """An adapter by name; 'latest' is the newest one."""
    with ws.db.read() as s:
        if name == "latest":
            row = s.scalars(select(Adapter).order_by(Adapter.created_at.desc(), Adapter.id.desc())).first()
            if row is None:
                raise NotFound("no adapters yet: train one first (bark-studio train ...)")
        else:
            row = s.scalars(select(Adapter).where(Adapter.name == name)).first()
            if row is None:
                raise NotFound(f"no adapter named {name!r}")
        return row.as_dict()


def adapter_folder(ws, name: str) -> Path:
    """The folder of a named adapter (for generation: models.adapters.apply_adapters takes paths)."""
    folder = ws.inside(get_adapter(ws, name)["path"])
    if not folder.is_dir():
        raise UserError(f"adapter {name!r}: its folder {ws.relative(folder)} is missing")
    return folder


def parse_adapter_spec(spec: str) -> tuple[str, float]:
    """'NAME' or 'NAME:SCALE' -> (name, scale)."""
    name, sep, scale = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not sep:
        return spec.strip(), 1.0
    try:
        return name.strip(), float(scale)
    except ValueError:
        raise UserError(f"adapter {spec!r}: the scale after ':' must be a number") from None


def delete_adapter(ws, name: str) -> dict:
    adapter = get_adapter(ws, name)
    folder = ws.inside(adapter["path"])
    with ws.db.write() as s:
        row = s.get(Adapter, adapter["id"])
        if row is not None:
            s.delete(row)
    if folder.exists():
        trash = folder.with_name(f".{folder.name}.deleted-{os.getpid()}")
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
    return adapter


def export_adapter_copy(ws, name: str, out_dir: Path) -> Path:
    """Copy an adapter folder out of the studio (plain PEFT loads each stage subfolder)."""
    src = adapter_folder(ws, name)
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise UserError(f"{out_dir} already exists")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.copytree(src, tmp)
    os.rename(tmp, out_dir)
    return out_dir
