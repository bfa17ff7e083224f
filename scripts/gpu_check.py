"""`make gpu-check`: the GPU path end to end on one CUDA card, printed as one table.

    python scripts/gpu_check.py                   # about 5-8 minutes on one H200
    python scripts/gpu_check.py --random-weights  # skip building the hub fixture
    python scripts/gpu_check.py --model DIR       # a Bark folder or a downloaded preset
    python scripts/gpu_check.py --smoke           # tiny shapes on whatever device is there: checks this script

Rows, each pass or FAIL with what it saw:
- LoRA bf16 training of all three stages at bark-small shapes: a checkpoint, SIGKILL, a resume
  that ends where an uninterrupted run of the same settings ends;
- generation with both engines, sampled and greedy, batch 1 and batch 8 (sampled generation draws
  from generators on the card; the same seed gives the same take twice);
- torch.compile of the fast engine's decode step;
- distributed training through torchrun and models.distributed on one card: LoRA under DDP and a
  full fine-tune under FSDP2, each loss curve compared with the one-process run of the same batch,
  with the training state (weights, gradients' owners, AdamW moments) and peak memory per rank
  (--smoke: 2 CPU ranks on gloo, the test-only backend);
- a generate job and a sweep job through a real `bark-studio worker` started with BARK_STUDIO_GPU=0;
- the bench's GPU rows (bench/run_all.py; a missed speed target shows, but only a row that could
  not be measured fails).
Weights: the real-format `small` hub fixture (tests/hub_fixture.py) where the checkout has it, else
random ones at bark-small's shapes (bench/shapes.py), or --model. Logs and tracebacks go to the
work folder (--work, default a temporary one); the table goes to stdout. Without CUDA it refuses in
one line and exits 2.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REFUSAL = "gpu-check refused: torch sees no CUDA GPU on this machine; run `make gpu-check` where there is one"
TEXTS = [f"Hello there, this is take {i} of the test." for i in range(8)]


def parse(argv=None):
    ap = argparse.ArgumentParser(prog="python scripts/gpu_check.py", description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a Bark model: a folder, or a preset whose files are here (default: the "
                                    "real-format `small` fixture where this checkout has tests/hub_fixture.py)")
    ap.add_argument("--random-weights", action="store_true",
                    help="random weights at bark-small shapes (bench/shapes.py) instead of the fixture")
    ap.add_argument("--work", type=Path, help="folder for the model, runs, workspace and logs (default: temporary)")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, any device: a quick run of this script")
    ap.add_argument("--skip", default="", help="comma list of checks to leave out: train, gen, compile, dist, worker, "
                                                "bench")
    ap.add_argument("--train-child", type=Path, help=argparse.SUPPRESS)  # internal: one training process
    ap.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def cuda_available() -> bool:
    import torch

    with warnings.catch_warnings():  # an old driver warns here; the refusal must stay one line
        warnings.simplefilter("ignore")
        return torch.cuda.is_available()


# --- the model ----------------------------------------------------------------------------------

def fixture_model() -> str | None:
    """`small` from the real-format hub fixture (tests/hub_fixture.py: the hub's files in name, format
    and shape, seeded random values) where this checkout has it, built once; every loader, here and
    in the processes started below, then reads it offline. None where the checkout lacks it."""
    try:
        from tests.hub_fixture import hub_env
    except ImportError:
        return None
    os.environ.update(hub_env())  # before anything imports huggingface_hub, which reads these once
    return "small"


def build_model(folder: Path, shape: str) -> str:
    """Random weights with `shape`'s real layer sizes and vocabularies, saved as a Bark folder."""
    if not (folder / "config.json").is_file():
        from transformers import GenerationConfig

        from bench.shapes import bark_model
        from models.presets import load_text_tokenizer

        model = bark_model(shape, full_codec=shape != "tiny")
        # the studio's generation never reads it; the bench's (stage configs kept as dicts) cannot be saved
        model.generation_config = GenerationConfig()
        model.save_pretrained(folder)
        load_text_tokenizer("tiny").save_pretrained(folder)  # the random model reads any ids
    return str(folder)


# --- training: checkpoint, kill, resume ----------------------------------------------------------

def train_settings(smoke: bool) -> dict:
    return dict(steps=6, save_every=2) if smoke else dict(steps=30, save_every=5)


