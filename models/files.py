"""Durable files, without torch (studio/ imports this module too): checksums, atomic writes,
publishing a folder in one rename, verifying a folder against its recorded checksums, and the one
WAV writer. A reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in `folder` survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fsync_file(Path(root) / name)
        fsync_dir(Path(root))


def atomic_write(target: Path, data: bytes | str) -> None:
    """Write to a temporary file beside the target, fsync, rename, fsync the folder: never a partial
    file, and no temporary file left behind on failure."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def write_json_atomic(target: Path, data) -> None:
    atomic_write(target, json.dumps(data, indent=2, default=str))


def atomic_copy(source: Path, target: Path) -> None:
    """Copy `source` to `target` through a temporary file beside it (no partial target on failure)."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, tmp)
        fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish_folder(tmp: Path, final: Path, error: type[Exception] = FileExistsError) -> Path:
    """Make a fully written temporary folder appear under its final name in one rename; `error`
    (naming the folder) when that name is taken."""
    fsync_tree(tmp)
    if final.exists():
        raise error(f"{str(final)!r} already exists")
    os.rename(tmp, final)
    fsync_dir(final.parent)
    return final


@contextmanager
def new_folder(final: Path, error: type[Exception] = FileExistsError, what: str = "folder"):
    """A temporary folder beside `final` to fill; it appears as `final` in one rename when the block
    ends, and is removed when the block fails. `error` (naming `what`) when `final` exists."""
    final = Path(final)
    if final.exists():
        raise error(f"{what} {str(final)!r} already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        publish_folder(tmp, final, error)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def verify_files(folder: Path, files: dict | None, error: type[Exception], what: str) -> None:
    """Every file a manifest lists is present with its recorded SHA-256, else `error` naming it."""
    for rel, digest in (files or {}).items():
        f = Path(folder) / rel
        if not f.is_file():
            raise error(f"{what} {str(folder)!r} is incomplete: {rel} is missing")
        if sha256_file(f) != digest:
            raise error(f"{what} {str(folder)!r} is corrupt: {rel} does not match its checksum")


def wav_bytes(audio, sample_rate: int, subtype: str = "PCM_16") -> bytes:
    """A WAV file's bytes with only `fmt ` and `data` chunks for PCM (FLOAT adds `fact`/`PEAK`).
    PCM samples are clipped to [-1, 1] first: libsndfile would wrap them around."""
    import numpy as np
    import soundfile as sf

    audio = np.asarray(audio)
    if subtype.startswith("PCM"):
        audio = np.clip(audio, -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, audio, sample_rate, subtype=subtype, format="WAV")
    return buf.getvalue()


def write_wav(target: Path, audio, sample_rate: int, subtype: str = "PCM_16") -> None:
    """The studio's one WAV writer: atomic, parent folders made."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, wav_bytes(audio, sample_rate, subtype))
