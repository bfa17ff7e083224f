"""The emergent-behaviour log: a music-like clip among speech outputs is flagged automatically
(and the speech is not); a person adds, stars, tags, notes, filters and exports entries."""
from __future__ import annotations

import json
import subprocess
import zipfile

import pytest

from tests.conftest import cli


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # 2 shared cores: avoid thread oversubscription


def studio(ws, *args: str, ok: bool = True):
    """The real `bark-studio` command, in this process (no interpreter start per call)."""
    from click.testing import CliRunner

    from studio.cli import main

    res = CliRunner().invoke(main, ["--home", str(ws.root), *args])
    if ok:
        assert res.exit_code == 0, res.output
    return res


def studio_json(ws, *args: str):
    return json.loads(studio(ws, *args, "--json").stdout)


def run(*args):
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def outputs_dir(tmp_path_factory, awb_wav, slt_wav):
    """Six speech clips (real and espeak-ng, some tempo-changed) and a C major chord."""
    d = tmp_path_factory.mktemp("outputs")
    run("cp", awb_wav, d / "01_awb.wav")
    run("cp", slt_wav, d / "02_slt.wav")
    run("sox", awb_wav, d / "03_awb_fast.wav", "tempo", "1.1")
    run("sox", slt_wav, d / "04_slt_slow.wav", "tempo", "0.9")
    run("espeak-ng", "-w", d / "05_espeak.wav", "The quick brown fox jumps over the lazy dog by the river.")
    run("espeak-ng", "-v", "en+f3", "-w", d / "06_espeak_f.wav", "She sells sea shells by the sea shore every morning.")
    run("sox", "-n", "-r", "16000", d / "07_chord.wav", "synth", "3", "sin", "261.63", "sin", "329.63", "sin", "392",
        "remix", "-", "gain", "-6")
    return d


def test_models_outlier_rule_flags_by_direction_and_needs_a_minimum_count():
    from models.metrics.outliers import flag, robust_z

    assert robust_z([1, 2, 3, None])[3] is None
    speech = [{"music_likeness": 0.0, "loudness_lufs": -20 + i * 0.5} for i in range(6)]
    low = [*speech, {"music_likeness": 0.0, "loudness_lufs": -45.0}]
    high = [*speech, {"music_likeness": 0.9, "loudness_lufs": -20.0}]
    assert [bool(r) for r in flag(high)] == [False] * 6 + [True]
    assert flag(high)[-1][0]["name"] == "music_likeness"
    assert flag(low)[-1][0]["name"] == "loudness_lufs"  # loudness counts in both directions
    very_low_music = [*speech, {"music_likeness": -5.0, "loudness_lufs": -20.0}]
    assert not any(flag(very_low_music))  # music-likeness only counts upwards
    assert not any(flag(high[-4:]))  # too few outputs to know the usual range


@pytest.mark.slow
def test_a_chord_among_speech_is_flagged_and_speech_is_not(ws, outputs_dir, tmp_path):
    proc = cli("eval", str(outputs_dir), "--arm", "speech", "--name", "emergent check", "--wait", "--json",
               home=ws.root)
    out = json.loads(proc.stdout)
    assert out["job"]["status"] == "succeeded", out["job"]
    outputs = {o["params"]["source_file"].rsplit("/", 1)[-1]: o for o in out["sweep"]["outputs"]}
    chord = outputs["07_chord.wav"]
    assert chord["descriptors"]["music_likeness"] > 0.5
    assert max(o["descriptors"]["music_likeness"] for n, o in outputs.items() if n != "07_chord.wav") < 0.2

    log = studio_json(ws, "emergent", "list")
    assert [e["output_id"] for e in log] == [chord["id"]]  # the chord, and nothing else
    entry = log[0]
    assert entry["source"] == "auto" and "music_likeness" in entry["flag_reason"]
    assert "arm speech" in entry["flag_reason"] and "auto" in entry["tags"]
    assert entry["params"]["source_file"].endswith("07_chord.wav")

    # By hand: add plain speech, star it, tag it, note it; filter; export.
    speech = outputs["02_slt.wav"]
    added = studio_json(ws, "emergent", "add", "--output", str(speech["id"]), "--tag", "Breathy", "--stars", "2",
                        "--notes", "odd breath at the end")
    assert added["source"] == "manual" and added["tags"] == ["breathy"] and added["audio_path"] == speech["audio_path"]
    starred = studio_json(ws, "emergent", "star", str(added["id"]), "5")
    assert starred["stars"] == 5
    tagged = studio_json(ws, "emergent", "tag", str(added["id"]), "--add", "keeper", "--remove", "breathy")
    assert tagged["tags"] == ["keeper"]
    file_entry = studio_json(ws, "emergent", "add", "--audio", str(outputs_dir / "05_espeak.wav"))
    assert (ws.root / file_entry["audio_path"]).is_file()
    assert [e["id"] for e in studio_json(ws, "emergent", "list", "--min-stars", "4")] \
        == [added["id"]]
    assert [e["id"] for e in studio_json(ws, "emergent", "list", "--source", "auto")] \
        == [entry["id"]]
    assert [e["id"] for e in studio_json(ws, "emergent", "list", "--tag", "keeper")] \
        == [added["id"]]
    res = studio(ws, "emergent", "star", str(added["id"]), "9", ok=False)
    assert res.exit_code == 1 and res.stderr.strip() == "error: stars must be 0..5, got 9"

    target = tmp_path / "log.zip"
    assert studio_json(ws, "emergent", "export", str(target))["entries"] == 3
    with zipfile.ZipFile(target) as zf:
        manifest = json.loads(zf.read("entries.json"))
        assert len(manifest) == 3 and all(m["file"] in zf.namelist() for m in manifest)
        chord_row = next(m for m in manifest if m["id"] == entry["id"])
        assert chord_row["params"]["source_file"].endswith("07_chord.wav") and chord_row["descriptors"]