def clip_items(model: str, n: int = 12) -> list:
    """n random 5-7 s clips as tokenized items (semantic at 49.9 Hz, EnCodec frames at 75 Hz)."""
    import numpy as np

    from models import presets
    from models.layouts import TokenItem
    from models.text import encode_text

    tok = presets.load_text_tokenizer(model)
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        n_sem = int(rng.integers(250, 350))
        items.append(TokenItem(text_ids=encode_text(tok, TEXTS[i % len(TEXTS)]), semantic=rng.integers(0, 10000, n_sem),
                               codes=rng.integers(0, 1024, (8, round(n_sem * 75 / 49.9))), key=f"clip-{i}"))
    return items


def train_child(args) -> int:
    """One training process: fresh, or resumed from its run folder's latest checkpoint."""
    from models import presets
    from models.checkpoints import read_pointer
    from models.training import TrainConfig, TrainingRecipe

    run = args.train_child
    s = train_settings(args.smoke)
    bark = presets.load_bark(args.model)  # fp32 on the CPU; the recipe moves it, as the train job does
    items = clip_items(args.model)
    cfg = TrainConfig(stages=("semantic", "coarse", "fine"), method="lora", precision="bf16", batch_size=4,
                      grad_accum=1, max_steps=s["steps"], save_every=s["save_every"], eval_every=s["save_every"],
                      patience=0, val_fraction=0.2, seed=0, device="auto")
    recipe = TrainingRecipe(cfg, bark, items, run, base_model=args.model,
                            resume_from=read_pointer(run) if args.resume else None)
    recipe.setup()
    start = recipe.step
    result = recipe.train()
    (run / "result.json").write_text(json.dumps({"start": start, "step": result.step, "status": result.status,
                                                 "loss": result.history[-1]["loss"], "device": str(recipe.device),
                                                 "precision": recipe.precision}))
    return 0


