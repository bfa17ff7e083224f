"""Prepare: originals -> 24 kHz mono segments, as a new version (never an overwrite).

Per clip: decode the original, apply its trim, find speech (silero at 16 kHz), cut 5-15 s
segments on silences and word gaps, resample to 24 kHz (soxr HQ), bring each segment to the
loudness target under the peak ceiling (or, with keep-dynamics, one gain for the whole set),
measure its SNR (speech regions against the clip's non-speech) and its clipping, and keep or reject it. Every segment row records
its parent clip's hash, its cut times and (through its version) the settings."""
from __future__ import annotations

import hashlib
import json
import math
from typing import Callable

import numpy as np
from sqlalchemy import func, select

from studio.audio import loudness
from models.files import wav_bytes
from studio.audio.decode import SILENCE_DBFS, AudioError, decode_mono
from studio.audio.quality import speech_snr
from studio.audio.resample import TARGET_RATE, VAD_RATE
from studio.audio.segment import plan_segments, speech_units
from studio.audio.vad import VadSettings, speech_regions
from studio.datasets.models import Clip, PreparedVersion, Segment, Transcript
from studio.datasets.store import get_dataset_row, trim_bounds
from studio.db import Database, utcnow
from studio.errors import UserError
from studio.jobs import Job, sweep_stale
from studio.workspace import Workspace

DEFAULT_SETTINGS: dict = {
    "sample_rate": TARGET_RATE,
    "target_lufs": loudness.DEFAULT_TARGET_LUFS,
    "peak_dbfs": loudness.DEFAULT_PEAK_DBFS,
    "keep_dynamics": False,  # whisper/ASMR sets: one gain for the whole set instead of per segment
    "vad": True,
    "vad_threshold": 0.5,
    "min_speech_ms": 250,
    "min_silence_ms": 100,
    "speech_pad_ms": 30,
    "min_segment_s": 5.0,
    "max_segment_s": 15.0,
    "min_snr_db": 20.0,  # speech over the VAD's non-speech (quality.speech_snr); below: kept on disk, not trained on
    "max_clipped_fraction": 0.001,
}
_NUMERIC = {k for k, v in DEFAULT_SETTINGS.items() if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool))}


