"""Importing clips: files, folders and zip archives, with corpus layouts recognised. Every file is
decoded and validated on its own, so one bad file gives one clear message and the rest of the
batch imports. Originals are stored by content hash and never overwritten; a file already in the
dataset is reported as a duplicate, not stored twice.

Runs in a worker (the `import` job) for uploads from the browser, so a decoder crash on untrusted
audio cannot take the web process down; the CLI runs it in its own process."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from studio.audio.decode import AUDIO_EXTENSIONS, AudioError, display_name, max_file_bytes, printable, probe_file
from studio.datasets.archive import ARCHIVE_EXTENSIONS, ZipLimits, extract_zip
from studio.datasets.corpus import Layout, Meta, audio_files, name_meta, read_layout
from studio.datasets.models import PROVENANCE, Clip, Transcript, TranscriptEdit
from studio.datasets.store import get_dataset_row
from studio.errors import DiskFull, UserError, is_disk_full
from studio.workspace import Workspace, disk_full_as_user_error, sha256_file

WORK_PREFIX = "import-"  # tmp/import-<pid>-*: an import's unpacked zips, removed when it ends
UPLOADS_DIR = "uploads"  # tmp/uploads/<token>: browser uploads staged for an import job
STAGED_GRACE_SECONDS = 600.0  # a staged upload younger than this may not have its job row yet
SYMLINK_REASON = "a symbolic link: links are not followed, so it was not imported (copy the file in instead)"


@dataclass
class ImportOptions:
    source: str = ""  # where the audio came from (defaults to the file's path or upload name)
    licence: str = ""  # licence / consent note
    speaker: str = ""  # default speaker label (a corpus layout's own speaker wins)
    provenance: str = "human"  # human | ai
    max_file_bytes: int | None = None
    clip_labels: list[str] = field(default_factory=list)  # "accent=0.3", "emotion=angry": set on every clip

    def check(self) -> None:
        from studio.datasets.labels import SPEAKER, parse_assignment

        if self.provenance not in PROVENANCE:
            raise UserError(f"provenance must be one of {', '.join(PROVENANCE)}, not {self.provenance!r}")
        for token in self.clip_labels:
            if parse_assignment(token)[0] == SPEAKER:
                raise UserError(f"label {token!r}: give the speaker with --speaker")


def import_paths(ws: Workspace, dataset: str, paths: list[str | Path], options: ImportOptions | None = None, *,
                 labels: dict[str, str] | None = None, progress: Callable[[int, int, str], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> dict:
    """Import files, folders and zips into `dataset`. `labels` maps a path to the name shown in
    messages (the name a browser upload arrived with)."""
    options = options or ImportOptions()
    options.check()
    with ws.db.read() as s:
        dataset_id = get_dataset_row(s, dataset).id
        if options.clip_labels:
            from studio.datasets.labels import check_kinds

            check_kinds(s, dataset_id, dataset, options.clip_labels)  # before a file is stored
    limit = options.max_file_bytes if options.max_file_bytes is not None else max_file_bytes()
    labels = labels or {}
    report: dict = {"dataset": dataset, "imported": [], "duplicates": [], "errors": [], "skipped": [], "layouts": []}
    with disk_full_as_user_error(ws.root):
        work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=ws.tmp_dir))
    try:
        items = _expand(paths, labels, work, limit, report)
        for i, (path, label, meta, origin) in enumerate(items):
            if should_stop and should_stop():
                report["stopped"] = True
                break
            if progress:
                progress(i, len(items), label)
            try:
                report_key, row = _import_one(ws, dataset_id, path, label, meta, origin, options, limit)
                report[report_key].append(row)
            except Exception as exc:  # noqa: BLE001 - one strange file must not stop the batch; a full disk does
                if is_disk_full(exc, ws.root):
                    raise DiskFull(_disk_full_message(label, len(items) - i - 1, len(report["imported"]))) from exc
                if isinstance(exc, UserError):
                    report["errors"].append({"file": label, "error": str(exc).removeprefix(f"{label}: ")})
                else:
                    report["errors"].append({"file": label, "error": f"could not be imported ({type(exc).__name__}: {exc})"})
        if progress:
            progress(len(items), len(items), "done")
    except Exception as exc:
        if is_disk_full(exc, ws.root) and not isinstance(exc, DiskFull):
            raise DiskFull() from exc  # e.g. unpacking a zip filled it
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _disk_full_message(label: str, left: int, imported: int) -> str:
    rest = f" and the {left} file(s) after it" if left else ""
    before = f" ({imported} imported before it)" if imported else ""
    return (f"{label}{rest}: not imported, the disk holding the workspace is full{before}; "
            "free some space, then import again (files already imported are skipped as duplicates)")


def _expand(paths, labels, work: Path, limit: int, report: dict) -> list[tuple[Path, str, Meta | None, str]]:
    """Inputs -> (audio path, label, corpus meta, origin) in a stable order."""
    items: list[tuple[Path, str, Meta | None, str]] = []
    for n, raw in enumerate(paths):
        p = Path(raw)
        label = labels.get(str(raw)) or display_name(p)
        if p.is_symlink() and not p.exists():
            report["errors"].append({"file": label, "error": "a broken symbolic link"})
        elif p.is_dir():
            items += _folder(p, label, report)
        elif not p.exists():
            report["errors"].append({"file": label, "error": "no such file or folder"})
        elif p.suffix.lower() in ARCHIVE_EXTENSIONS:
            dest = work / f"zip{n}"
            try:
                ex = extract_zip(p, dest, ZipLimits.from_env(max_entry_bytes=limit), label=label)
            except UserError as exc:
                report["errors"].append({"file": label, "error": str(exc).removeprefix(f"{label}: ")})
                continue
            report["errors"] += ex.errors
            items += _folder(dest, label, report, prefix=f"{label}:")
        elif p.suffix.lower() in AUDIO_EXTENSIONS:
            items.append((p, label, name_meta(p), str(p if not labels.get(str(raw)) else label)))
        elif p.suffix.lower() in (".csv", ".tsv", ".txt", ".list"):
            # a corpus list given on its own: import what it lists, from the folder it sits in
            lay = read_layout(p.parent)
            listed = [a for a, m in lay.meta.items() if m.layout != "sidecar"]
            if not listed:
                report["errors"].append({"file": label, "error": "not a recognised corpus list (LJSpeech metadata.csv, wav|text, Common Voice .tsv)"})
            items += [(a, display_name(a), lay.meta[a], str(a)) for a in sorted(listed)]
            report["errors"] += lay.missing
        else:
            report["errors"].append({"file": label, "error": f"not an audio file or zip (extension {p.suffix or 'none'!r}); "
                                     f"accepted: {', '.join(AUDIO_EXTENSIONS + ARCHIVE_EXTENSIONS)}"})
    return items


def _folder(root: Path, label: str, report: dict, prefix: str | None = None) -> list:
    lay: Layout = read_layout(root)
    for layout in lay.layouts:
        if layout not in report["layouts"]:
            report["layouts"].append(layout)
    tag = prefix if prefix is not None else f"{label}/"
    for m in lay.missing:
        report["errors"].append({"file": f"{tag}{m['file']}", "error": m["error"]})
    for link in _audio_symlinks(root):
        report["skipped"].append({"file": f"{tag}{printable(str(link.relative_to(root)))}", "reason": SYMLINK_REASON})
    items = []
    resolved_root = root.resolve()
    for p in audio_files(root):
        rp = p.resolve()
        rel = str(p.relative_to(root))
        if rp in lay.skip:
            report["skipped"].append({"file": f"{tag}{rel}", "reason": "second microphone of a take already imported"})
            continue
        if resolved_root not in rp.parents:
            report["errors"].append({"file": f"{tag}{rel}", "error": "points outside the folder; not imported"})
            continue
        items.append((p, f"{tag}{printable(rel)}", lay.meta.get(rp), f"{tag}{rel}"))
    return items


def _audio_symlinks(root: Path) -> list[Path]:
    """Symbolic links with an audio file's name under root (audio_files leaves them out)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath) / name
            if not name.startswith(".") and p.is_symlink() and (p.suffix.lower() in AUDIO_EXTENSIONS or p.is_dir()):
                out.append(p)
    return sorted(out)