def _train_process(args, run: Path, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--train-child", str(run), "--model", args.model]
    cmd += ["--smoke"] * args.smoke + ["--resume"] * resume
    log = open(run.parent / f"{run.name}{'-resume' if resume else ''}.log", "w")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def check_training(args, work: Path) -> list[dict]:
    from safetensors.torch import load_file

    from models.checkpoints import read_pointer

    runs = work / "train"
    runs.mkdir(parents=True, exist_ok=True)
    killed, whole = runs / "killed", runs / "uninterrupted"
    t0 = time.monotonic()
    reference = _train_process(args, whole)   # runs beside the one that gets killed
    victim = resumed = None
    try:
        victim = _train_process(args, killed)
        while read_pointer(killed) is None and victim.poll() is None:
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        rc = victim.wait()
        at_kill = read_pointer(killed)
        if rc != -signal.SIGKILL or at_kill is None:
            return [row("train: LoRA bf16, kill + resume", False, t0,
                        f"the run ended (rc {rc}) before it could be killed after a checkpoint; see {runs}")]
        resumed = _train_process(args, killed, resume=True)
        rc_resumed, rc_whole = resumed.wait(timeout=600), reference.wait(timeout=600)
    finally:  # nothing keeps running after this check, whatever happened
        for proc in (reference, victim, resumed):
            if proc is not None and proc.poll() is None:
                proc.kill()
    if rc_resumed or rc_whole:
        return [row("train: LoRA bf16, kill + resume", False, t0,
                    f"exit status {rc_resumed} (resumed), {rc_whole} (uninterrupted); logs in {runs}")]
    a, b = (json.loads((r / "result.json").read_text()) for r in (killed, whole))
    wa, wb = (load_file(str(read_pointer(r) / "trainable.safetensors")) for r in (killed, whole))
    dw = max(float((wa[k] - wb[k]).abs().max()) for k in wb)
    scale = max(float(w.abs().max()) for w in wb.values())
    loss_gap = abs(a["loss"] - b["loss"]) / abs(b["loss"])
    kill_step = int(at_kill.name.split("-")[1])
    ok = (a["start"] == kill_step > 0 and a["step"] == b["step"] == train_settings(args.smoke)["steps"]
          and a["status"] == "completed" and a["precision"] == "bf16" and loss_gap < 0.02 and dw <= 0.02 * scale)
    return [row(f"train: LoRA bf16 ({a['device']}), checkpoint, SIGKILL, resume", ok, t0,
                f"killed after step {kill_step}, resumed {a['start']} -> {a['step']}; final loss {a['loss']:.4f} vs "
                f"{b['loss']:.4f} uninterrupted ({100 * loss_gap:.2f}%); trained weights differ by {dw:.2e} "
                f"(largest {scale:.2e})")]


# --- distributed training ---------------------------------------------------------------------------

DIST_STEPS = 4


def check_distributed(args, work: Path, device: str) -> list[dict]:
    """LoRA under DDP and a full fine-tune under FSDP2, launched by torchrun as a train job does:
    one rank on a card (NCCL), or in --smoke two CPU ranks on gloo. Each curve is compared with
    the one-process run of the same global batch (fp32, so only reduction order may differ)."""
    import torch

    from models import distributed as D
    from models import presets
    from models.training import TrainConfig, TrainingRecipe

    world = 2 if device == "cpu" else 1
    per_rank = 2
    items = clip_items(args.model, n=6)
    rows = []
    for method, engine in (("lora", "DDP"), ("full", "FSDP2")):
        t0 = time.monotonic()
        name = f"dist: {method} under {engine}, {world} rank(s) ({'gloo, CPU' if device == 'cpu' else 'NCCL'})"
        folder = work / f"dist-{method}"
        folder.mkdir(parents=True, exist_ok=True)
        cfg = dict(stages=["coarse"], method=method, precision="fp32", batch_size=per_rank, grad_accum=1,
                   max_steps=DIST_STEPS, save_every=DIST_STEPS, eval_every=DIST_STEPS, patience=0, val_fraction=0.2,
                   dropout=0.0, seed=0, lr=1e-4 if method == "full" else 1e-3)
        torch.save({"config": cfg, "model": args.model, "items": items, "run_dir": str(folder / "run"),
                    "dataset": {"name": "gpu-check"}}, folder / D.SPEC)
        env = {**os.environ, **({"BARK_STUDIO_DIST_BACKEND": "gloo"} if device == "cpu" else {})}
        with open(folder / "torchrun.log", "w") as log:
            rc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                 f"--nproc-per-node={world}", "-m", "models.distributed", str(folder)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=900).returncode
        events = D.EventReader(folder / D.EVENTS).new()
        curve = {e["data"]["step"]: e["data"]["loss"] for e in events if e["event"] == "progress"}
        result = next((e["data"] for e in events if e["event"] == "result"), None)
        if rc or result is None:
            rows.append(row(name, False, t0, f"torchrun exit {rc}; see {folder / 'torchrun.log'}"))
            continue
        one = TrainingRecipe(TrainConfig(**{**cfg, "batch_size": per_rank * world, "device": device}),
                             presets.load_bark(args.model), items, folder / "one-process", base_model=args.model)
        reference = {h["step"]: h["loss"] for h in one.train().history}
        gap = max(abs(curve[s] - reference[s]) for s in reference)
        memory = result.get("memory") or {}
        ok = sorted(curve) == list(range(1, DIST_STEPS + 1)) and gap < 1e-4
        rows.append(row(name, ok, t0, f"loss curve vs one process: max gap {gap:.1e} over {DIST_STEPS} steps; "
                        f"training state {memory.get('state_mib', 0):.1f} MiB per rank"
                        + (f", peak {memory['peak_cuda_mib']:.0f} MiB" if memory.get("peak_cuda_mib") else "")))
        del one
        gc.collect()
    return rows


# --- generation -----------------------------------------------------------------------------------

def _problems(outputs) -> list[str]:
    """What is wrong with (audio, (8, T) codes) outputs: empty or non-finite audio, codes out of range."""
    import numpy as np

    bad = []
    for i, (audio, codes) in enumerate(outputs):
        if not len(audio) or not np.isfinite(audio).all():
            bad.append(f"row {i}: empty or non-finite audio")
        if codes.shape[0] != 8 or (codes.size and (codes.min() < 0 or codes.max() > 1023)):
            bad.append(f"row {i}: codes {codes.shape} outside 8 x 0..1023")
    return bad


def _same(x, y) -> bool:
    import numpy as np

    return all(np.array_equal(a, b) for a, b in zip(x.codes + x.semantic, y.codes + y.semantic))


