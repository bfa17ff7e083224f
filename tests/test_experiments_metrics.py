"""Objective metrics on real speech with known answers: speaker similarity, WER, prosody, and
the `bark-studio eval` job that gathers them with their floors and ceilings."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import cli


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    """Two cores shared by many processes: one intra-op thread per process avoids oversubscription
    (an order of magnitude on a loaded machine), here and in the CLI subprocesses."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sox(*args):
    subprocess.run(["sox", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory, awb_wav, slt_wav):
    """awb split in two (same speaker, different words), slt, and awb pitch-shifted or bent."""
    d = tmp_path_factory.mktemp("clips")
    sox(awb_wav, d / "awb_a.wav", "trim", "0", "2.0")
    sox(awb_wav, d / "awb_b.wav", "trim", "2.0")
    sox(awb_wav, d / "awb_up300.wav", "pitch", "300")
    # A contour change: the middle second bent up a fifth and back, the rest untouched.
    sox(awb_wav, d / "awb_bent.wav", "bend", "1.0,700,0.5", "1.5,-700,0.5")
    return d


def test_same_speaker_scores_above_different_speaker(clips, slt_wav):
    from models.metrics.speaker import similarity

    out = similarity([clips / "awb_b.wav", slt_wav], [clips / "awb_a.wav"])
    same, different = out["per_clip"]
    assert out["encoder"] == "resemblyzer-ge2e"
    assert same > different + 0.1, out
    assert 0.3 < different < 0.8 and same > 0.6
    # One reference clip: the ceiling is the cosine between its two halves, same speaker.
    assert out["real_vs_real"] is not None and out["real_vs_real"] > different
    assert out["consistency"]["n"] == 2 and out["consistency"]["range"] == pytest.approx(same - different)


def test_too_short_clip_is_named(tmp_path, awb_wav):
    from models.metrics.audio import MetricInputError
    from models.metrics.speaker import similarity

    sox(awb_wav, tmp_path / "blip.wav", "trim", "0", "0.1")
    with pytest.raises(MetricInputError, match=r"blip\.wav: 0\.10 s is too short"):
        similarity([tmp_path / "blip.wav"], [awb_wav])


def test_wer_is_zero_for_identical_text_after_normalisation():
    from models.metrics.wer import mean_wer, normalize, utterance_wer

    ref = "And you always want to see it in the superlative degree."
    assert utterance_wer(ref, "and you always want to see it in the superlative degree [laughs]")["wer"] == 0.0
    assert utterance_wer("Mr. Smith paid $5 — honestly...", "mister smith paid five dollars honestly")["wer"] == 0.0
    assert utterance_wer("♪ la la la ♪ [music] (sighs) hello", "la la la hello")["wer"] == 0.0  # markers out, lyrics in
    assert normalize("[laughs] He turned SHARPLY, and faced Gregson!") == "he turned sharply and faced gregson"
    one_wrong = utterance_wer(ref, "and you always want to see it in the superlative decree")
    assert one_wrong["wer"] == pytest.approx(1 / 11) and one_wrong["errors"] == 1
    # The mean of per-utterance WER, not corpus WER: a 2-word line weighs as much as an 11-word one.
    assert mean_wer([ref, "hello there"], [ref, "hello"])["mean_wer"] == pytest.approx(0.25)


def test_f0_correlates_with_itself_and_less_with_a_shifted_or_bent_copy(clips, awb_wav):
    from models.metrics.prosody import compare

    self_ = compare(awb_wav, awb_wav)
    up = compare(clips / "awb_up300.wav", awb_wav)
    bent = compare(clips / "awb_bent.wav", awb_wav)
    assert self_["f0_corr"] > 0.999 and self_["f0_rmse_cents"] < 1 and self_["vuv_error"] == 0
    assert up["f0_corr"] < self_["f0_corr"]
    assert 200 < up["f0_rmse_cents"] < 400  # a 300-cent shift reads as about 300 cents
    assert bent["f0_corr"] < up["f0_corr"] and bent["f0_corr"] < 0.95  # the contour changed, not just its level
    assert up["mean_f0_generated"] > self_["mean_f0_generated"] * 1.1


@pytest.mark.slow
def test_eval_job_reports_metrics_with_floors_and_names_the_asr(ws, clips, awb_wav, slt_wav):
    """The real CLI: WER through the random test Whisper with the real recordings' WER as floor,
    speaker similarity with its real-vs-real ceiling, prosody against same-text recordings."""
    awb_text = "And you always want to see it in the superlative degree."
    proc = cli("eval", str(clips / "awb_up300.wav"), "--text", awb_text,
               "--ref", str(clips / "awb_a.wav"), "--ref", str(clips / "awb_b.wav"), "--prosody-ref", str(awb_wav),
               "--real", str(awb_wav), "--real-text", awb_text,
               "--asr", "test-random", "--name", "fixture check", "--wait", "--json", home=ws.root)
    out = json.loads(proc.stdout)
    assert out["job"]["status"] == "succeeded", out["job"]
    sweep = out["sweep"]
    floors = sweep["summary"]["floors"]
    assert "random weights" in floors["asr_model"]  # the ASR is named beside the number
    assert floors["wer_floor"] is not None and floors["speaker_encoder"] == "resemblyzer-ge2e"
    assert floors["real_vs_real_similarity"] > 0.5
    (shifted,) = sweep["outputs"]
    m = shifted["metrics"]
    assert m["f0_rmse_cents"] > 200 and m["f0_corr"] > 0.9
    assert m["speaker_similarity"] > 0.5
    from models.metrics.wer import utterance_wer

    assert m["wer"] == pytest.approx(utterance_wer(awb_text, m["transcript"])["wer"])  # this transcript vs --text
    assert shifted["descriptors"]["duration_s"] == pytest.approx(4.0, abs=0.01)
    assert shifted["audio_path"].startswith("audio/")  # stored by content hash in the workspace
    assert (ws.root / shifted["audio_path"]).is_file()
    shown = json.loads(cli("sweeps", "show", str(sweep["id"]), "--json", home=ws.root).stdout)
    assert shown["outputs"][0]["metrics"] == m


def test_eval_names_a_missing_file_and_a_mismatched_text_count(ws, awb_wav, tmp_path):
    from click.testing import CliRunner

    from studio.cli import main

    res = CliRunner().invoke(main, ["--home", str(ws.root), "eval", str(tmp_path / "nope.wav")])
    assert res.exit_code == 1 and res.stderr.strip() == f"error: {tmp_path / 'nope.wav'}: no such file or folder"
    res = CliRunner().invoke(main, ["--home", str(ws.root), "eval", str(awb_wav), "--text", "a", "--text", "b"])
    assert res.exit_code == 1 and "2 --text for 1 audio files" in res.stderr
