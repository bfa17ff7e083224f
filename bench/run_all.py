"""`make bench`: every figure as a ratio against a baseline run in the same process.

    python -m bench.run_all                      # bark-small shapes, ~5-8 min on 2 CPU cores
    python -m bench.run_all --quick              # tiny shapes, seconds: checks the harness only
    python -m bench.run_all --sections gen --shape bark

Writes bench/results/<time>.json, bench/results/latest.json and bench/results/table.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
NO_GPU = "not measured: no GPU lent to this task"


def _reexec_with_fixed_mmap_threshold() -> None:
    """glibc returns freed blocks above the mmap threshold to the OS at once; a fixed threshold
    keeps the RSS-based peak memory of one section from hiding in another's freed pages."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None and sys.platform.startswith("linux"):
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
        os.execve(sys.executable, [sys.executable, "-m", "bench.run_all", *sys.argv[1:]], env)


def parse(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="bark-small", choices=["tiny", "bark-small", "bark"])
    ap.add_argument("--quick", action="store_true", help="tiny shapes and lengths: a smoke run of the harness")
    ap.add_argument("--sections", default="train,gen,adapter,data", help="comma list of train, gen, adapter, data")
    ap.add_argument("--device", default="cuda" if _cuda() else "cpu")
    ap.add_argument("--precision", default="auto", help="ours: auto, bf16, fp16 (CUDA), fp32")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--no-stock-rtf", action="store_true", help="skip stock BarkModel.generate for the RTF figure")
    ap.add_argument("--out", type=Path, default=RESULTS)
    return ap.parse_args(argv)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sizes(args) -> dict:
    if args.quick:
        return dict(shape="tiny", train=dict(batch=2, n_semantic=15, steps=1),
                    gen=dict(n_tokens_b1=6, n_tokens_b8=4, rtf_seconds=0.3, sweep_variants=3, sweep_seconds=0.2),
                    adapter=dict(seconds=0.3, repeats=1),
                    data=dict(prepare_s=8.0, clip_s=8.0, tokenize_s=2.0, real_shapes=False))
    # a GPU needs a bigger batch than 2 x 512 positions before its matmuls fill it (the MFU figure)
    train_batch = 16 if args.device.startswith("cuda") else 2
    return dict(shape=args.shape, train=dict(batch=train_batch, n_semantic=255, steps=2 if train_batch == 2 else 5),
                gen=dict(n_tokens_b1=64, n_tokens_b8=32, rtf_seconds=10.0, sweep_variants=8, sweep_seconds=4.0),
                adapter=dict(seconds=4.0, repeats=2),
                data=dict(prepare_s=120.0, clip_s=12.0, tokenize_s=20.0, real_shapes=True))


def run(args) -> dict:
    import torch

    from bench.measure import load_average, machine

    if args.threads:
        torch.set_num_threads(args.threads)
    sz = sizes(args)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    out = {"machine": machine(), "device": args.device, "load_average_at_start": load_average(),
           "command": "python -m bench.run_all " + " ".join(sys.argv[1:]), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
           "sizes": sz}
    t0 = time.perf_counter()
    partial = args.out / "partial.json"  # each finished section lands here at once (a long run can be read early)
    args.out.mkdir(parents=True, exist_ok=True)

    def save():
        partial.write_text(json.dumps(out, indent=1, default=str))

    if "train" in sections:
        from bench import train_bench
        from bench.measure import matmul_peak_flops
        from models.attention import resolve_precision

        out["train"] = train_bench.run(sz["shape"], device=args.device, precision=args.precision, **sz["train"])
        precision = resolve_precision(args.precision, args.device)
        out["train"]["matmul_peak_flops"] = matmul_peak_flops(args.device, precision)
        out["train"]["matmul_peak_precision"] = precision
        save()
    if "gen" in sections:
        from bench import gen_bench

        out["gen"] = gen_bench.run(sz["shape"], device=args.device, precision=args.precision,
                                   stock_rtf=not args.no_stock_rtf, **sz["gen"])
        save()
    if "adapter" in sections:
        from bench import gen_bench

        out["adapter"] = gen_bench.adapter_speed(sz["shape"], device=args.device, precision=args.precision,
                                                 **sz["adapter"])
        save()
    if "data" in sections:
        from bench import data_bench

        d = sz["data"]
        out["data"] = {"prepare": data_bench.prepare_throughput(d["prepare_s"], d["clip_s"]),
                       "tokenize": data_bench.tokenize_throughput(d["tokenize_s"], d["real_shapes"])}
    out["wall_s"] = time.perf_counter() - t0
    out["load_average_at_end"] = load_average()
    out["table"] = table(out)
    return out