def clean_leftovers(ws: Workspace) -> list[str]:
    """Remove what killed imports left in tmp/: unpacked zips of processes that are gone, and staged
    uploads that no queued or running job will read. Run when a worker or the server starts."""
    from studio import jobs

    with ws.db.read() as s:
        live_params = list(s.scalars(select(jobs.Job.params).where(jobs.Job.status.in_(("queued", "running")))))
    wanted = set()  # tokens of tmp/uploads/<token> named anywhere in a live job's params
    for params in live_params:
        values = list((params or {}).values())
        while values:
            x = values.pop()
            if isinstance(x, (list, tuple)):
                values += x
            elif isinstance(x, dict):
                values += list(x.keys()) + list(x.values())
            elif isinstance(x, str):
                parts = Path(x).parts
                if len(parts) >= 3 and parts[:2] == ("tmp", UPLOADS_DIR):
                    wanted.add(parts[2])
    gone = []
    for d in ws.tmp_dir.glob(f"{WORK_PREFIX}*"):
        pid = d.name.removeprefix(WORK_PREFIX).split("-", 1)[0]
        if d.is_dir() and not (pid.isdigit() and _pid_alive(int(pid))):
            gone.append(ws.relative(d))
            shutil.rmtree(d, ignore_errors=True)
    now = time.time()
    for d in (ws.tmp_dir / UPLOADS_DIR).glob("*"):
        if d.name not in wanted and now - d.stat().st_mtime > STAGED_GRACE_SECONDS:
            gone.append(ws.relative(d))
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
    return gone


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _import_one(ws: Workspace, dataset_id: int, path: Path, label: str, meta: Meta | None, origin: str,
                options: ImportOptions, limit: int) -> tuple[str, dict]:
    decoded = probe_file(path, max_bytes=limit, label=label)  # streamed; raises AudioError naming the file
    suffix = path.suffix.lower()
    sha = sha256_file(path)
    blob = ws.blob_path(sha, suffix)
    new_blob = not blob.exists()
    ws.store_file(path, suffix, digest=sha)  # content-addressed; an existing blob is never overwritten
    try:
        return _record_clip(ws, dataset_id, path, label, meta, origin, options, decoded, sha, blob)
    except Exception as exc:
        if new_blob and is_disk_full(exc, ws.root):
            _forget_unused_blob(ws, sha, blob)  # the row could not be written: keep the disk as it was
        raise


