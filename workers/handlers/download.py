"""The `download` job: fetch everything a preset uses (models/weights.py), with progress on the
job row, so the studio can start it from a tab. params: preset (default small)."""
from __future__ import annotations

from workers.handlers.tokens import user_errors


def download_job(ctx) -> dict:
    from models import catalog, weights

    preset = str(ctx.params.get("preset") or "small").strip()
    ctx.progress(0.0, message=f"checking {preset}")

    def progress(i: int, n: int, what: str) -> None:
        ctx.check_cancelled()
        ctx.progress(step=i, total=n, message=f"downloading {what}" if i < n else "done")

    with user_errors():
        rows = weights.download(preset, progress=progress)
    return {"preset": preset, "components": rows, "bytes": sum(r["bytes"] for r in rows),
            "missing": catalog.missing_line(preset)}
