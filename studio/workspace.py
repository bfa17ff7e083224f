"""The workspace: one folder holding everything a user makes. Copying it copies the studio."""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from models.files import atomic_copy, atomic_write, sha256_file  # noqa: F401  (sha256_file: studio modules read it here)
from studio.errors import DiskFull, UserError, is_disk_full

HOME_ENV = "BARK_STUDIO_HOME"
DATABASE_URL_ENV = "BARK_STUDIO_DATABASE_URL"  # PostgreSQL at scale; SQLite in the workspace by default
REDIS_URL_ENV = "BARK_STUDIO_REDIS_URL"  # RedisHuey when set; SqliteHuey in the workspace otherwise


def default_home() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "bark-studio"


class Workspace:
    """Paths of one workspace and its content-addressed audio store."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    @classmethod
    def resolve(cls, home: str | os.PathLike | None = None) -> "Workspace":
        """`--home` wins, then BARK_STUDIO_HOME, then the user's data directory."""
        chosen = home or os.environ.get(HOME_ENV) or default_home()
        ws = cls(chosen)
        ws.ensure()
        return ws

    # Folders -----------------------------------------------------------------
    db_path = property(lambda self: self.root / "studio.db")
    queue_path = property(lambda self: self.root / "queue.db")
    audio_dir = property(lambda self: self.root / "audio")  # by content hash, never modified
    tokens_dir = property(lambda self: self.root / "tokens")
    voices_dir = property(lambda self: self.root / "voices")
    adapters_dir = property(lambda self: self.root / "adapters")
    checkpoints_dir = property(lambda self: self.root / "checkpoints")
    generated_dir = property(lambda self: self.root / "generated")
    exports_dir = property(lambda self: self.root / "exports")
    tmp_dir = property(lambda self: self.root / "tmp")
    models_dir = property(lambda self: self.root / "models")  # cached preset weights (tiny ones built here)

    def ensure(self) -> None:
        for d in (self.root, self.audio_dir, self.tokens_dir, self.voices_dir, self.adapters_dir,
                  self.checkpoints_dir, self.generated_dir, self.exports_dir, self.tmp_dir, self.models_dir):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def database_url(self) -> str:
        return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{self.db_path}"

    @property
    def redis_url(self) -> str | None:
        return os.environ.get(REDIS_URL_ENV) or None

    @cached_property
    def db(self):
        """The workspace's Database (migrated to the newest schema on first use)."""
        from studio.db import Database

        database = Database(self.database_url)
        database.upgrade()
        return database

    # Content-addressed audio store --------------------------------------------
    def blob_path(self, sha256: str, suffix: str) -> Path:
        return self.audio_dir / sha256[:2] / f"{sha256}{suffix}"

    def store_bytes(self, data: bytes, suffix: str) -> tuple[str, Path]:
        """Store bytes under their SHA-256; an existing blob is kept, never overwritten."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.blob_path(digest, suffix)
        if not target.exists():
            with disk_full_as_user_error(self.root):
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(target, data)
        return digest, target

    def store_file(self, source: Path, suffix: str | None = None, digest: str | None = None) -> tuple[str, Path]:
        """Copy a file into the store under its SHA-256 (`digest` when the caller already has it).
        A failed copy leaves no partial file; a full disk raises DiskFull."""
        source = Path(source)
        digest = digest or sha256_file(source)
        target = self.blob_path(digest, suffix if suffix is not None else source.suffix.lower())
        if not target.exists():
            with disk_full_as_user_error(self.root):
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_copy(source, target)
        return digest, target

    def inside(self, path: str | os.PathLike) -> Path:
        """Resolve a path that came from a user; refuse anything outside the workspace."""
        candidate = (self.root / path).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            raise UserError(f"path {str(path)!r} leaves the workspace")
        return candidate

    def relative(self, path: Path) -> str:
        return str(Path(path).resolve().relative_to(self.root))


@contextmanager
def disk_full_as_user_error(where: Path):
    """Turn a full disk under `where` into DiskFull (one clear line, no server path)."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        if is_disk_full(exc, where):
            raise DiskFull() from exc
        raise
