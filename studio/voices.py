"""Voices (saved voice prompts) and the generation history.

A voice is a BarkProcessor-compatible .npz under the workspace's voices/ folder, made by a
"voice" job from a clip or a 5-12 s span of one. A generation row records everything needed to
reproduce a WAV: text, model, voice, adapters with scales, seed, sampling settings.
This module never imports torch: the web process reads and lists these rows.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from models.names import NAME_RE
from studio.db import Base, utcnow
from studio.errors import NotFound, UserError



class Voice(Base):
    __tablename__ = "voices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    npz_path: Mapped[str] = mapped_column(String(300))           # relative to the workspace
    model: Mapped[str] = mapped_column(String(200))               # token models it was made with (preset/id)
    source_path: Mapped[str] = mapped_column(String(500))         # the audio it came from (workspace-relative or absolute)
    source_clip_id: Mapped[int | None] = mapped_column(Integer)   # a dataset clip, when made from one
    span_start: Mapped[float] = mapped_column(Float)              # seconds into the source
    span_end: Mapped[float] = mapped_column(Float)
    semantic_len: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer)                  # coarse/fine frames (75 Hz)
    job_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "npz_path": self.npz_path, "model": self.model,
                "source_path": self.source_path, "source_clip_id": self.source_clip_id,
                "span_start": self.span_start, "span_end": self.span_end, "semantic_len": self.semantic_len,
                "frames": self.frames, "seconds": round(self.frames / 75.0, 3), "job_id": self.job_id,
                "created_at": self.created_at.isoformat() if self.created_at else None}


class Generation(Base):
    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(200))
    voice: Mapped[str | None] = mapped_column(String(80))         # voice name at the time (rows outlive voices)
    adapters: Mapped[list] = mapped_column(JSON, default=list)    # [{"name", "path", "scale"}]
    seed: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict] = mapped_column(JSON, default=dict)      # temperatures, min_eos_p, top-k/p, ...
    audio_path: Mapped[str] = mapped_column(String(300))          # relative to the workspace
    duration: Mapped[float] = mapped_column(Float)
    starred: Mapped[bool] = mapped_column(Boolean, default=False)
    job_id: Mapped[int | None] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)

    def as_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "model": self.model, "voice": self.voice,
                "adapters": self.adapters, "seed": self.seed, "params": self.params,
                "audio_path": self.audio_path, "duration": self.duration, "starred": self.starred,
                "job_id": self.job_id, "created_at": self.created_at.isoformat() if self.created_at else None}


# --- voices ------------------------------------------------------------------------------------

def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise UserError(f"voice name {name!r} is not allowed: use 1-80 letters, digits, '.', '_' or '-'")
    return name


def voice_file(ws, name: str) -> Path:
    return ws.voices_dir / f"{check_name(name)}.npz"


def list_voices(ws) -> list[dict]:
    with ws.db.read() as s:
        return [v.as_dict() for v in s.scalars(select(Voice).order_by(Voice.name))]


def get_voice(ws, name: str) -> dict:
    with ws.db.read() as s:
        v = s.scalar(select(Voice).where(Voice.name == name))
        if v is None:
            known = ", ".join(s.scalars(select(Voice.name).order_by(Voice.name))) or "none yet"
            raise NotFound(f"no voice named {name!r} (known: {known}); make one with `bark-studio voice create`")
        return v.as_dict()


def voice_exists(ws, name: str) -> bool:
    with ws.db.read() as s:
        return s.scalar(select(Voice.id).where(Voice.name == name)) is not None


def voice_path(ws, name: str) -> Path:
    """Absolute .npz path of a saved voice (the file must still be there), or of Bark's built-in
    voice NAME (`v2/en_speaker_6`), copied once from the hub cache into the workspace."""
    try:
        path = ws.root / get_voice(ws, name)["npz_path"]
    except NotFound:
        from models.catalog import is_builtin_voice_name

        if not is_builtin_voice_name(name):
            raise
        return builtin_voice_path(ws, name)
    if not path.is_file():
        raise UserError(f"voice {name!r}: its prompt file {path.name} is missing from the workspace")
    return path


def builtin_voice_path(ws, name: str) -> Path:
    from models import voice_prompt
    from models.errors import ModelInputError

    path = ws.voices_dir / "builtin" / (name.strip().replace("/", "__") + ".npz")
    if not path.is_file():
        try:
            voice_prompt.builtin(name).save(path)
        except ModelInputError as exc:
            raise UserError(str(exc)) from None
    return path


def stage_upload(ws, upload: str | Path) -> tuple[str, str]:
    """Copy a browser upload into the workspace's tmp/uploads, undecoded: the voice job decodes it
    (never the web process). Returns (workspace-relative staged path, the user's file name)."""
    import secrets
    import shutil

    from studio.audio.decode import display_name
    from studio.workspace import disk_full_as_user_error

    src = Path(upload)
    folder = ws.tmp_dir / "uploads" / secrets.token_hex(8)
    with disk_full_as_user_error(ws.root):
        folder.mkdir(parents=True)
        try:
            shutil.copyfile(src, folder / f"upload{src.suffix.lower()[:12]}")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return ws.relative(folder / f"upload{src.suffix.lower()[:12]}"), display_name(src)


def take_upload(ws, staged: str, name: str) -> Path:
    """In the voice job: decode a staged upload with the studio's decoder (errors name the user's
    file), keep it in the content store (the voice's source, for listening later) and return that copy."""
    from studio.audio.decode import decode_file

    decode_file(ws.inside(staged), label=name)
    return ws.store_file(ws.inside(staged))[1]


def discard_staged(ws, staged: str | None) -> None:
    """Remove a staged upload's folder once its job is done with it (taken, refused or failed)."""
    import shutil

    if not staged:
        return
    path = ws.inside(staged)
    if (ws.tmp_dir / "uploads") in path.parents:
        shutil.rmtree(path.parent, ignore_errors=True)


def record_voice(ws, *, name: str, npz: Path, model: str, source_path: str, source_clip_id: int | None,
                 span: tuple[float, float], semantic_len: int, frames: int, job_id: int | None) -> dict:
    with ws.db.write() as s:
        if s.scalar(select(Voice).where(Voice.name == name)) is not None:
            raise UserError(f"a voice named {name!r} already exists; delete it first or pick another name")
        v = Voice(name=name, npz_path=ws.relative(Path(npz)), model=model, source_path=source_path,
                  source_clip_id=source_clip_id, span_start=float(span[0]), span_end=float(span[1]),
                  semantic_len=int(semantic_len), frames=int(frames), job_id=job_id)
        s.add(v)
        s.flush()
        return v.as_dict()


def delete_voice(ws, name: str) -> dict:
    with ws.db.write() as s:
        v = s.scalar(select(Voice).where(Voice.name == name))
        if v is None:
            raise NotFound(f"no voice named {name!r}")
        info = v.as_dict()
        s.delete(v)
    (ws.root / info["npz_path"]).unlink(missing_ok=True)
    return info


# --- generations -------------------------------------------------------------------------------

def record_generation(ws, *, text: str, model: str, voice: str | None, adapters: list, seed: int,
                      params: dict, audio_path: Path, duration: float, job_id: int | None) -> dict:
    with ws.db.write() as s:
        g = Generation(text=text, model=model, voice=voice, adapters=list(adapters), seed=int(seed),
                       params=dict(params), audio_path=ws.relative(Path(audio_path)), duration=float(duration),
                       job_id=job_id)
        s.add(g)
        s.flush()
        return g.as_dict()


def list_generations(ws, limit: int = 100, starred: bool | None = None) -> list[dict]:
    with ws.db.read() as s:
        q = select(Generation).order_by(Generation.id.desc()).limit(limit)
        if starred is not None:
            q = q.where(Generation.starred == starred)
        return [g.as_dict() for g in s.scalars(q)]


def set_starred(ws, generation_id: int, starred: bool = True) -> dict:
    with ws.db.write() as s:
        g = s.get(Generation, generation_id)
        if g is None:
            raise NotFound(f"no generation with id {generation_id}")
        g.starred = bool(starred)
        return g.as_dict()
