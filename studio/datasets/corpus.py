"""Recognising transcribed corpus layouts inside a folder: LJSpeech (`metadata.csv` + `wavs/`),
`wav|text` lists (optionally `wav|speaker|text`), VCTK (`txt/<spk>/*.txt` + `wav48*/<spk>/*`),
Common Voice (`*.tsv` with `path` and `sentence` columns + `clips/`), and loose files with a
same-name `.txt`/`.lab` beside them. The result maps each audio file to its text and speaker."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from studio.audio.decode import AUDIO_EXTENSIONS

# VCTK's file names carry the speaker: p225_001.wav, p225_001_mic1.flac (s5_001 for the one "s" speaker).
VCTK_NAME = re.compile(r"^(?P<speaker>[ps]\d{1,4})_\d{3}(?P<mic>_mic[12])?$")
LIST_LINE = re.compile(r"^[^|]+\.(wav|flac|ogg|oga|opus|mp3)\|", re.IGNORECASE)
SKIP_DIRS = {"__MACOSX", ".git"}


@dataclass
class Meta:
    text: str | None = None
    speaker: str | None = None
    layout: str = "files"
    guessed: bool = False  # the speaker read from a file name alone: an explicit --speaker wins over it


@dataclass
class Layout:
    meta: dict[Path, Meta]  # resolved audio path -> what the corpus says about it
    layouts: list[str]
    missing: list[dict]  # {"file", "error"}: listed but not present
    skip: set[Path]  # present but deliberately not imported (e.g. VCTK mic2 twins)


def audio_files(root: Path) -> list[Path]:
    """Regular audio files under root (no symlinks, no hidden or macOS metadata files), sorted."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel):
            continue
        if p.is_symlink() or not p.is_file():
            continue
        if p.suffix.lower() in AUDIO_EXTENSIONS:
            out.append(p)
    return out


def read_layout(root: Path) -> Layout:
    root = root.resolve()
    lay = Layout(meta={}, layouts=[], missing=[], skip=set())
    _ljspeech(root, lay)
    _lists(root, lay)
    _vctk(root, lay)
    _common_voice(root, lay)
    _sidecars(root, lay)
    _vctk_names(root, lay)
    return lay


def _add(lay: Layout, path: Path, meta: Meta, listed_in: Path, root: Path) -> None:
    path = path.resolve()
    if root not in path.parents:
        lay.missing.append({"file": str(listed_in.relative_to(root)), "error": f"entry {path.name} points outside the folder; ignored"})
        return
    if not path.is_file():
        lay.missing.append({"file": str(path.relative_to(root)), "error": f"listed in {listed_in.relative_to(root)} but missing"})
        return
    lay.meta.setdefault(path, meta)
    if meta.layout not in lay.layouts:
        lay.layouts.append(meta.layout)


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()


def _ljspeech(root: Path, lay: Layout) -> None:
    for meta_file in sorted(root.rglob("metadata.csv")):
        wavs = meta_file.parent / "wavs"
        for line in _read_lines(meta_file):
            cols = line.split("|")
            if len(cols) < 2 or not cols[0].strip():
                continue
            clip_id = cols[0].strip()
            text = (cols[2] if len(cols) > 2 and cols[2].strip() else cols[1]).strip()
            name = clip_id if Path(clip_id).suffix.lower() in AUDIO_EXTENSIONS else clip_id + ".wav"
            _add(lay, wavs / name, Meta(text=text, layout="ljspeech"), meta_file, root)


def _lists(root: Path, lay: Layout) -> None:
    for f in sorted(root.rglob("*")):
        if f.suffix.lower() not in (".txt", ".list", ".csv") or f.name == "metadata.csv" or not f.is_file():
            continue
        if f.stat().st_size > 50 * 1024 * 1024:
            continue
        lines = [ln for ln in _read_lines(f) if ln.strip()]
        if not lines or not LIST_LINE.match(lines[0]):
            continue
        for line in lines:
            cols = line.split("|")
            if len(cols) < 2:
                continue
            rel, speaker, text = cols[0].strip(), (cols[1].strip() if len(cols) >= 3 else None), cols[-1].strip()
            candidate = (f.parent / rel) if (f.parent / rel).exists() else (root / rel)
            _add(lay, candidate, Meta(text=text, speaker=speaker, layout="list"), f, root)


