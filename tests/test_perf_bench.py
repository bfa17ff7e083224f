"""Smoke run of the bench harness on tiny shapes: every section yields its ratio and the table renders."""

import json

import pytest
import torch

from bench import gen_bench, run_all, train_bench


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_bench_harness_smoke_on_tiny_shapes(tmp_path):
    train = train_bench.run("tiny", batch=1, n_semantic=7, steps=1, configs=("stock_full", "ours_lora"))
    c = train["configs"]
    assert c["ours_lora"]["positions_per_example"] == 256 + 8  # our layout: 257 + 7 targets (EOS last)
    assert c["stock_full"]["positions_per_example"] == 513 + 7
    assert c["ours_lora"]["trainable_params"] < c["stock_full"]["trainable_params"] / 100
    assert all(v["trained_tokens_per_s"] > 0 and v["peak_bytes"] > 0 for v in c.values())

    from bench.shapes import bark_model
    from models import fast_generation as fg

    stock = bark_model("tiny")
    ours = fg.prepare_for_inference(bark_model("tiny"), "fp32", "sdpa")
    sem = gen_bench.semantic_speed(stock, ours, 2, 4, "cpu")
    sweep = gen_bench.sweep(ours, 2, 0.1, "cpu", sequential_sample=1, stock=stock)
    assert sem["ours_tokens_per_s"] > 0 and sem["stock_tokens_per_s"] > 0
    assert sweep["batched_equals_single"]
    assert sweep["stock_outputs_per_min"] > 0
    stages = sweep["sequential_stage_s_per_take"]
    assert set(stages) == {"semantic_tokens", "coarse_tokens", "fine_codes", "decode"} and all(stages.values())
    assert gen_bench.fg.fine_codes.__name__ == "fine_codes"  # the stage clock put the real functions back

    from bench.measure import matmul_peak_flops

    train["matmul_peak_flops"], train["matmul_peak_precision"] = matmul_peak_flops("cpu", "fp32"), "fp32"
    assert 1e9 < train["matmul_peak_flops"] < 1e14  # between a slow laptop core and a big GPU
    result = {"machine": "test", "load_average_at_start": 0, "load_average_at_end": 0, "command": "pytest",
              "wall_s": 1.0, "train": train, "gen": {"semantic_b1": sem, "semantic_b8": sem, "sweep": sweep,
                                                   "rtf": {"audio_seconds": 1.0, "ours_rtf": 1.0}}}
    result["table"] = run_all.table(result)
    figures = [r["figure"] for r in result["table"]]
    assert "LoRA training, peak memory" in figures
    sweeps = [r for r in result["table"] if r["figure"].startswith("sweep")]
    assert [r["baseline"].split()[0] for r in sweeps] == ["ours", "stock"]
    assert any(r["baseline"] == run_all.NO_GPU for r in result["table"])
    mfu = next(r for r in result["table"] if "training MFU" in r["figure"] and r["ours"] is not None)
    assert mfu["figure"].startswith("CPU") and 0 < mfu["ratio"] < 1  # a fraction of the measured peak
    md = run_all.markdown(result)
    assert md.count("\n|") >= len(result["table"])
    json.dumps(result)  # results are written as JSON


def test_bench_cli_parses_its_options():
    args = run_all.parse(["--quick", "--sections", "gen", "--threads", "1"])
    assert args.quick and args.sections == "gen" and run_all.sizes(args)["shape"] == "tiny"


def test_training_flops_count_what_each_kind_of_training_computes():
    """The MFU numerator: LoRA computes forward + input gradients (4 FLOPs per weight per position),
    a full fine-tune also weight gradients (6); causal attention adds 2 T^2 d per layer, 3x in training."""
    from types import SimpleNamespace

    cfg = SimpleNamespace(hidden_size=8, num_layers=2, output_vocab_size=10)
    weights = 2 * 12 * 64 + 8 * 10
    attention = 3 * 2 * 2 * 5 * 5 * 8
    assert train_bench.training_flops(cfg, positions=5, batch=1, lora=True) == 4 * weights * 5 + attention
    assert train_bench.training_flops(cfg, positions=5, batch=3, lora=False) == 3 * (6 * weights * 5 + attention)


def test_a_gpu_bench_trains_a_batch_big_enough_to_fill_the_card():
    on_gpu = run_all.sizes(run_all.parse(["--device", "cuda"]))["train"]
    on_cpu = run_all.sizes(run_all.parse(["--device", "cpu"]))["train"]
    assert on_gpu["batch"] == 16 and on_cpu["batch"] == 2
