"""Trim, prepare, transcripts and the linter, the report, the export, and the API other rooms read."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from studio.audio.loudness import measure_lufs
from studio.datasets import store
from studio.datasets.api import dataset_hash, prepared_segments, training_items
from studio.datasets.export import export_dataset
from studio.datasets.importer import ImportOptions, import_paths
from studio.datasets.lint import lint
from studio.datasets.prepare import prepare_dataset
from studio.datasets.report import build_report, plot_pngs, tier_for
from studio.datasets.segtext import segment_text
from studio.errors import UserError
from studio.workspace import Workspace, sha256_file
from tests.curation_audio import long_speech


@pytest.fixture(scope="module")
def audio(tmp_path_factory, slt_wav):
    root = tmp_path_factory.mktemp("curation-prepare")
    speech, sr = sf.read(slt_wav, dtype="float32")
    noisy = root / "noisy.wav"
    sf.write(noisy, speech + np.random.default_rng(0).normal(0, 0.03, speech.shape).astype(np.float32), sr)
    quiet = root / "quiet.wav"
    sf.write(quiet, speech * 0.1, sr)
    return {"long": long_speech(root), "noisy": noisy, "quiet": quiet}


@pytest.fixture(scope="module")
def pws(tmp_path_factory):
    """One workspace for the module's prepared dataset (prepare runs once; tests that change it run last)."""
    return Workspace.resolve(tmp_path_factory.mktemp("curation-prepared-ws"))


@pytest.fixture(scope="module")
def prepared(pws, audio, awb_wav, slt_wav):
    """A dataset of a long espeak recording, the two ARCTIC clips and a noisy copy, prepared once."""
    ws = pws
    store.create_dataset(ws.db, "voice")
    import_paths(ws, "voice", [audio["long"], awb_wav, slt_wav, audio["noisy"]], ImportOptions(speaker="v"))
    clips = {c["name"]: c for c in store.list_clips(ws.db, "voice")}
    store.set_transcript(ws.db, clips["awb_arctic_a0007.wav"]["id"],
                         "And you always want to see it in the superlative degree.")
    store.set_transcript(ws.db, clips["slt_arctic_a0009.wav"]["id"], "He turned sharply, and faced Gregson across the table.")
    store.set_transcript(ws.db, clips["noisy.wav"]["id"], "He turned sharply [sighs] and faced Gregson!")
    store.set_trim(ws.db, clips["slt_arctic_a0009.wav"]["id"], 0.3, 2.9)
    result = prepare_dataset(ws, "voice")
    return {"clips": clips, "result": result}


def test_trim_is_numbers_on_the_clip_with_undo(ws, awb_wav):
    store.create_dataset(ws.db, "t")
    import_paths(ws, "t", [awb_wav])
    clip = store.list_clips(ws.db, "t")[0]
    before = sha256_file(ws.root / clip["blob"])
    store.set_trim(ws.db, clip["id"], 0.5, 3.5)
    store.set_trim(ws.db, clip["id"], 1.0, 3.0)
    c = store.get_clip(ws.db, clip["id"])
    assert (c["trim_start"], c["trim_end"], c["trimmed_duration"]) == (1.0, 3.0, 2.0)
    assert store.undo_trim(ws.db, clip["id"])["trim_start"] == 0.5
    assert store.undo_trim(ws.db, clip["id"])["trim_start"] is None
    with pytest.raises(UserError, match="no trim to undo"):
        store.undo_trim(ws.db, clip["id"])
    with pytest.raises(UserError, match="outside"):
        store.set_trim(ws.db, clip["id"], 1.0, 9.0)
    with pytest.raises(UserError, match="at least 0.4 s"):
        store.set_trim(ws.db, clip["id"], 1.0, 1.2)
    assert sha256_file(ws.root / clip["blob"]) == before == clip["sha256"]  # the original never changes