def _row(figure, baseline, ours, base, ratio, target, met, unit=""):
    return {"figure": figure, "baseline": baseline, "ours": ours, "stock": base, "ratio": ratio, "target": target,
            "met": met, "unit": unit}


def table(r: dict) -> list[dict]:
    rows = []
    t = r.get("train", {}).get("configs", {})
    if {"stock_full", "ours_lora"} <= set(t):
        sf, ol = t["stock_full"], t["ours_lora"]
        ratio = ol["trained_tokens_per_s"] / sf["trained_tokens_per_s"]
        rows.append(_row("LoRA training, trained tokens/s", "stock full fine-tune (513 layout, eager, fp32)",
                         ol["trained_tokens_per_s"], sf["trained_tokens_per_s"], ratio, ">= 3x", ratio >= 3, "tok/s"))
        pratio = ol["positions_per_s"] / sf["positions_per_s"]
        rows.append(_row("LoRA training, positions/s", "stock full fine-tune", ol["positions_per_s"],
                         sf["positions_per_s"], pratio, "(context)", None, "pos/s"))
        mratio = ol["peak_bytes"] / sf["peak_bytes"]
        rows.append(_row("LoRA training, peak memory", "stock full fine-tune", ol["peak_bytes"] / 2**20,
                         sf["peak_bytes"] / 2**20, mratio, "<= 0.5x", mratio <= 0.5, "MiB"))
    if {"stock_lora", "ours_lora"} <= set(t):
        a, b = t["ours_lora"], t["stock_lora"]
        rows.append(_row("LoRA training, trained tokens/s", "stock LoRA (PEFT, 513 layout, eager, fp32)",
                         a["trained_tokens_per_s"], b["trained_tokens_per_s"],
                         a["trained_tokens_per_s"] / b["trained_tokens_per_s"], "(context)", None, "tok/s"))
    if {"stock_full", "ours_full"} <= set(t):
        a, b = t["ours_full"], t["stock_full"]
        rows.append(_row("full fine-tune, trained tokens/s", "stock full fine-tune", a["trained_tokens_per_s"],
                         b["trained_tokens_per_s"], a["trained_tokens_per_s"] / b["trained_tokens_per_s"],
                         "(context)", None, "tok/s"))
        rows.append(_row("full fine-tune, peak memory", "stock full fine-tune", a["peak_bytes"] / 2**20,
                         b["peak_bytes"] / 2**20, a["peak_bytes"] / b["peak_bytes"], "(context)", None, "MiB"))
    g = r.get("gen")
    if g:
        for key, target in (("semantic_b1", 1.5), ("semantic_b8", None)):
            s = g[key]
            ratio = s["ours_tokens_per_s"] / s["stock_tokens_per_s"]
            rows.append(_row(f"semantic decoding, batch {s['batch']}, tokens/s", "stock BarkModel.generate (fp32)",
                             s["ours_tokens_per_s"], s["stock_tokens_per_s"], ratio,
                             f">= {target}x" if target else "(context)", ratio >= target if target else None, "tok/s"))
        rtf = g["rtf"]
        if "stock_rtf" in rtf:
            rows.append(_row(f"real-time factor, {rtf['audio_seconds']:.1f} s of audio (lower is better)",
                             "stock BarkModel.generate (fp32)", rtf["ours_rtf"], rtf["stock_rtf"],
                             rtf["stock_rtf"] / rtf["ours_rtf"], "(speed-up)", None, "wall s / audio s"))
        sw = g["sweep"]
        figure = f"sweep, {sw['variants']} takes of {sw['seconds_each']:g} s, outputs/min"
        ratio = sw["batched_outputs_per_min"] / sw["sequential_outputs_per_min"]
        rows.append(_row(figure, "ours one at a time", sw["batched_outputs_per_min"], sw["sequential_outputs_per_min"],
                         ratio, ">= 5x", ratio >= 5, "outputs/min"))
        if "stock_outputs_per_min" in sw:
            ratio = sw["batched_outputs_per_min"] / sw["stock_outputs_per_min"]
            rows.append(_row(figure, "stock BarkModel.generate one at a time (fp32)", sw["batched_outputs_per_min"],
                             sw["stock_outputs_per_min"], ratio, "(context)", None, "outputs/min"))
    a = r.get("adapter")
    if a:
        figure = f"generation with an adapter / without, {a['seconds_each']:g} s take, wall s"
        ratio = a["base_wall_s"] / a["merged_wall_s"]
        rows.append(_row(figure, "the base model, same text and seed", a["merged_wall_s"], a["base_wall_s"], ratio,
                         ">= 0.9x", ratio >= 0.9, "s"))
        rows.append(_row(f"generation with an adapter left as PEFT layers (before) / without, "
                         f"{a['seconds_each']:g} s take, wall s", "the base model, same text and seed",
                         a["peft_wrapped_wall_s"], a["base_wall_s"], a["base_wall_s"] / a["peft_wrapped_wall_s"],
                         "(context)", None, "s"))
    d = r.get("data")
    if d:
        p = d["prepare"]
        rows.append(_row("dataset prepare, audio s per wall s", "real time", p["x_real_time"], 1.0, p["x_real_time"],
                         ">= 50x", p["x_real_time"] >= 50, "x"))
        k = d["tokenize"]
        rows.append(_row(f"tokenize ({k['shapes']}), audio s per wall s", "real time", k["x_real_time"], 1.0,
                         k["x_real_time"], "(context)", None, "x"))
    on_gpu = r.get("device", "cpu").startswith("cuda")
    peak = r.get("train", {}).get("matmul_peak_flops")
    if peak and "ours_lora" in t:
        mfu = t["ours_lora"]["model_flops_per_s"] / peak
        prec = r["train"].get("matmul_peak_precision", "bf16")
        rows.append(_row(f"{'GPU' if on_gpu else 'CPU'}: LoRA training MFU ({prec})",
                         f"measured {prec} matmul peak, {peak / 1e12:.2f} TFLOP/s", 100 * mfu, None, mfu,
                         ">= 40%" if on_gpu else "(context)", mfu >= 0.4 if on_gpu else None, "%"))
    rtf = (g or {}).get("rtf", {})
    if on_gpu and r.get("sizes", {}).get("shape") == "bark-small" and rtf.get("audio_seconds", 0) >= 9.9:
        wall = rtf["ours_wall_s"] * 10.0 / rtf["audio_seconds"]
        rows.append(_row("GPU: 10 s of bark-small audio, wall s", "2 s", wall, 2.0, 2.0 / wall, "< 2 s", wall < 2, "s"))
    if not on_gpu:
        rows.append(_row("GPU: training MFU (bf16)", NO_GPU, None, None, None, ">= 40%", None))
        rows.append(_row("GPU: 10 s of bark-small audio", NO_GPU, None, None, None, "< 2 s", None))
    return rows


def markdown(r: dict) -> str:
    lines = ["| figure | baseline | ours | baseline value | ratio | target | met |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in r["table"]:
        def f(v):
            return "—" if v is None else (f"{v:,.2f}" if isinstance(v, float) else str(v))

        met = {True: "yes", False: "**no**", None: "—"}[row["met"]]
        lines.append(f"| {row['figure']} | {row['baseline']} | {f(row['ours'])} {row['unit']} | {f(row['stock'])} "
                     f"| {f(row['ratio'])} | {row['target']} | {met} |")
    lines.append("")
    lines.append(f"Machine: {r['machine']}; load average {r['load_average_at_start']} at start, "
                 f"{r['load_average_at_end']} at end. Command: `{r['command'].strip()}`; {r['wall_s']:.0f} s.")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = json.dumps(res, indent=1, default=str)
    (args.out / f"{stamp}.json").write_text(text)
    (args.out / "latest.json").write_text(text)
    md = markdown(res)
    (args.out / "table.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    _reexec_with_fixed_mmap_threshold()
    sys.exit(main())
