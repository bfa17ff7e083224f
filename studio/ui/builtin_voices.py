"""Bark's built-in voices (`v2/en_speaker_6`, ... shipped in the Bark hub repos) as the Voices and
Generate tabs offer them: listed from the local hub cache by models.catalog (no torch), sampled by
a `generate` job with that voice. When the prompts are not downloaded, the list says so and names
the command that fetches them."""
from __future__ import annotations

from pathlib import Path

from models import catalog
from studio.inference import DEFAULT_MODEL
from studio.workspace import Workspace

SAMPLE_TEXT = "Hello! This is one of Bark's built-in voices, reading a short sample."
SUFFIX = " (Bark built-in)"


def names(model: str | None) -> list[str]:
    """The downloaded built-in voices, suno's recommended v2 prompts first."""
    return sorted(catalog.builtin_voices(model or DEFAULT_MODEL), key=lambda n: (not n.startswith("v2/"), n))


def choices(model: str | None) -> list[tuple[str, str]]:
    """(label, voice name) for a voice dropdown; the name is what `--voice` takes."""
    return [(name + SUFFIX, name) for name in names(model)]


def status_md(model: str | None) -> str:
    model = model or DEFAULT_MODEL
    if not catalog.components(model):
        return f"_`{model}` has no built-in voices (the test model is random weights, not a voice)._"
    found = names(model)
    if found:
        return f"{len(found)} built-in voices of `{catalog.preset_for(model).bark}`."
    missing = catalog.missing_line(model, only=catalog.JOB_NEEDS["builtin-voice"])
    return f"**Not downloaded:** {missing}" if missing else "_This model's repo lists no built-in voices._"


def sample(ws: Workspace, name: str | None, model: str | None) -> int:
    """Queue a `generate` job: the sample sentence in built-in voice `name`; its job id."""
    from studio.errors import UserError
    from workers.dispatch import submit

    if not name:
        raise UserError("choose a built-in voice first")
    return submit(ws, "generate", {"text": SAMPLE_TEXT, "model": model or DEFAULT_MODEL, "voice": name})["id"]


def sample_file(job: dict | None) -> Path | None:
    """The WAV a finished sample job wrote, else None."""
    if not job or job.get("status") != "succeeded":
        return None
    files = (job.get("result") or {}).get("files") or []
    return Path(files[0]) if files else None
