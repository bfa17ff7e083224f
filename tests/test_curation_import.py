"""Importing: every format, every corpus layout, zips, and every kind of bad input. One bad file
leaves the rest imported, and nothing already stored is lost or overwritten."""
from __future__ import annotations

import random
import zipfile

import pytest

from studio.datasets import store
from studio.datasets.importer import ImportOptions, import_paths
from studio.workspace import sha256_file
from tests.curation_audio import make_bad, make_formats, make_layouts, make_zip


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("curation-import")
    formats = make_formats(root / "formats")
    return {"root": root, "formats": formats, "bad": make_bad(root / "bad", formats["wav"]),
            "layouts": make_layouts(root / "layouts", [formats["wav"], formats["ogg"]])}


def _errors(report) -> dict[str, str]:
    return {e["file"]: e["error"] for e in report["errors"]}


def test_files_of_every_format_import_with_their_facts(ws, made):
    store.create_dataset(ws.db, "mix")
    paths = [made["formats"][k] for k in ("wav", "flac", "ogg", "mp3", "wav8k")]
    report = import_paths(ws, "mix", paths, ImportOptions(source="studio session", licence="CC0, consent on file",
                                                          speaker="anna", provenance="human"))
    assert report["errors"] == [] and len(report["imported"]) == 5
    clips = store.list_clips(ws.db, "mix")
    assert {(c["format"], c["sample_rate"], c["channels"]) for c in clips} == {
        ("WAV", 22050, 1), ("FLAC", 44100, 2), ("OGG", 48000, 1), ("MP3", 16000, 2), ("WAV", 8000, 1)}
    for c in clips:
        assert (c["source"], c["licence"], c["speaker"], c["provenance"]) == ("studio session", "CC0, consent on file", "anna", "human")
        stored = ws.root / c["blob"]
        assert sha256_file(stored) == c["sha256"]  # the original's bytes, stored by their hash


@pytest.mark.parametrize("layout, texts, speakers", [
    ("ljspeech", {"Printing, in the only sense", "in being comparatively modern."}, {""}),
    ("list", {"First listed line.", "Second listed line?"}, {"alice", "bob"}),
    ("vctk", {"Please call Stella, says p225.", "Please call Stella, says p226."}, {"p225", "p226"}),
    ("commonvoice", {"Common voice sentence one.", "Common voice sentence two!"}, {"aaaaaaaaaaaa", "bbbbbbbbbbbb"}),
])
def test_corpus_layouts_bring_their_transcripts_and_speakers(ws, made, layout, texts, speakers):
    store.create_dataset(ws.db, layout)
    report = import_paths(ws, layout, [made["layouts"][layout]])
    assert report["errors"] == [] and layout in report["layouts"]
    clips = store.list_clips(ws.db, layout)
    assert {c["text"] for c in clips} == texts
    assert {c["speaker"] for c in clips} == speakers
    assert all(c["transcript_source"] == "human" for c in clips)  # corpus transcripts were written by people
    if layout == "vctk":
        assert len(report["skipped"]) == 2  # the mic2 twin of each take


def test_a_zipped_corpus_and_a_list_file_given_alone(ws, made, tmp_path):
    store.create_dataset(ws.db, "zipped")
    lj = made["layouts"]["ljspeech"]
    archive = tmp_path / "lj.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in lj.rglob("*"):
            if f.is_file():
                zf.write(f, "LJSpeech-1.1/" + str(f.relative_to(lj)))
    report = import_paths(ws, "zipped", [archive])
    assert report["errors"] == [] and report["layouts"] == ["ljspeech"] and len(report["imported"]) == 2
    store.create_dataset(ws.db, "listed")
    report = import_paths(ws, "listed", [made["layouts"]["list"] / "train.txt"])
    assert {c["text"] for c in store.list_clips(ws.db, "listed")} == {"First listed line.", "Second listed line?"}