def test_prepare_makes_24k_mono_segments_at_the_target_within_bounds(pws, prepared):
    ws = pws
    result, clips = prepared["result"], prepared["clips"]
    assert result["status"] == "ready" and result["version"] == 1
    items = training_items(ws.db, "voice")
    by_clip: dict[int, list] = {}
    for it in items:
        info = sf.info(it["path"])
        assert (info.samplerate, info.channels) == (24_000, 1)
        audio, sr = sf.read(it["path"], dtype="float32")
        assert abs(measure_lufs(audio, sr) - (-20.0)) < 0.5
        assert np.abs(audio).max() <= 10 ** (-1 / 20) + 1e-3  # peak ceiling -1 dBFS
        assert sha256_file(it["path"]) == it["sha256"]
        by_clip.setdefault(it["clip_id"], []).append(it)
    long_id = clips["long.wav"]["id"]
    long_segments = [g for g in prepared_segments(ws.db, "voice") if g["clip_id"] == long_id]
    assert len(long_segments) >= 2 and all(5.0 <= g["duration"] <= 15.0 for g in long_segments)
    assert all(g["text"] is None for g in long_segments)  # untranscribed: not training items yet
    for g in long_segments:
        audio, sr = sf.read(g["path"], dtype="float32")
        assert sr == 24_000 and abs(measure_lufs(audio, sr) + 20.0) < 0.5
    slt = by_clip[clips["slt_arctic_a0009.wav"]["id"]][0]
    assert 0.3 <= slt["start"] and slt["end"] <= 2.9  # the trim holds
    assert slt["text"] == "He turned sharply, and faced Gregson across the table."
    assert long_id not in by_clip and all(it["text"] for it in items)


def test_clean_arctic_recordings_pass_the_default_snr_filter(pws, prepared):
    """Clean studio speech is kept at the default 20 dB (WADA read awb at ~16 dB and dropped it)."""
    assert prepared["result"]["settings"]["min_snr_db"] == 20.0
    kept = {it["clip_id"]: it for it in training_items(pws.db, "voice")}
    for name in ("awb_arctic_a0007.wav", "slt_arctic_a0009.wav"):
        item = kept.get(prepared["clips"][name]["id"])
        assert item is not None, name
    segments = {g["clip_id"]: g for g in prepared_segments(pws.db, "voice")}
    assert segments[prepared["clips"]["awb_arctic_a0007.wav"]["id"]]["snr_db"] > 24


def test_low_snr_segments_are_filtered_and_reported(pws, prepared):
    ws = pws
    report = build_report(ws.db, "voice")
    noisy_id = prepared["clips"]["noisy.wav"]["id"]
    assert noisy_id not in {it["clip_id"] for it in training_items(ws.db, "voice")}
    assert prepared["result"]["rejected"] == {"snr": 1}
    assert any("filtered out (low SNR or clipping)" in w for w in report["warnings"])
    assert report["snr_db"]["n"] == report["segments"] and report["snr_db"]["min"] < 12


def test_training_items_and_dataset_hash_follow_text_edits(pws, prepared):
    ws = pws
    items = training_items(ws.db, "voice")
    h1 = dataset_hash(ws.db, "voice")
    assert h1 == dataset_hash(ws, "voice")  # stable, and a Workspace works as well as its Database
    assert set(items[0]) >= {"path", "text", "speaker", "sha256", "duration"} and items[0]["speaker"] == "v"
    awb = prepared["clips"]["awb_arctic_a0007.wav"]["id"]
    store.set_transcript(ws.db, awb, "And you always want to see it in the SUPERLATIVE degree [laughs].")
    h2 = dataset_hash(ws.db, "voice")
    assert h2 != h1
    store.undo_transcript(ws.db, awb)
    assert dataset_hash(ws.db, "voice") == h1


