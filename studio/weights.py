"""Are the weights a job will load on this machine? Asked once, at submit time
(workers.dispatch.submit, which the CLI and every tab use), so a real model that is not downloaded
is one line naming what is missing and the command that fetches it, before any job row exists,
not minutes later inside a job. Torch-free: it reads models.catalog, which only looks at files.

    missing_weights("generate", {"text": "Hi", "model": "small"})  # None, or the one line
"""
from __future__ import annotations

from models import catalog
from models.asr import RANDOM_PRESET as RANDOM_WHISPER
from studio.inference import DEFAULT_MODEL


def _bark(params: dict) -> str:
    return str(params.get("model") or DEFAULT_MODEL)


def _needs(kind: str, p: dict) -> tuple[list[tuple[str, tuple[str, ...]]], list[str]]:
    """([(Bark model, catalog component keys), ...], [Whisper sizes]) that a `kind` job with params
    `p` will load; the model defaults are the handlers' own (studio.inference.DEFAULT_MODEL)."""
    bark: list[tuple[str, tuple[str, ...]]] = []
    whisper: list[str] = []

    def generation(params: dict) -> None:
        model = _bark(params)
        bark.append((model, catalog.JOB_NEEDS["generate"]))
        if params.get("voice") and catalog.is_builtin_voice_name(params["voice"]):
            bark.append((model, catalog.JOB_NEEDS["builtin-voice"]))

    if kind in ("generate", "tag_probe"):  # a tag probe generates with the adapter's base model
        generation(p)
    elif kind in ("train", "tokenize", "voice"):
        bark.append((_bark(p), catalog.JOB_NEEDS[kind]))
    elif kind == "sweep":  # an arm's model and voice replace the sweep's own (studio.experiments.grid)
        swept_arms = (p.get("axes") or {}).get("arm") or []
        arms = [a for a in p.get("arms") or [] if a.get("name") in swept_arms]
        for arm in arms or [{}]:
            generation({"model": arm.get("model") or p.get("model"), "voice": arm.get("voice") or p.get("voice")})
        whisper.append(p.get("asr") or "")
    elif kind == "eval":
        whisper.append(p.get("asr") or "")
    elif kind == "transcribe" and p.get("backend") != "faster-whisper":  # that one has its own hub files
        whisper.append(p.get("model_size") or "base")
    elif kind == "listening_stimuli":
        for system in p.get("systems") or []:
            if isinstance(system, dict) and isinstance(system.get("generation"), dict):
                generation(system["generation"])
    return bark, [w for w in whisper if w and w != RANDOM_WHISPER]


def _whisper_line(size: str) -> str | None:
    """One line when a real Whisper size is not in openai-whisper's download root (unknown sizes
    are left to the job, which names the sizes it knows)."""
    if size not in catalog.WHISPER_FILES or catalog.whisper_file(size) is not None:
        return None
    file, approx = catalog.WHISPER_FILES[size]
    root = catalog.whisper_root()
    # every real preset fetches the Whisper size it uses; any other size, openai-whisper fetches by name
    fetch = (catalog.DOWNLOAD_HINT.format(preset="small") if size == catalog.PRESETS["small"].whisper else
             f"python -c \"import whisper; whisper.load_model('{size}', download_root='{root}')\"")
    return (f"Whisper {size!r} is not downloaded: missing {file} ({catalog.human_bytes(approx)}) in {root}; "
            f"run `{fetch}`")


def missing_weights(kind: str, params: dict | None) -> str | None:
    """None when every weight file the job will load is local (or the job loads none); else one
    line naming what is missing and how to fetch it."""
    bark, whisper = _needs(kind, params or {})
    seen: set = set()
    for model, only in bark:
        if (model, only) in seen:
            continue
        seen.add((model, only))
        line = catalog.missing_line(model, only=only)
        if line:
            return line
    for size in dict.fromkeys(whisper):
        line = _whisper_line(size)
        if line:
            return line
    return None