def check_generation(args, device: str) -> list[dict]:
    import numpy as np

    from models import presets
    from models.attention import resolve_precision
    from models.fast_generation import prepare_for_inference
    from models.generation import BarkStages, Request, Sampling, generate

    cap = 32 if args.smoke else 96
    bark = presets.load_bark(args.model, device=device)
    tok = presets.load_text_tokenizer(args.model)
    rows = []
    for engine, precision in (("reference", "fp32"), ("fast", resolve_precision("auto", device))):
        if engine == "fast":  # one way: bf16 weights and SDPA from here on
            prepare_for_inference(bark, precision, "sdpa", device)
        stages = BarkStages.from_bark(bark)
        for mode in ("sampled", "greedy"):
            sampling = (Sampling(semantic_max_new_tokens=cap) if mode == "sampled"
                        else Sampling.greedy(semantic_max_new_tokens=cap))
            alone = None
            for batch in (1, 8):
                t0 = time.monotonic()
                name = f"generate: {engine} {precision}, {mode}, batch {batch}"
                try:
                    requests = [Request(TEXTS[i], None, seed=100 + i) for i in range(batch)]
                    out = generate(stages, tok, requests, sampling, batch_size=8, fast=engine == "fast")
                    again = generate(stages, tok, requests, sampling, fast=engine == "fast") if batch == 1 else None
                except Exception as exc:  # noqa: BLE001 - every failure is a row
                    rows.append(failed(name, t0, exc))
                    continue
                bad = _problems([(r.audio, np.concatenate(r.codes, axis=1)) for r in out])
                notes = [f"{sum(len(r.audio) for r in out) / 24000:.1f} s of audio"]
                if batch == 1:
                    alone = out[0]
                    if not _same(out[0], again[0]):
                        bad.append("the same seed gave another take")
                    else:
                        notes.append("same seed, same take")
                else:
                    if mode == "sampled" and len({r.semantic[0].tobytes() for r in out}) < 2:
                        bad.append("8 seeds gave one take")
                    if alone is not None:  # reported, not required: kernels may differ by batch size on a GPU
                        notes.append(f"row 0 {'equals' if _same(out[0], alone) else 'differs from'} its batch-1 take")
                rows.append(row(name, not bad, t0, "; ".join(bad or notes)))
    return rows


def check_compile(args, device: str) -> list[dict]:
    import torch

    from models import fast_generation as fg
    from models import presets
    from models.text import encode_text

    t0 = time.monotonic()
    name = "generate: fast engine, torch.compile'd decode step"
    if device != "cuda":
        return [row(name, None, t0, "compiles on CUDA only")]
    bark = fg.prepare_for_inference(presets.load_bark(args.model, device=device), "auto", "sdpa", device)
    ids = [encode_text(presets.load_text_tokenizer(args.model), t) for t in TEXTS[:2]]
    plain = fg.GenerationSettings(semantic_temperature=0, coarse_temperature=0, fine_temperature=0,
                                  max_semantic_tokens=64, min_eos_p=None)
    compiled = fg.GenerationSettings(**{**plain.__dict__, "compile": True})
    ref = fg.generate_batch(bark, ids, settings=plain)
    out = fg.generate_batch(bark, ids, settings=compiled)
    torch.cuda.synchronize()
    agree = sum(torch.equal(a.semantic, b.semantic) for a, b in zip(ref, out))
    bad = _problems([(g.audio, g.codes.numpy()) for g in out])
    return [row(name, not bad, t0, "; ".join(bad) or f"{agree} of {len(out)} rows give the eager run's tokens")]


# --- a real worker --------------------------------------------------------------------------------

