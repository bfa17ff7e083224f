"""Opening untrusted zip archives: entries with `../` or absolute paths, links, duplicates and
nested archives are refused one by one; an archive over the entry-count or total-size cap is
refused whole; an entry whose compression ratio is too high (a zip bomb) is refused. Sizes are
enforced while extracting too, so a header that lies about a size cannot fill the disk."""
from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from studio.audio.decode import display_name, printable
from studio.errors import UserError

MAX_ENTRIES_ENV = "BARK_STUDIO_ZIP_MAX_ENTRIES"
MAX_TOTAL_MB_ENV = "BARK_STUDIO_ZIP_MAX_TOTAL_MB"
MAX_RATIO_ENV = "BARK_STUDIO_ZIP_MAX_RATIO"
DEFAULT_MAX_ENTRIES = 20_000
DEFAULT_MAX_TOTAL_MB = 4096
DEFAULT_MAX_RATIO = 100.0  # audio barely compresses; 100:1 is far past anything real
RATIO_FLOOR_BYTES = 1 << 20  # tiny text entries may compress well; judge ratio from 1 MiB up
ARCHIVE_EXTENSIONS = (".zip",)


@dataclass
class ZipLimits:
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_total_bytes: int = DEFAULT_MAX_TOTAL_MB * 1024 * 1024
    max_ratio: float = DEFAULT_MAX_RATIO
    max_entry_bytes: int | None = None  # the per-file audio limit, applied to entries as well

    @classmethod
    def from_env(cls, max_entry_bytes: int | None = None) -> "ZipLimits":
        return cls(max_entries=int(os.environ.get(MAX_ENTRIES_ENV, DEFAULT_MAX_ENTRIES)),
                   max_total_bytes=int(float(os.environ.get(MAX_TOTAL_MB_ENV, DEFAULT_MAX_TOTAL_MB)) * 1024 * 1024),
                   max_ratio=float(os.environ.get(MAX_RATIO_ENV, DEFAULT_MAX_RATIO)),
                   max_entry_bytes=max_entry_bytes)


@dataclass
class Extracted:
    root: Path
    files: int = 0
    errors: list[dict] = field(default_factory=list)  # {"file", "error"} per refused entry


def safe_member_path(name: str) -> PurePosixPath | None:
    """The entry's relative path, or None when it is absolute, climbs out, or is otherwise unsafe."""
    if not name or "\x00" in name:
        return None
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        return None  # absolute, or a Windows drive
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
        return None
    return PurePosixPath(*parts)


def extract_zip(archive: Path, dest: Path, limits: ZipLimits, label: str | None = None) -> Extracted:
    """Extract the safe entries of `archive` under `dest`. Raises UserError when the archive as a
    whole is refused (unreadable, too many entries, too large in total)."""
    who = label or display_name(archive)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"{who}: not a readable zip archive ({exc})") from None
    out = Extracted(root=dest)
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise UserError(f"{who}: {len(infos)} entries is over the cap of {limits.max_entries}; archive refused")
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_total_bytes:
            raise UserError(f"{who}: {declared / 1e6:.0f} MB uncompressed is over the cap of "
                            f"{limits.max_total_bytes / 1e6:.0f} MB; archive refused (zip bomb?)")
        total_compressed = sum(i.compress_size for i in infos)
        if declared > RATIO_FLOOR_BYTES and declared > limits.max_ratio * max(1, total_compressed):
            raise UserError(f"{who}: compression ratio {declared / max(1, total_compressed):.0f}:1 is over "
                            f"{limits.max_ratio:.0f}:1; archive refused (zip bomb?)")
        dest.mkdir(parents=True, exist_ok=True)
        seen: set[str] = set()
        written = 0
        for info in infos:
            entry = f"{who}:{printable(info.filename)}"
            if info.is_dir():
                continue
            rel = safe_member_path(info.filename)
            if rel is None:
                out.errors.append({"file": entry, "error": "entry path is absolute or leaves the archive (../); not extracted"})
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                out.errors.append({"file": entry, "error": "entry is a symbolic link; not extracted"})
                continue
            key = str(rel).lower()
            if key in seen:
                out.errors.append({"file": entry, "error": "duplicate entry name; the first one was kept"})
                continue
            seen.add(key)
            if rel.suffix.lower() in ARCHIVE_EXTENSIONS:
                out.errors.append({"file": entry, "error": "nested archive; extract it and import it separately"})
                continue
            if limits.max_entry_bytes is not None and info.file_size > limits.max_entry_bytes:
                out.errors.append({"file": entry, "error": f"{info.file_size / 1e6:.1f} MB is over the "
                                   f"{limits.max_entry_bytes / 1e6:.0f} MB limit per file"})
                continue
            if info.file_size > RATIO_FLOOR_BYTES and info.file_size > limits.max_ratio * max(1, info.compress_size):
                out.errors.append({"file": entry, "error": f"compression ratio {info.file_size / max(1, info.compress_size):.0f}:1 "
                                   f"is over {limits.max_ratio:.0f}:1 (zip bomb?); not extracted"})
                continue
            target = dest.joinpath(*rel.parts)
            if dest.resolve() not in target.resolve().parents:
                out.errors.append({"file": entry, "error": "entry path leaves the archive; not extracted"})
                continue
            try:
                written += _copy_entry(zf, info, target, limits.max_total_bytes - written)
                out.files += 1
            except UserError as exc:
                target.unlink(missing_ok=True)
                out.errors.append({"file": entry, "error": str(exc)})
                if written >= limits.max_total_bytes:
                    break
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
                target.unlink(missing_ok=True)
                out.errors.append({"file": entry, "error": f"corrupt entry ({type(exc).__name__}: {exc})"})
    return out


def _copy_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with zf.open(info) as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 20):
            n += len(chunk)
            if n > info.file_size or n > budget:
                raise UserError("entry decompresses past its declared size or the archive's total cap; not extracted")
            dst.write(chunk)
    return n