def _forget_unused_blob(ws: Workspace, sha: str, blob: Path) -> None:
    try:
        with ws.db.read() as s:
            used = s.scalar(select(Clip.id).where(Clip.sha256 == sha).limit(1)) is not None
    except Exception:  # noqa: BLE001 - cannot tell: keep it (a stray blob is safer than a lost one)
        return
    if not used:
        blob.unlink(missing_ok=True)


def _record_clip(ws: Workspace, dataset_id: int, path: Path, label: str, meta: Meta | None, origin: str,
                 options: ImportOptions, decoded, sha: str, blob: Path) -> tuple[str, dict]:
    from studio.datasets.labels import parse_assignment

    from_layout = meta.speaker if meta and meta.speaker and not (meta.guessed and options.speaker) else None
    speaker = from_layout or options.speaker or ""
    extra = dict(parse_assignment(t) for t in options.clip_labels)
    with ws.db.write() as s:
        existing = s.scalar(select(Clip).where(Clip.dataset_id == dataset_id, Clip.sha256 == sha))
        if existing is not None:
            gone = f", deleted: restore it with `bark-studio dataset delete {existing.id} --undo`" if existing.deleted_at else ""
            return "duplicates", {"file": label, "clip_id": existing.id,
                                  "note": f"same audio as clip {existing.id} ({existing.name}{gone})"}
        clip = Clip(dataset_id=dataset_id, name=label[-300:], sha256=sha, blob=ws.relative(blob), format=decoded.format,
                    sample_rate=decoded.sample_rate, channels=decoded.channels, duration=round(decoded.duration, 4),
                    source=(options.source or origin)[:500], licence=options.licence[:500], speaker=speaker[:100],
                    labels=extra, provenance=options.provenance, trim_history=[], peaks=decoded.peaks)
        s.add(clip)
        try:
            s.flush()
        except IntegrityError:
            raise AudioError(f"{label}: imported at the same moment by another job; skipped") from None
        text = " ".join((meta.text or "").split()) if meta and meta.text else ""
        if text:
            s.add(Transcript(clip_id=clip.id, text=text, source="human", words=[]))
            s.add(TranscriptEdit(clip_id=clip.id, before=None, after=text, source_before=None, source_after="human",
                                 by="import", undone=False))
        return "imported", {"file": label, "clip_id": clip.id, "duration": round(decoded.duration, 3),
                            "sample_rate": decoded.sample_rate, "channels": decoded.channels,
                            "format": decoded.format, "speaker": speaker, "text": text or None}
