"""A real model whose weights are not on this machine is refused at submit time, by the CLI and by
the tabs: one line naming what is missing and the exact command that fetches it, and no job row.
The Hugging Face cache and Whisper's download root point at empty folders (HF_HUB_OFFLINE=1)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from studio import jobs

FETCH = "run `bark-studio models download small`"


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
           "BARK_STUDIO_WHISPER_ROOT": str(tmp_path / "whisper")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _refused(ws, *args) -> str:
    from studio.cli import main

    res = CliRunner().invoke(main, ["--home", str(ws.root), *args])
    assert res.exit_code == 1, (args, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, (args, res.stderr)
    return lines[0]


def test_every_command_that_loads_a_real_model_names_what_is_missing_before_queueing(ws, empty_cache, awb_wav):
    from studio.datasets import store
    from studio.datasets.importer import import_paths
    from workers.dispatch import submit

    store.create_dataset(ws.db, "d")  # a prepared dataset: train checks that before the weights
    (clip,) = import_paths(ws, "d", [awb_wav])["imported"]
    store.set_transcript(ws.db, clip["clip_id"], "And you always want to see it in the superlative degree.")
    assert submit(ws, "prepare", {"dataset": "d"}, wait=True)["status"] == "succeeded"
    bark_line = "model 'small' is not downloaded: missing Bark suno/bark-small"
    for args in (("generate", "--text", "Hello there."),                    # no --model: the real default
                 ("generate", "--text", "Hello there.", "--model", "small"),
                 ("train", "--dataset", "d"),
                 ("sweep", "--prompt", "Hello there.", "--seeds", "0,1")):
        line = _refused(ws, *args)
        assert line.startswith(f"error: {bark_line}") and line.endswith(FETCH), (args, line)
    large = _refused(ws, "generate", "--text", "Hi.", "--model", "large")
    assert "Bark suno/bark" in large and large.endswith("run `bark-studio models download large`")
    for args in (("tokenize", "d"), ("voice", "create", "anna", "--clip", str(awb_wav))):
        line = _refused(ws, *args)  # the token models: HuBERT, the quantizer and EnCodec, not Bark
        assert "HuBERT base facebook/hubert-base-ls960" in line and "EnCodec 24 kHz" in line, (args, line)
        assert "Bark" not in line and line.endswith(FETCH), (args, line)
    for args in (("dataset", "transcribe", "d"), ("eval", str(awb_wav), "--text", "Hi.", "--asr", "base")):
        line = _refused(ws, *args)
        assert line.startswith("error: Whisper 'base' is not downloaded: missing base.pt"), (args, line)
        assert empty_cache["BARK_STUDIO_WHISPER_ROOT"] in line and line.endswith(FETCH), (args, line)
    medium = _refused(ws, "dataset", "transcribe", "d", "--model-size", "medium")
    assert "Whisper 'medium' is not downloaded" in medium and "whisper.load_model('medium', download_root=" in medium
    assert [j["kind"] for j in jobs.list_jobs(ws.db)] == ["prepare"]  # nothing else was queued


def test_the_test_model_and_present_weights_pass_the_check(empty_cache, tmp_path):
    from studio.weights import missing_weights

    assert missing_weights("generate", {"text": "Hi", "model": "tiny"}) is None
    assert missing_weights("prepare", {"dataset": "d"}) is None          # curation loads no hub model
    assert missing_weights("eval", {"audio": ["x.wav"], "asr": None}) is None
    assert "suno/bark-small" in missing_weights("generate", {"text": "Hi"})
    # once Whisper base is where openai-whisper keeps it, transcribing with it is allowed
    root = tmp_path / "whisper"
    root.mkdir()
    (root / "base.pt").write_bytes(b"weights")
    assert missing_weights("transcribe", {"dataset": "d", "model_size": "base"}) is None
    # a sweep over an experiment's arms checks the arms' models, which replace the sweep's own
    arms = [{"name": "a", "model": "tiny"}, {"name": "b", "model": "large"}]
    line = missing_weights("sweep", {"model": "small", "arms": arms, "axes": {"arm": ["a", "b"]}})
    assert line and "suno/bark" in line and "download large" in line
    assert missing_weights("sweep", {"model": "small", "arms": arms, "axes": {"arm": ["a"]}}) is None