def check_worker(args, work: Path, device: str) -> list[dict]:
    from studio import jobs
    from studio.workspace import Workspace
    from workers.dispatch import submit, wait_for

    ws = Workspace.resolve(work / "workspace")
    cap = 32 if args.smoke else 64
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "BARK_STUDIO_GPU": "0", "PYTHONPATH": path}
    log = open(work / "worker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "--home", str(ws.root), "worker", "--workers", "1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    rows = []
    try:
        t0 = time.monotonic()
        while not any(w.endswith(f":{proc.pid}") for w in jobs.live_workers(ws.db)):
            if proc.poll() is not None or time.monotonic() - t0 > 180:
                return [row("worker: BARK_STUDIO_GPU=0", False, t0, f"the worker did not come up; see {log.name}")]
            time.sleep(0.2)
        wanted = f"on {device}"
        for kind, params in (
            ("generate", {"texts": TEXTS[:2], "model": args.model, "variants": 2, "seed": 7,
                          "semantic_max_new_tokens": cap, "batch_size": 4}),
            ("sweep", {"prompts": TEXTS[:1], "seeds": [0, 1], "axes": {"semantic_temperature": [0.5, 0.8]},
                       "model": args.model, "max_new_semantic": cap, "batch_size": 4}),
        ):
            t0 = time.monotonic()
            job = wait_for(ws, submit(ws, kind, params)["id"], timeout=600)
            result = job.get("result") or {}
            made = (len(result.get("files") or []) if kind == "generate"
                    else result.get("outputs", 0) - result.get("failed", 0))
            log_tail = job.get("log_tail") or ""
            ok = job["status"] == "succeeded" and made == 4 and wanted in log_tail
            detail = (f"{made} outputs, generated {wanted}" if ok else f"{job['status']}: "
                      f"{job.get('error') or f'expected 4 outputs made {wanted}'}; log: {log_tail[-300:]!r}")
            rows.append(row(f"worker: {kind} job, BARK_STUDIO_GPU=0", ok, t0, detail))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return rows


# --- the bench's GPU rows --------------------------------------------------------------------------

def check_bench(args, work: Path) -> list[dict]:
    t0 = time.monotonic()
    out = work / "bench"
    cmd = [sys.executable, "-m", "bench.run_all", "--sections", "train,gen", "--no-stock-rtf", "--out", str(out)]
    with open(work / "bench.log", "w") as log:
        rc = subprocess.run(cmd + ["--quick"] * args.smoke, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            timeout=480).returncode
    if rc or not (out / "latest.json").is_file():
        return [row("bench: GPU rows", False, t0, f"bench/run_all.py exited {rc}; see {work / 'bench.log'}")]
    rows = []
    for r in json.loads((out / "latest.json").read_text())["table"]:
        if r["figure"].startswith("GPU"):
            measured = r["ours"] is not None
            met = {True: "met", False: "missed", None: "—"}[r["met"]]
            rows.append(row(f"bench: {r['figure']}", measured if not args.smoke else None, t0,
                            f"{r['ours']:.2f} {r['unit']}, target {r['target']}: {met}" if measured else r["baseline"]))
    return rows or [row("bench: GPU rows", False, t0, "the bench table has no GPU rows")]


# --- the table -------------------------------------------------------------------------------------

def row(name: str, ok: bool | None, t0: float, detail: str) -> dict:
    return {"check": name, "ok": ok, "seconds": time.monotonic() - t0, "detail": detail}


def failed(name: str, t0: float, exc: BaseException) -> dict:
    traceback.print_exc(file=sys.stderr)
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return row(name, False, t0, f"{type(exc).__name__}: {first}")


def table(card: str, rows: list[dict]) -> str:
    lines = [f"gpu-check on {card}", "", "| check | result | s | detail |", "| --- | --- | ---: | --- |"]
    for r in rows:
        result = {True: "pass", False: "**FAIL**", None: "—"}[r["ok"]]
        lines.append(f"| {r['check']} | {result} | {r['seconds']:.1f} | {r['detail']} |")
    n_fail = sum(r["ok"] is False for r in rows)
    lines += ["", f"{sum(r['ok'] is True for r in rows)} passed, {n_fail} failed"]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse(argv)
    if args.train_child:
        return train_child(args)
    if not cuda_available() and not args.smoke:
        print(REFUSAL, file=sys.stderr)
        return 2
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    card = (f"{torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB, "
            f"CUDA {torch.version.cuda}, torch {torch.__version__})" if device == "cuda" else "CPU (smoke run)")
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    rows: list[dict] = []
    t0 = time.monotonic()
    weights = f"--model {args.model}"
    try:
        if not args.model and not (args.smoke or args.random_weights):
            args.model = fixture_model()
            weights = "the real-format `small` hub fixture (tests/hub_fixture.py, seeded random values)"
        if not args.model:
            shape = "tiny" if args.smoke else "bark-small"
            args.model = build_model(work / "model", shape)
            weights = f"random weights at {shape} shapes (bench/shapes.py)"
    except Exception as exc:  # noqa: BLE001 - nothing runs without a model
        rows.append(failed("model: the fixture or random bark-small weights", t0, exc))
        skip = {"train", "gen", "compile", "dist", "worker", "bench"}
    card += f"; weights: {weights}"
    checks = [("train", lambda: check_training(args, work)), ("gen", lambda: check_generation(args, device)),
              ("compile", lambda: check_compile(args, device)), ("dist", lambda: check_distributed(args, work, device)),
              ("worker", lambda: check_worker(args, work, device)),
              ("bench", lambda: check_bench(args, work))]
    for name, check in checks:
        if name in skip:
            continue
        t0 = time.monotonic()
        print(f"gpu-check: {name} ...", file=sys.stderr, flush=True)
        try:
            rows += check()
        except Exception as exc:  # noqa: BLE001 - a crashed check is a failed row, the rest still run
            rows.append(failed(f"{name}: crashed", t0, exc))
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()  # what this process cached goes back for the next check's processes
    text = table(card, rows)
    (work / "table.md").write_text(text + "\n")
    print(text)
    print(f"(logs in {work})", file=sys.stderr)
    return 1 if any(r["ok"] is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
