"""Sweeps on the tiny model: the full grid through the real queue, every output stored with
what reproduces it, its metrics and descriptors, and one plot per metric per swept parameter."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import cli


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    # Two cores shared by many processes: one intra-op thread per process avoids oversubscription
    # (measured 10x faster generation on the loaded CI machine).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_grid_and_random_points_cover_the_request():
    from studio.experiments import grid

    req = grid.normalize({"prompts": ["a b", "c d"], "seeds": [0, 1],
                          "axes": {"semantic_temperature": [0.5, 1.0], "fine_temperature": [0.5]}})
    pts = grid.points(req)
    assert len(pts) == 2 * 2 * 2
    assert {(p["prompt"], p["seed"], p["semantic_temperature"]) for p in pts} == \
        {(t, s, x) for t in ("a b", "c d") for s in (0, 1) for x in (0.5, 1.0)}
    assert set(grid.swept(req)) == {"semantic_temperature", "prompt", "seed"}
    params = grid.generation_params(req, pts[0])
    assert params["coarse_temperature"] == 0.7 and params["fine_temperature"] == 0.5  # suno's defaults
    rnd = grid.normalize({"mode": "random", "n": 7, "prompts": ["x"], "ranges": {"adapter_scale": [0, 2.5]},
                          "adapter": "/a", "random_seed": 3})
    drawn = grid.points(rnd)
    assert len(drawn) == 7 and all(0 <= p["adapter_scale"] <= 2.5 for p in drawn)
    assert drawn == grid.points(rnd)  # seeded: the same request draws the same points
    assert grid.generation_params(rnd, drawn[0])["adapters"] == [{"path": "/a", "scale": drawn[0]["adapter_scale"]}]


def test_bad_sweep_requests_are_one_line_and_write_no_job(ws):
    from click.testing import CliRunner

    from studio.cli import main

    for args, message in [
        (["--axis", "temperature=1"], "unknown sweep axis 'temperature'"),
        (["--axis", "adapter_scale=0,1"], "sweeping adapter_scale needs an adapter"),
        (["--axis", "semantic_temperature=0.5,abc"], "values must be numbers"),
        (["--range", "semantic_temperature=0:1"], "needs --random N"),
        (["--axis", "semantic_temperature=9"], "outside 0..5"),
        (["--experiment", "nope"], "no experiment 'nope'"),
        (["--seeds", "0,x"], "--seeds '0,x': write whole numbers separated by commas"),
    ]:
        res = CliRunner().invoke(main, ["--home", str(ws.root), "sweep", "--prompt", "hi", *args])
        assert res.exit_code == 1 and message in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1
    assert json.loads(cli("jobs", "list", "--json", home=ws.root).stdout) == []


@pytest.mark.slow
def test_tiny_sweep_makes_the_full_grid_with_metrics_and_plots(ws, consumer, awb_wav):
    proc = cli("sweep", "--prompt", "Hello there, friend.", "--model", "tiny", "--axis", "semantic_temperature=0.5,1.0",
               "--seeds", "0,1", "--max-new-semantic", "30", "--batch-size", "4", "--ref", str(awb_wav),
               "--name", "temperature check", "--wait", "--json", home=ws.root)
    out = json.loads(proc.stdout)
    assert out["job"]["status"] == "succeeded", out["job"]
    assert out["job"]["worker_id"] != "inline"  # it went through the real queue consumer
    sweep = out["sweep"]
    outputs = sweep["outputs"]
    assert len(outputs) == 4 and not any(o["error"] for o in outputs)
    assert {(o["params"]["semantic_temperature"], o["params"]["seed"]) for o in outputs} == \
        {(0.5, 0), (0.5, 1), (1.0, 0), (1.0, 1)}
    for o in outputs:
        assert o["params"]["model"] == "tiny" and o["params"]["text"] == "Hello there, friend."
        assert o["params"]["coarse_temperature"] == 0.7 and o["params"]["max_new_semantic"] == 30
        assert o["duration_s"] == pytest.approx(0.6, abs=0.05)
        for name in ("music_likeness", "nonspeech_share", "loudness_lufs", "silence_share", "repetition"):
            assert name in o["descriptors"]
        assert (ws.root / o["audio_path"]).is_file()
    # each output's similarity is the cosine of its own audio against the --ref speaker
    from models.metrics import speaker

    expected = speaker.similarity([ws.root / o["audio_path"] for o in outputs], [awb_wav])["per_clip"]
    assert [o["metrics"]["speaker_similarity"] for o in outputs] == pytest.approx(expected, abs=1e-4)
    summary = sweep["summary"]
    assert summary["floors"]["speaker_encoder"] == "resemblyzer-ge2e"
    assert set(summary["by_param"]) == {"semantic_temperature", "seed"}
    assert set(summary["by_param"]["semantic_temperature"]["speaker_similarity"]) == {"0.5", "1.0"}
    # One PNG per metric per swept parameter.
    metrics = summary["metrics"]
    assert "speaker_similarity" in metrics and "music_likeness" in metrics
    expected = {f"{m}__vs__{p}.png" for m in metrics for p in ("semantic_temperature", "seed")}
    assert {os.path.basename(p) for p in sweep["plots"]} == expected
    for p in sweep["plots"]:
        assert (ws.root / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The stored parameters reproduce the stored audio.
    from workers.handlers.model_session import ModelSession

    first = outputs[0]
    gen = ModelSession()
    gen.ready("tiny", ())
    again = gen.batch([first["params"]], 1)[0].audio
    stored, sr = sf.read(ws.root / first["audio_path"], dtype="float32")
    assert sr == 24_000 and stored.shape == again.shape
    assert np.allclose(stored, np.clip(again, -1, 1), atol=2 / 32768)


# --- engine and precision of stored outputs ------------------------------------------------------

def _params(**kw):
    return {"model": "tiny", "voice": None, "adapters": [], "text": "Hello there.", "seed": 2, "arm": "",
            "max_new_semantic": 16, "semantic_temperature": 0.7, "coarse_temperature": 0.7,
            "fine_temperature": 0.5, **kw}


def _lora(folder, seed):
    import torch

    from models import adapters as A
    from models.lora import LoraSettings, add_lora, trainable_parameters
    from models.presets import load_bark

    bark = load_bark("tiny")
    sig = A.base_signature(bark, ("semantic", "coarse"))
    add_lora(bark, ("semantic", "coarse"), LoraSettings(r=4, alpha=8, dropout=0.0))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a non-zero update without training (fresh LoRA B is zero)
        for p in trainable_parameters(bark).values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    A.save_adapter(bark, folder, method="lora", stages=("semantic", "coarse"), base_model="tiny",
                   base_signature=sig, dataset={"name": "d", "hash": "abc"}, hyperparameters={"r": 4})
    return str(folder)


def test_stored_params_without_engine_regenerate_with_the_reference_engine_in_fp32():
    """Outputs stored before the fast engine carry no engine/precision: they were made by the model
    core's loop in fp32, and a generator that has since cast its model to bf16 reloads it."""
    import torch

    from models import generation as G
    from models.presets import load_bark, load_text_tokenizer
    from workers.handlers.model_session import ModelSession

    core = G.generate(G.BarkStages.from_bark(load_bark("tiny")), load_text_tokenizer("tiny"),
                      [G.Request("Hello there.", None, 2)], G.Sampling(semantic_max_new_tokens=16))[0].audio
    gen = ModelSession()
    assert np.array_equal(gen.batch([_params()], 1)[0].audio, core)
    fast = gen.batch([_params(engine="fast", precision="bf16")], 1)[0].audio
    assert gen.form == ("bf16", "fast") and gen.bark.semantic.lm_head.weight.dtype == torch.bfloat16
    assert len(fast) > 0 and np.isfinite(fast).all()
    assert np.array_equal(gen.batch([_params()], 1)[0].audio, core)          # back to fp32 weights, exactly