def test_report_figures_tiers_markers_and_plots(pws, prepared, slt_wav, audio):
    ws = pws
    report = build_report(ws.db, "voice")
    assert report["clips"] == 4 and report["prepared"]["version"] == 1
    assert report["training_segments"] == 2 and report["tier"]["tier"] == "zero-shot"
    assert report["tier"]["next"]["tier"] == "basic" and report["tier"]["next"]["needs_clips"] == 48
    assert report["markers"] == {"[sighs]": 1}
    assert report["diversity"]["sentence_mix"] == {"statement": 2, "exclamation": 1}
    assert report["speakers"] == {"v": {"clips": 4, "seconds": pytest.approx(report["raw_duration_s"], abs=0.01)}}
    assert report["lengths_s"]["n"] == report["segments"] and report["loudness_lufs"]["median"] == pytest.approx(-20, abs=0.5)
    assert any("1 clip(s) have no transcript" in w for w in report["warnings"])
    pngs = plot_pngs(report)
    assert set(pngs) == {"lengths", "snr", "loudness"} and all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs.values())
    # AI-generated audio in the set is a warning
    import_paths(ws, "voice", [audio["quiet"]], ImportOptions(provenance="ai"))
    assert any("AI-generated" in w for w in build_report(ws.db, "voice")["warnings"])
    assert tier_for(4 * 3600, 400)["tier"] == "quality" and tier_for(11 * 3600, 1200)["tier"] == "professional"
    assert tier_for(2, 1)["tier"] == "below zero-shot"


def test_export_is_an_ljspeech_folder_with_a_hash_manifest(pws, prepared, tmp_path):
    ws = pws
    out = export_dataset(ws, "voice", tmp_path / "export")
    folder = tmp_path / "export"
    lines = (folder / "metadata.csv").read_text().splitlines()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert out["segments"] == len(lines) == len(manifest["files"]) == 2
    assert manifest["dataset_hash"] == dataset_hash(ws.db, "voice") and manifest["settings"]["target_lufs"] == -20.0
    for line, entry in zip(lines, manifest["files"]):
        stem, text, norm = line.split("|")
        assert entry["file"] == f"wavs/{stem}.wav" and text == norm == entry["text"]
        assert sha256_file(folder / entry["file"]) == entry["sha256"]
        clip = store.get_clip(ws.db, entry["clip_id"])
        assert entry["parent_sha256"] == clip["sha256"]
    with pytest.raises(UserError, match="not an empty folder"):
        export_dataset(ws, "voice", folder)


def test_preparing_again_makes_a_new_version_and_keeps_the_old(pws, prepared):
    ws = pws
    old = training_items(ws.db, "voice")
    old_hash = dataset_hash(ws.db, "voice")
    result = prepare_dataset(ws, "voice", {"target_lufs": -23.0})
    assert result["version"] == 2
    versions = store.list_versions(ws.db, "voice")
    assert [v["version"] for v in versions] == [1, 2] and versions[0]["settings"]["target_lufs"] == -20.0
    new = training_items(ws.db, "voice")
    assert all(it["version"] == 2 for it in new)
    for it in old:  # version 1's files are still there, unchanged
        assert sha256_file(it["path"]) == it["sha256"]
    audio, sr = sf.read(new[0]["path"], dtype="float32")
    assert abs(measure_lufs(audio, sr) + 23.0) < 0.5
    assert dataset_hash(ws.db, "voice") != old_hash


def test_keep_dynamics_keeps_relative_levels(ws, audio, slt_wav):
    store.create_dataset(ws.db, "asmr", settings={"keep_dynamics": True})
    import_paths(ws, "asmr", [slt_wav, audio["quiet"]])
    for c in store.list_clips(ws.db, "asmr"):
        store.set_transcript(ws.db, c["id"], "He turned sharply.")
    result = prepare_dataset(ws, "asmr")
    assert result["settings"]["keep_dynamics"] and "dataset_gain_db" in result
    levels = sorted(measure_lufs(*sf.read(it["path"], dtype="float32")) for it in training_items(ws, "asmr"))
    assert levels[1] - levels[0] == pytest.approx(20.0, abs=0.5)  # the quiet copy stays 20 dB quieter


