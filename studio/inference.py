"""How audio is generated: the engine and the inference precision a generate or sweep job names.

Torch-free, so the web process, the CLI and the sweep planner check these options without loading
a model; workers resolve 'auto' (models.attention.resolve_precision) when they load one."""
from __future__ import annotations

from models.names import ENGINES, PRECISIONS  # noqa: F401  (the CLI and the tabs read them here)
from studio.errors import UserError

# The Bark preset every command, tab and job uses when none is named. `tiny` (random weights, for
# tests) runs only when named.
DEFAULT_MODEL = "small"
TEST_MODEL = "tiny"
TEST_MODEL_LABEL = "tiny (test model: random weights, not a voice)"
# What a stored generation without engine/precision keys was made with (before the fast engine).
LEGACY_ENGINE, LEGACY_PRECISION = "reference", "fp32"


def inference_options(p: dict) -> tuple[str, str]:
    """`engine` (default fast) and `precision` (default auto) of a job's params, checked."""
    engine = p.get("engine") or "fast"
    if engine not in ENGINES:
        raise UserError(f"engine {engine!r}: use {' or '.join(ENGINES)}")
    precision = p.get("precision") or "auto"
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r}: use {', '.join(PRECISIONS)}")
    return engine, precision


def stored_inference(params: dict) -> tuple[str, str]:
    """(engine, precision) an output was made with: older params without them mean reference, fp32."""
    return params.get("engine") or LEGACY_ENGINE, params.get("precision") or LEGACY_PRECISION