def test_bad_files_are_named_and_the_rest_of_the_batch_imports(ws, made, tmp_path, monkeypatch):
    store.create_dataset(ws.db, "batch")
    first = import_paths(ws, "batch", [made["formats"]["wav"]])
    kept = store.list_clips(ws.db, "batch")[0]
    kept_bytes = (ws.root / kept["blob"]).read_bytes()

    base = made["formats"]["wav"].read_bytes()
    huge = tmp_path / "huge.wav"
    huge.write_bytes(base + b"\0" * 4096)  # over the limit by 3 kB (trailing bytes after the data chunk)
    monkeypatch.setenv("BARK_STUDIO_MAX_AUDIO_MB", str((len(base) + 1024) / 1024 / 1024))
    odd = tmp_path / "ñ odd name – 'quoted' \x07bell.ogg"
    odd.write_bytes(made["formats"]["ogg"].read_bytes())
    misnamed = tmp_path / "really-flac.wav"
    misnamed.write_bytes(made["formats"]["flac"].read_bytes())  # a FLAC named .wav: content decides
    bad = made["bad"]
    batch = [bad["empty"], bad["corrupt"], bad["not_audio"], bad["silent"], bad["short"], bad["text_ext"], huge,
             made["formats"]["wav"], made["formats"]["mp3"], odd, tmp_path / "missing.wav"]
    report = import_paths(ws, "batch", batch)
    errors = _errors(report)
    assert "empty (0 bytes)" in errors["empty.wav"]
    assert "corrupt or unreadable WAV" in errors["corrupt.wav"]
    assert "not an audio file" in errors["notes.mp3"]
    assert "silent" in errors["silent.wav"]
    assert "shorter than the 0.4 s minimum" in errors["short.wav"]
    assert "not an audio file or zip" in errors["readme.pdf"]
    assert "limit per file" in errors["huge.wav"]
    assert "no such file" in errors["missing.wav"]
    assert all("\n" not in e and "/tmp" not in e for e in errors.values())  # one line, no server paths
    assert [d["clip_id"] for d in report["duplicates"]] == [first["imported"][0]["clip_id"]]
    names = {i["file"] for i in report["imported"]}
    assert names == {"stereo16.mp3", "ñ odd name – 'quoted' \\x07bell.ogg"}  # control characters shown escaped
    # what was there before is untouched
    assert (ws.root / kept["blob"]).read_bytes() == kept_bytes
    assert store.get_clip(ws.db, kept["id"])["sha256"] == kept["sha256"]
    assert len(store.list_clips(ws.db, "batch")) == 3
    monkeypatch.delenv("BARK_STUDIO_MAX_AUDIO_MB")
    report = import_paths(ws, "batch", [misnamed])
    assert report["errors"] == [] and report["imported"][0]["format"] == "FLAC"


def test_zip_traversal_absolute_and_link_entries_are_refused(ws, made, tmp_path):
    store.create_dataset(ws.db, "zips")
    good = made["formats"]["wav"].read_bytes()
    archive = make_zip(tmp_path / "evil.zip", {"../escape.wav": good, "/etc/abs.wav": good,
                                               "..\\windows.wav": good, "C:/drive.wav": good,
                                               "ok/inner.wav": good, "nested.zip": b"PK"})
    with zipfile.ZipFile(archive, "a") as zf:
        link = zipfile.ZipInfo("link.wav")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
    report = import_paths(ws, "zips", [archive])
    errors = _errors(report)
    for name in ("../escape.wav", "/etc/abs.wav", "..\\windows.wav", "C:/drive.wav"):
        assert "leaves the archive" in errors[f"evil.zip:{name}"]
    assert "symbolic link" in errors["evil.zip:link.wav"]
    assert "nested archive" in errors["evil.zip:nested.zip"]
    assert [i["file"] for i in report["imported"]] == ["evil.zip:ok/inner.wav"]
    assert not (tmp_path / "escape.wav").exists() and not (ws.root / "escape.wav").exists()
    assert not any(ws.tmp_dir.iterdir())  # extraction folders are cleaned up


def test_zip_bombs_and_oversized_archives_are_refused(ws, made, tmp_path, monkeypatch):
    store.create_dataset(ws.db, "bombs")
    bomb = make_zip(tmp_path / "bomb.zip", {"zeros.wav": b"\x00" * (30 << 20)})
    report = import_paths(ws, "bombs", [bomb, made["formats"]["wav"]])
    assert "zip bomb" in _errors(report)["bomb.zip"]
    assert len(report["imported"]) == 1  # the good file beside it still imports
    good = made["formats"]["ogg"].read_bytes()
    many = make_zip(tmp_path / "many.zip", {f"c{i}.ogg": good for i in range(12)})
    monkeypatch.setenv("BARK_STUDIO_ZIP_MAX_ENTRIES", "10")
    assert "12 entries is over the cap of 10" in _errors(import_paths(ws, "bombs", [many]))["many.zip"]
    monkeypatch.setenv("BARK_STUDIO_ZIP_MAX_ENTRIES", "100")
    monkeypatch.setenv("BARK_STUDIO_ZIP_MAX_TOTAL_MB", str(len(good) * 5 / 1024 / 1024))
    assert "uncompressed is over the cap" in _errors(import_paths(ws, "bombs", [many]))["many.zip"]
    monkeypatch.delenv("BARK_STUDIO_ZIP_MAX_TOTAL_MB")
    # a bomb hidden among real entries: only the bomb entry is refused
    noise = random.Random(0).randbytes(200_000)  # incompressible, so the archive as a whole looks normal
    mixed = make_zip(tmp_path / "mixed.zip", {"real.ogg": good, "notes.bin": noise, "fake.wav": b"\x00" * (3 << 20)})
    monkeypatch.setenv("BARK_STUDIO_ZIP_MAX_RATIO", "50")
    with zipfile.ZipFile(mixed) as zf:
        assert sum(i.file_size for i in zf.infolist()) < 50 * sum(i.compress_size for i in zf.infolist())
    report = import_paths(ws, "bombs", [mixed])
    assert "compression ratio" in _errors(report)["mixed.zip:fake.wav"]
    assert [i["file"] for i in report["imported"]] == ["mixed.zip:real.ogg"]