def test_transcript_history_undo_and_human_text_survive_asr(ws, awb_wav, slt_wav):
    store.create_dataset(ws.db, "h")
    import_paths(ws, "h", [awb_wav, slt_wav])
    clip, fresh = (c["id"] for c in store.list_clips(ws.db, "h"))
    store.set_transcript(ws.db, clip, "And you always want to see it in the superlative degree.")
    store.set_transcript(ws.db, clip, "edited once")
    store.record_asr(ws.db, clip, "whisper heard this", [{"word": "whisper", "start": 0.5, "end": 0.9}], "tiny", "en")
    c = store.get_clip(ws.db, clip)
    assert (c["text"], c["transcript_source"], c["asr_text"]) == ("edited once", "human", "whisper heard this")
    assert [e["by"] for e in store.transcript_history(ws.db, clip)] == ["user", "user"]
    assert store.undo_transcript(ws.db, clip)["text"] == "And you always want to see it in the superlative degree."
    assert store.undo_transcript(ws.db, clip)["text"] is None
    with pytest.raises(UserError, match="no transcript edit to undo"):
        store.undo_transcript(ws.db, clip)
    # no transcript yet: ASR fills it in, machine-made
    store.record_asr(ws.db, fresh, "the quick brown fox", [], "tiny", "en")
    assert store.get_clip(ws.db, fresh)["transcript_source"] == "machine"


def test_linter_flags_what_bark_cannot_read():
    codes = lambda text, **kw: {i["code"] for i in lint(text, **kw)}  # noqa: E731
    assert codes("Hello [laughs] there [sighs]. I was — uh... SO happy ♪ la la ♪ [MAN]") == set()
    assert codes("Hello [laughs there") == {"unbalanced"}
    assert codes("Hello laughs] there") == {"unbalanced"}
    assert codes("Hello [[laughs]]") >= {"unbalanced"}
    assert codes("♪ la la la") == {"unbalanced"}
    assert codes("Hello [thunder]") == {"unknown-tag"}
    assert codes("Hello [thunder] [sad scene, raining outside]", allow_free_tags=True) == set()
    assert codes("Hello [Laughs]") == {"tag-case"}
    assert codes("word " * 300) == {"too-long"}
    assert codes("") == {"empty"}
    assert codes("he turned sharply [laughs]", asr_text="He turned sharply.") == set()
    assert codes("completely different words here", asr_text="He turned sharply and faced Gregson") == {"far-from-asr"}


def test_segment_text_follows_word_times_through_user_edits():
    words = [{"word": w, "start": i * 1.0, "end": i * 1.0 + 0.8} for i, w in enumerate(
        "one two three four five six".split())]
    text = "One two [laughs] three, FOUR five six!"
    assert segment_text(text, words, 0.0, 2.95, whole_clip=False) == "One two [laughs] three,"
    assert segment_text(text, words, 2.95, 6.0, whole_clip=False) == "FOUR five six!"
    assert segment_text(text, [], 0.0, 3.0, whole_clip=False) is None  # unknown without word times
    assert segment_text(text, [], 0.0, 3.0, whole_clip=True) == text


def test_prepared_segments_land_within_a_hundredth_lu_of_the_target(ws, awb_wav, slt_wav, audio):
    """Every segment as stored (16-bit) reads within 0.01 LU of the target on pyloudnorm's meter, and
    its row records that loudness (normalize measures it once; prepare does not measure again)."""
    import pyloudnorm

    store.create_dataset(ws.db, "b")
    import_paths(ws, "b", [awb_wav, audio["long"], slt_wav, audio["quiet"]])
    assert prepare_dataset(ws, "b", {"target_lufs": -18.0})["status"] == "ready"
    segments = prepared_segments(ws.db, "b")
    assert len(segments) >= 5
    for g in segments:
        x, sr = sf.read(g["path"], dtype="float64")
        lufs = pyloudnorm.Meter(sr).integrated_loudness(x)
        assert abs(lufs + 18.0) < 0.01 and g["lufs"] == pytest.approx(lufs, abs=0.01), g