def _vctk(root: Path, lay: Layout) -> None:
    for txt_dir in sorted(d for d in root.rglob("txt") if d.is_dir()):
        base = txt_dir.parent
        audio_dirs = [d for d in base.iterdir() if d.is_dir() and d.name.lower().startswith("wav")]
        if not audio_dirs:
            continue
        by_stem: dict[str, list[Path]] = {}
        for d in audio_dirs:
            for p in audio_files(d):
                by_stem.setdefault(re.sub(r"_mic[12]$", "", p.stem), []).append(p)
        for t in sorted(txt_dir.rglob("*.txt")):
            speaker = t.parent.name if t.parent != txt_dir else None
            candidates = sorted(by_stem.get(t.stem, []))
            if not candidates:
                lay.missing.append({"file": str(t.relative_to(root)), "error": "transcript without its audio in wav*/"})
                continue
            mic1 = [p for p in candidates if p.stem.endswith("_mic1")]
            chosen = mic1[0] if mic1 else candidates[0]
            lay.skip.update(p.resolve() for p in candidates if p != chosen)  # mic2 twin of the same take
            text = t.read_text(encoding="utf-8", errors="replace").strip()
            _add(lay, chosen, Meta(text=text, speaker=speaker, layout="vctk"), t, root)


def _common_voice(root: Path, lay: Layout) -> None:
    tsvs = sorted(root.rglob("*.tsv"))
    preferred = [t for t in tsvs if t.name == "validated.tsv"]
    for tsv in preferred or tsvs:
        with open(tsv, encoding="utf-8", errors="replace", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            if not reader.fieldnames or not {"path", "sentence"} <= set(reader.fieldnames):
                continue
            for row in reader:
                if not row.get("path"):
                    continue
                speaker = (row.get("client_id") or "")[:12] or None
                _add(lay, tsv.parent / "clips" / row["path"], Meta(text=(row.get("sentence") or "").strip(),
                                                                   speaker=speaker, layout="commonvoice"), tsv, root)


def _sidecars(root: Path, lay: Layout) -> None:
    for p in audio_files(root):
        if p.resolve() in lay.meta:
            continue
        for ext in (".txt", ".lab"):
            side = p.with_suffix(ext)
            if side.is_file() and side.stat().st_size < 100_000:
                text = side.read_text(encoding="utf-8", errors="replace").strip()
                if text and not LIST_LINE.match(text):
                    lay.meta[p.resolve()] = Meta(text=" ".join(text.split()), layout="sidecar")
                    if "sidecar" not in lay.layouts:
                        lay.layouts.append("sidecar")
                break


def name_meta(path: Path) -> Meta | None:
    """What a lone file's name says (a VCTK name gives the speaker), or None."""
    m = VCTK_NAME.match(path.stem)
    return Meta(speaker=m["speaker"], layout="vctk", guessed=path.parent.name != m["speaker"]) if m else None


def _vctk_names(root: Path, lay: Layout) -> None:
    """VCTK audio without its txt/ folder (wav48/p225/p225_001.wav, or loose p225_001.wav files):
    the speaker comes from the file name (in its speaker's folder it is certain, otherwise an
    explicit --speaker wins); of a take's two microphones only mic1 is imported."""
    files = [p for p in audio_files(root) if VCTK_NAME.match(p.stem)]
    stems = {p.parent / p.stem for p in files}
    for p in files:
        rp = p.resolve()
        m = VCTK_NAME.match(p.stem)
        if rp in lay.skip or (lay.meta.get(rp) and lay.meta[rp].speaker):
            continue
        if m["mic"] == "_mic2" and (p.parent / f"{p.stem[:-5]}_mic1") in stems:
            lay.skip.add(rp)
            continue
        guessed = name_meta(p)
        meta = lay.meta.get(rp)
        if meta is None:
            lay.meta[rp] = guessed
        else:
            meta.speaker, meta.guessed = guessed.speaker, guessed.guessed  # a sidecar's text, VCTK's speaker
        if "vctk" not in lay.layouts:
            lay.layouts.append("vctk")
