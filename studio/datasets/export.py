"""Export the newest prepared version as an LJSpeech-style folder:

    DIR/wavs/<dataset>_<clip>_<index>.wav   24 kHz mono 16-bit
    DIR/metadata.csv                         id|text|text
    DIR/manifest.json                        dataset, version, settings, dataset hash, and per file:
                                             sha256, parent clip and its sha256, cut times, speaker

The target must be a new or empty folder: an export never overwrites anything."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from studio.datasets.api import dataset_hash, training_items
from studio.datasets.models import PreparedVersion
from studio.datasets.store import get_dataset_row, latest_version
from studio.errors import UserError
from studio.workspace import Workspace, sha256_file


def export_dataset(ws: Workspace, name: str, target: str | Path) -> dict:
    target = Path(target).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target} exists and is not an empty folder; export refuses to overwrite")
    items = training_items(ws, name)
    if not items:
        raise UserError(f"dataset {name!r} has no kept segments with text to export")
    with ws.db.read() as s:
        ds = get_dataset_row(s, name)
        version: PreparedVersion = latest_version(s, ds.id)
        settings = version.settings
        number = version.version
    (target / "wavs").mkdir(parents=True, exist_ok=True)
    files, lines = [], []
    for it in items:
        stem = f"{name}_{it['clip_id']:05d}_{it['segment_id']:06d}"
        dest = target / "wavs" / f"{stem}.wav"
        shutil.copyfile(it["path"], dest)
        digest = sha256_file(dest)
        if digest != it["sha256"]:
            raise UserError(f"segment {it['segment_id']} does not match its recorded hash; the workspace store is damaged")
        text = " ".join(it["text"].split()).replace("|", "/")
        lines.append(f"{stem}|{text}|{text}")
        files.append({"file": f"wavs/{stem}.wav", "sha256": digest, "duration": it["duration"], "text": it["text"],
                      "speaker": it["speaker"], "clip_id": it["clip_id"], "segment_id": it["segment_id"],
                      "start": it["start"], "end": it["end"], "provenance": it["provenance"]})
    with ws.db.read() as s:
        from studio.datasets.models import Segment

        parents = {g.id: g.parent_sha256 for g in s.query(Segment).filter(Segment.version_id == version.id)}
    for f in files:
        f["parent_sha256"] = parents[f["segment_id"]]
    (target / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta_sha = sha256_file(target / "metadata.csv")
    manifest = {"dataset": name, "version": number, "sample_rate": 24000, "settings": settings,
                "dataset_hash": dataset_hash(ws, name), "metadata_sha256": meta_sha,
                "segments": len(files), "duration_s": round(sum(f["duration"] for f in files), 3), "files": files}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return {"dataset": name, "version": number, "folder": str(target), "segments": len(files),
            "duration_s": manifest["duration_s"], "dataset_hash": manifest["dataset_hash"]}
