"""Names the studio and the model core share, without torch (studio/ imports this module too):
Bark's stages, precisions, generation engines and training methods, the audio suffixes the
decoder reads, and the rule for names users give to datasets, voices and adapters."""
from __future__ import annotations

import re

from models.errors import ModelInputError

STAGES = ("semantic", "coarse", "fine")
_STAGE_ALIASES = {"semantic": "semantic", "text": "semantic", "coarse": "coarse", "coarse_acoustics": "coarse",
                  "fine": "fine", "fine_acoustics": "fine"}
PRECISIONS = ("auto", "bf16", "fp16", "fp32")  # models.attention.resolve_precision's names
ENGINES = ("fast", "reference")  # models.fast_generation, or the model core's own loop
METHODS = ("lora", "full")       # small adapters, or every weight
DEFAULT_METHOD = "lora"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")  # what studio.audio.decode reads


def name_pattern(max_length: int) -> re.Pattern:
    """A user-given name: letters, digits, '.', '_' or '-', starting with a letter or digit."""
    return re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{max_length - 1}}}$")


NAME_RE = name_pattern(80)  # voices and adapters (their name columns hold 80 characters)


def parse_stages(stages) -> tuple[str, ...]:
    """'semantic,coarse' or ['fine', 'coarse'] -> ('semantic', 'coarse', 'fine') order, no repeats."""
    if isinstance(stages, str):
        stages = [s for s in stages.split(",") if s.strip()]
    chosen = set()
    for s in stages:
        key = _STAGE_ALIASES.get(str(s).strip().lower())
        if key is None:
            raise ModelInputError(f"unknown stage {s!r}; choose from {', '.join(STAGES)}")
        chosen.add(key)
    if not chosen:
        raise ModelInputError(f"no stage chosen; choose one or more of {', '.join(STAGES)}")
    return tuple(s for s in STAGES if s in chosen)