def test_lora_at_a_scale_and_mixed_work_in_bf16_and_reproduce(tmp_path):
    """Adapters are merged into the fp32 weights, then the model is cast to bf16: a
    scale of 0 is the base exactly, a mix changes the output, and a generator that swapped adapters
    in between gives what a fresh one gives (what regenerating one stored output does)."""
    import torch

    from workers.handlers.model_session import ModelSession

    a, b = _lora(tmp_path / "a", 1), _lora(tmp_path / "b", 2)
    fast16 = {"engine": "fast", "precision": "bf16"}
    base = _params(**fast16)
    off = _params(adapters=[{"path": a, "scale": 0.0}], **fast16)
    mix = _params(adapters=[{"path": a, "scale": 0.5}, {"path": b, "scale": 1.0}], **fast16)

    gen = ModelSession()
    out_base = gen.batch([base], 1)[0]
    out_mix = gen.batch([mix], 1)[0]
    assert not [n for n, _ in gen.bark.semantic.named_parameters() if "lora_" in n]  # merged into the weights
    assert gen.bark.semantic.lm_head.weight.dtype == torch.bfloat16
    out_off = gen.batch([off], 1)[0]
    assert np.array_equal(out_off.codes[0], out_base.codes[0])
    assert not np.array_equal(out_mix.codes[0], out_base.codes[0])         # the mix is in effect
    again = ModelSession().batch([mix], 1)[0]
    assert np.array_equal(again.codes[0], out_mix.codes[0]) and np.array_equal(again.audio, out_mix.audio)