def resolve_settings(dataset_settings: dict | None, overrides: dict | None) -> dict:
    out = dict(DEFAULT_SETTINGS)
    for source in (dataset_settings or {}, overrides or {}):
        for key, value in source.items():
            if value is None:
                continue
            if key not in DEFAULT_SETTINGS:
                raise UserError(f"unknown prepare setting {key!r}; known: {', '.join(DEFAULT_SETTINGS)}")
            out[key] = bool(value) if isinstance(DEFAULT_SETTINGS[key], bool) else float(value) if key in _NUMERIC else value
    if out["sample_rate"] != TARGET_RATE:
        raise UserError(f"prepared audio is {TARGET_RATE} Hz (Bark's codec rate); sample_rate cannot change")
    out["sample_rate"] = TARGET_RATE
    if not 0.5 <= out["min_segment_s"] < out["max_segment_s"] <= 30:
        raise UserError(f"segment bounds must satisfy 0.5 <= min < max <= 30 s (got {out['min_segment_s']}-{out['max_segment_s']})")
    if not -70 <= out["target_lufs"] <= -5:
        raise UserError(f"loudness target {out['target_lufs']} LUFS is outside -70..-5")
    if not -20 <= out["peak_dbfs"] <= 0:
        raise UserError(f"peak ceiling {out['peak_dbfs']} dBFS is outside -20..0")
    if not 0.05 <= out["vad_threshold"] <= 0.95:
        raise UserError("vad_threshold must be within 0.05..0.95")
    return out


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def prepare_dataset(ws: Workspace, name: str, overrides: dict | None = None, *, job_id: int | None = None,
                    progress: Callable[[int, int, str], None] | None = None,
                    should_stop: Callable[[], bool] | None = None, log: Callable[[str], None] | None = None) -> dict:
    with ws.db.read() as s:
        dataset_id = get_dataset_row(s, name).id
    repair_versions(ws.db, dataset_id)
    with ws.db.write() as s:
        ds = get_dataset_row(s, name)
        settings = resolve_settings(ds.settings, overrides)
        clips = [(c.id, c.name, c.blob, c.sha256, *trim_bounds(c)) for c in
                 s.scalars(select(Clip).where(Clip.dataset_id == ds.id, Clip.in_use()).order_by(Clip.id))]
        if not clips:
            raise UserError(f"dataset {name!r} has no clips to prepare (none imported, or all excluded or deleted)")
        words_by_clip = {cid: w for cid, w in s.execute(select(Transcript.clip_id, Transcript.words)
                                                         .join(Clip, Clip.id == Transcript.clip_id)
                                                         .where(Clip.dataset_id == ds.id))}
        stats = {"clips": len(clips), "segments": 0, "kept": 0, "kept_duration_s": 0.0, "rejected": {}, "clip_errors": []}
        # a resumed job continues its own version: the clips it recorded stay, the rest are prepared
        version = s.scalar(select(PreparedVersion).where(PreparedVersion.dataset_id == ds.id,
                                                         PreparedVersion.job_id == job_id,
                                                         PreparedVersion.status != "ready")
                           .order_by(PreparedVersion.version.desc()).limit(1)) if job_id else None
        done: set[int] = set()
        if version is not None and version.settings_hash == settings_hash(settings):
            version.status, version.finished_at = "running", None
            for row in s.scalars(select(Segment).where(Segment.version_id == version.id)):
                done.add(row.clip_id)
                _count(stats, row.kept, row.duration, row.reject_reason)
        else:
            number = (s.scalar(select(func.max(PreparedVersion.version)).where(PreparedVersion.dataset_id == ds.id)) or 0) + 1
            version = PreparedVersion(dataset_id=ds.id, version=number, settings=settings,
                                      settings_hash=settings_hash(settings), status="running", job_id=job_id, stats={})
            s.add(version)
            s.flush()
        version_id, number = version.id, version.version
    vad = VadSettings(threshold=settings["vad_threshold"], min_speech_ms=int(settings["min_speech_ms"]),
                      min_silence_ms=int(settings["min_silence_ms"]), pad_ms=int(settings["speech_pad_ms"]))
    status = "failed"
    try:
        gain = _dataset_gain(ws, clips, settings) if settings["keep_dynamics"] else None
        if gain is not None:
            stats["dataset_gain_db"] = round(gain, 2)
        for i, (clip_id, clip_name, blob, sha, t0, t1) in enumerate(clips):
            if should_stop and should_stop():
                status = "cancelled"
                break
            if progress:
                progress(i, len(clips), f"clip {i + 1}/{len(clips)}: {clip_name}")
            if clip_id in done:
                continue
            try:
                rows = _prepare_clip(ws, clip_id, clip_name, blob, sha, t0, t1, words_by_clip.get(clip_id) or [], settings, vad, gain)
            except AudioError as exc:
                stats["clip_errors"].append({"clip_id": clip_id, "error": str(exc)})
                if log:
                    log(f"clip {clip_id}: {exc}")
                continue
            with ws.db.write() as s:
                for row in rows:
                    s.add(Segment(version_id=version_id, **row))
            for row in rows:
                _count(stats, row["kept"], row["duration"], row["reject_reason"])
        else:
            status = "ready"
        stats["kept_duration_s"] = round(stats["kept_duration_s"], 2)
        return {"dataset": name, "version": number, "status": status, "settings": settings, **stats}
    finally:
        with ws.db.write() as s:
            v = s.get(PreparedVersion, version_id)
            v.status, v.stats, v.finished_at = status, stats, utcnow()


def _count(stats: dict, kept: bool, duration: float, reason: str | None) -> None:
    stats["segments"] += 1
    if kept:
        stats["kept"] += 1
        stats["kept_duration_s"] += duration
    else:
        key = (reason or "rejected").split(" ")[0]
        stats["rejected"][key] = stats["rejected"].get(key, 0) + 1


def repair_versions(db: Database, dataset_id: int) -> list[int]:
    """Versions a killed prepare left 'running' (its worker or `--wait` process died, so its job is
    no longer running) become 'interrupted', with the reason in their stats. Resuming that job
    continues into the same version. Run before each prepare and each report."""
    sweep_stale(db)  # a job whose heartbeat stopped is marked interrupted first
    with db.read() as s:
        stuck = s.scalar(select(PreparedVersion.id).join(Job, Job.id == PreparedVersion.job_id)
                         .where(PreparedVersion.dataset_id == dataset_id, PreparedVersion.status == "running",
                                Job.status != "running").limit(1))
    if stuck is None:
        return []
    repaired = []
    with db.write() as s:
        rows = s.execute(select(PreparedVersion, Job).join(Job, Job.id == PreparedVersion.job_id)
                         .where(PreparedVersion.dataset_id == dataset_id, PreparedVersion.status == "running",
                                Job.status != "running"))
        for version, job in rows:
            done = s.scalar(select(func.count(func.distinct(Segment.clip_id))).where(Segment.version_id == version.id))
            version.status, version.finished_at = "interrupted", utcnow()
            version.stats = {**(version.stats or {}), "interrupted": (
                f"prepare job {job.id} stopped ({job.status}) with {done} clip(s) done; "
                f"`bark-studio jobs resume {job.id}` finishes this version")}
            repaired.append(version.version)
    return repaired


