"""The model core as users reach it: `voice create|list|delete`, `generate` with a voice into the
history, the tokenize job over a prepared dataset (cached, resumable), tokens from real speech,
and one-line errors for bad input."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner


def _run(ws, *args):
    from studio.cli import main

    return CliRunner().invoke(main, ["--home", str(ws.root), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory, awb_wav, slt_wav):
    """8 s of real speech (two fixture sentences), for a 5-12 s voice span."""
    out = tmp_path_factory.mktemp("voice") / "two.wav"
    subprocess.run(["sox", str(awb_wav), str(slt_wav), str(out)], check=True)
    return out


def test_tokens_from_real_speech_have_bark_shapes_and_rates(awb_wav):
    from models import tokens as T

    semantic = T.load_semantic_tokenizer("tiny")
    codec, codec_id = T.load_codec("tiny")
    sem, codes = T.tokenize_audio(awb_wav, semantic, codec)
    seconds = sf.info(str(awb_wav)).duration
    assert codes.shape[0] == 8 and abs(codes.shape[1] - seconds * 75) <= 2          # 6 kbps: 8 books at 75 Hz
    assert abs(len(sem) - seconds * 50) <= 2 and sem.max() < 10000                  # ~50 Hz HuBERT frames
    assert codes.max() < 1024 and len(np.unique(codes[0])) > 1
    again = T.tokenize_audio(awb_wav, semantic, codec)
    assert np.array_equal(again[0], sem) and np.array_equal(again[1], codes)        # tiny is seeded


def test_released_quantizer_formats_load(tmp_path):
    import torch

    from models.errors import ModelInputError
    from models.tokens import Quantizer, load_quantizer

    for inter in (None, 4096):  # 2-layer LSTM 768->1024, then (v1) Linear 1024->4096, then -> 10000
        ref = Quantizer(intermediate=inter)
        torch.save(ref.state_dict(), tmp_path / "q.pth")
        q = load_quantizer(tmp_path / "q.pth")
        feats = torch.randn(1, 7, 768)
        assert torch.equal(q(feats).argmax(-1), ref(feats).argmax(-1))
        assert q(feats).shape == (1, 7, 10000) and (q.intermediate is not None) == bool(inter)
    torch.save({"something": torch.zeros(2)}, tmp_path / "bad.pth")
    with pytest.raises(ModelInputError, match="bad.pth: not a HuBERT quantizer"):
        load_quantizer(tmp_path / "bad.pth")


def test_voice_create_generate_and_history(ws, long_clip, awb_wav):
    from studio import voices as V

    short = _run(ws, "voice", "create", "shorty", "--clip", str(awb_wav), "--model", "tiny")
    assert short.exit_code == 1 and "needs 5-12 s" in short.output and "4.00 s" in short.output

    res = _run(ws, "voice", "create", "anna", "--clip", str(long_clip), "--start", "1", "--end", "7",
               "--model", "tiny", "--json")
    assert res.exit_code == 0, res.output
    voice = json.loads(res.output)
    assert voice["name"] == "anna" and voice["span_start"] == 1.0 and voice["span_end"] == 7.0
    assert abs(voice["frames"] - 450) <= 2                                           # 6 s at 75 Hz
    from models import voice_prompt

    prompt = voice_prompt.load(ws.root / voice["npz_path"])
    assert prompt.fine.shape == (8, voice["frames"]) and prompt.semantic.ndim == 1

    dup = _run(ws, "voice", "create", "anna", "--clip", str(long_clip), "--model", "tiny")
    assert dup.exit_code == 1 and "already exists" in dup.output
    listed = json.loads(_run(ws, "voice", "list", "--json").output)
    assert [v["name"] for v in listed] == ["anna"]

    out = ws.root.parent / "hello.wav"
    gen = _run(ws, "generate", "--text", "Hello there.", "--model", "tiny", "--voice", "anna", "--seed", "4",
               "--max-semantic-tokens", "20", "--semantic-temp", "0.6", "--out", str(out), "--json")
    assert gen.exit_code == 0, gen.output
    result = json.loads(gen.output)
    audio, sr = sf.read(str(out))
    assert sr == 24000 and len(audio) > 0 and np.isfinite(audio).all()
    row = V.list_generations(ws)[0]
    assert row["id"] == result["generations"][0] and row["voice"] == "anna" and row["seed"] == 4
    assert row["params"]["semantic_temperature"] == 0.6 and row["model"] == "tiny"
    assert (ws.root / row["audio_path"]).is_file()

    missing = _run(ws, "generate", "--text", "Hi.", "--model", "tiny", "--voice", "nobody", "--out", str(out))
    assert missing.exit_code == 1 and "no voice named 'nobody'" in missing.output
    assert len(missing.output.strip().splitlines()) == 1

    gone = _run(ws, "voice", "delete", "anna")
    assert gone.exit_code == 0 and not (ws.root / voice["npz_path"]).exists()
    assert V.list_generations(ws)[0]["voice"] == "anna"                              # history keeps the name


def test_generate_offline_without_weights_is_one_line(ws, tmp_path):
    res = _run(ws, "generate", "--text", "Hi.", "--model", "small", "--out", str(tmp_path / "x.wav"))
    assert res.exit_code == 1
    assert "suno/bark-small" in res.output and "bark-studio models download small" in res.output
    listed = json.loads(_run(ws, "models", "download", "small", "--dry-run", "--json").output)
    needs = {n["key"]: (n["repo"], n["missing"]) for n in listed["needs"]}
    assert needs["bark"][0] == "suno/bark-small" and "config.json" in needs["bark"][1]
    assert needs["quantizer"] == ("GitMylo/bark-voice-cloning", ["quantifier_hubert_base_ls960_14.pth"])


def test_tokenize_job_caches_and_resumes(ws, long_clip, slt_wav):
    from studio.datasets import store
    from studio.datasets.importer import import_paths
    from workers.dispatch import submit
    from workers.handlers.tokens import token_items, token_path

    store.create_dataset(ws.db, "set")
    report = import_paths(ws, "set", [str(long_clip), str(slt_wav)])
    for clip in report["imported"]:
        store.set_transcript(ws.db, clip["clip_id"], "He turned sharply, and faced Gregson across the table.")
    prep = submit(ws, "prepare", {"dataset": "set", "settings": {"vad": False, "min_segment_s": 1.0}}, wait=True)
    assert prep["status"] == "succeeded", prep.get("error")

    first = submit(ws, "tokenize", {"dataset": "set", "model": "tiny"}, wait=True)
    assert first["status"] == "succeeded", first.get("error")
    n = first["result"]["items"]
    assert n >= 2 and first["result"]["tokenized"] == n and first["result"]["cached"] == 0
    from studio.datasets.api import training_items

    items = training_items(ws, "set")
    victim = token_path(ws, items[0]["sha256"], "tiny")
    victim.unlink()                                                                  # an interrupted run
    second = submit(ws, "tokenize", {"dataset": "set", "model": "tiny"}, wait=True)
    assert second["result"]["tokenized"] == 1 and second["result"]["cached"] == n - 1
    token = token_items(ws, "set", "tiny")
    assert len(token) == n and all(t.codes.shape[0] == 8 and len(t.text_ids) > 0 for t in token)
    from models.layouts import build_examples

    assert build_examples("semantic", token[0])[0].n_targets == len(token[0].semantic) + 1