def test_each_dropped_segment_keeps_its_reason_in_the_report_and_the_clip_table(pws, prepared):
    """`dataset show` (text and --json) and the Dataset tab's clip table give, per clip, what was
    kept and why each dropped segment was dropped."""
    from studio.datasets.report import summary_markdown
    from studio.ui.dataset_tab import CLIP_COLUMNS, clip_rows

    report = build_report(pws.db, "voice")
    noisy_id = prepared["clips"]["noisy.wav"]["id"]
    outcome = next(o for o in report["prepared_clips"] if o["clip_id"] == noisy_id)
    assert outcome["kept"] == 0 and outcome["segments"][0]["reject_reason"].startswith("snr ")
    assert "dB is under 20 dB" in outcome["segments"][0]["reject_reason"]
    assert "- noisy.wav: 0/1 kept; dropped #1: snr " in summary_markdown(report)
    column = CLIP_COLUMNS.index("prepared")
    rows = {r[0]: r for r in clip_rows(pws, "voice")}
    assert rows[noisy_id][column].startswith("0/1 kept; dropped #1: snr ")
    assert rows[prepared["clips"]["awb_arctic_a0007.wav"]["id"]][column] == "1/1 kept"


def test_a_clips_segments_list_with_drop_reasons_in_the_cli_and_the_tab(pws, prepared, ws, awb_wav):
    """`dataset segments DATASET CLIP` (by id or name, --json) and the tab's segment player list the
    clip's segments of the newest version: cut times, and each dropped one's reason; the player's
    audio comes from the segment's own stored file through the owner-only file route."""
    from click.testing import CliRunner

    from studio.cli import main
    from studio.ui.segments_view import segments_html

    def run(*args):
        result = CliRunner().invoke(main, ["--home", str(pws.root), "dataset", "segments", "voice", *args])
        return result.exit_code, result.output

    code, out = run("noisy.wav", "--json")
    listing = json.loads(out)
    assert code == 0 and listing["clip_name"] == "noisy.wav" and listing["note"] is None
    (seg,) = listing["segments"]
    assert not seg["kept"] and seg["reject_reason"].startswith("snr ") and "dB is under 20 dB" in seg["reject_reason"]
    assert sha256_file(seg["path"]) == next(g for g in prepared_segments(pws.db, "voice")
                                            if g["segment_id"] == seg["segment_id"])["sha256"]
    awb_id = prepared["clips"]["awb_arctic_a0007.wav"]["id"]
    code, out = run(str(awb_id))  # the text form: a head line, then one line per segment
    assert code == 0 and out.splitlines()[0].startswith(f"clip {awb_id} (awb_arctic_a0007.wav), version ")
    assert len(out.strip().splitlines()) == 2 and " kept  " in out.splitlines()[1]
    code, out = run("no-such-clip")
    assert code != 0 and "dataset 'voice' has no clip 'no-such-clip'" in out

    page = segments_html(pws, "voice", prepared["clips"]["noisy.wav"]["id"])
    assert "dropped: snr " in page and "dB is under 20 dB" in page
    assert f'src="gradio_api/file={pws.root}/audio/{seg["sha256"][:2]}/{seg["sha256"]}.wav"' in page

    store.create_dataset(ws.db, "fresh")  # before any prepare, the note says what to do
    import_paths(ws, "fresh", [awb_wav], ImportOptions())
    assert "not prepared yet: run prepare" in segments_html(ws, "fresh", store.list_clips(ws.db, "fresh")[0]["id"])