def _dataset_gain(ws: Workspace, clips, settings) -> float:
    lufs, peaks = [], []
    for _, name, blob, _, t0, t1 in clips:
        try:
            x = decode_mono(ws.root / blob, (TARGET_RATE,), start_s=t0, end_s=t1, label=name).audio[TARGET_RATE]
        except AudioError:
            continue
        lufs.append(loudness.measure_lufs(x, TARGET_RATE))
        peaks.append(loudness.peak_dbfs(x))
    return loudness.dataset_gain(lufs, peaks, settings["target_lufs"], settings["peak_dbfs"])


def _prepare_clip(ws: Workspace, clip_id: int, clip_name: str, blob: str, parent_sha: str, t0: float, t1: float,
                  words: list[dict], settings: dict, vad: VadSettings, gain: float | None) -> list[dict]:
    # streamed: 16 kHz for the VAD and 24 kHz for the segments, never the source-rate original whole
    rates = (VAD_RATE, TARGET_RATE) if settings["vad"] else (TARGET_RATE,)
    clip = decode_mono(ws.root / blob, rates, start_s=t0, end_s=t1, label=clip_name)
    x24 = clip.audio[TARGET_RATE]
    regions = speech_regions(clip.audio.pop(VAD_RATE), VAD_RATE, vad) if settings["vad"] else [(0.0, clip.duration)]
    # words live on the original timeline; shift them onto the trimmed one
    rel_words = [{**w, "start": w["start"] - t0, "end": w["end"] - t0} for w in words
                 if w["end"] > t0 and w["start"] < t1]
    plan = plan_segments(speech_units(regions, rel_words), settings["min_segment_s"], settings["max_segment_s"])
    rows = []
    for index, (a, b) in enumerate(plan):
        seg = x24[int(round(a * TARGET_RATE)):int(round(b * TARGET_RATE))]
        if seg.size < int(0.4 * TARGET_RATE):
            continue  # a stray blip under BS.1770's 400 ms block
        snr, _ = speech_snr(x24, TARGET_RATE, regions, span=(a, b))
        clipped = clip.clipped_fraction(a, b)
        silent = loudness.peak_dbfs(seg) < SILENCE_DBFS  # never kept, VAD or not (--no-vad on silence)
        if gain is None:
            out, facts = loudness.normalize(seg, TARGET_RATE, settings["target_lufs"], settings["peak_dbfs"])
            lufs = facts["output_lufs"]  # measured on `out` by normalize; not measured twice
        else:
            out = loudness.apply_gain(seg, gain)
            if loudness.peak_dbfs(out) > settings["peak_dbfs"]:
                out = loudness.limit_peaks(out, TARGET_RATE, settings["peak_dbfs"])
            lufs = loudness.measure_lufs(out, TARGET_RATE)
        data = wav_bytes(out, TARGET_RATE)
        sha, path = ws.store_bytes(data, ".wav")
        reason = None
        if silent:
            reason = f"silent (no sample above {SILENCE_DBFS:.0f} dBFS)"
        elif math.isfinite(snr) and snr < settings["min_snr_db"]:
            reason = f"snr {snr:.1f} dB is under {settings['min_snr_db']:.0f} dB"
        elif clipped > settings["max_clipped_fraction"]:
            reason = f"clipping {100 * clipped:.2f}% of samples at full scale"
        rows.append({"clip_id": clip_id, "index": index, "parent_sha256": parent_sha, "start": round(t0 + a, 4),
                     "end": round(t0 + b, 4), "sha256": sha, "blob": ws.relative(path),
                     "duration": round(out.size / TARGET_RATE, 4),
                     "lufs": round(lufs, 3) if math.isfinite(lufs) else None,
                     "peak_db": round(loudness.peak_dbfs(out), 3) if np.any(out) else None,
                     "snr_db": round(snr, 2) if math.isfinite(snr) else None,
                     "clipped_fraction": clipped, "kept": reason is None,
                     "reject_reason": reason})
    return rows
