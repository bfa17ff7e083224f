"""Listening-test load: many raters voting at once through the real web server while a job writes
its progress to the same SQLite file.

    python -m bench.listening_load [--raters 50] [--votes 20] [--url URL --home DIR]

Without --url it makes a fresh workspace and starts `bark-studio serve` on a free port. It first
runs one rater alone (the baseline), then all raters at once, and prints vote latency
percentiles of both and their ratio, the rows written and the errors seen ("database is locked"
counted apart)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SPEECH = REPO.parent / "shared" / "fixtures" / "speech" / "awb_arctic_a0007.wav"
CLIP_S = 0.3  # short stimuli: the server's playback check then costs little wall time


def prepare(ws, n_items: int, n_raters: int, speech: Path = SPEECH) -> tuple[str, list[str], list[str]]:
    """A MOS session of `n_items` real-speech clips and `n_raters` links: (public id, tokens, tokens of the baseline)."""
    import soundfile as sf

    from studio.listening.sessions import SystemSource, add_raters, create_session

    x, sr = sf.read(str(speech))
    folder = ws.root / "bench-src" / "system"
    folder.mkdir(parents=True, exist_ok=True)
    step = int(CLIP_S * sr)
    for i in range(n_items):
        start = (i * step // 3) % (len(x) - step)
        sf.write(folder / f"clip{i:03d}.wav", x[start:start + step], sr)
    session = create_session(ws, name="load", systems=[SystemSource("system", folder)], test_type="mos",
                             trials_per_rater=n_items)
    tokens = [r["token"] for r in add_raters(ws, session["id"], n_raters + 1)]
    return session["public_id"], tokens[1:], tokens[:1]


def one_rater(url: str, public_id: str, token: str, n_votes: int, out: dict, lock: threading.Lock) -> None:
    """Consent, then state -> (listen) -> vote, n_votes times. Records vote latencies, errors and
    acknowledgements in `out`, under `lock` (50 threads share it: `+=` is not atomic)."""
    import httpx

    base = f"{url}/listen/{public_id}/{token}"
    with httpx.Client(timeout=60) as client:
        client.post(f"{base}/consent")
        for _ in range(n_votes):
            state = client.get(f"{base}/api/state")
            if state.status_code != 200:
                with lock:
                    out["errors"].append(f"state {state.status_code}: {state.text[:200]}")
                continue
            trial = state.json()["trial"]
            if trial is None:
                break
            durations = {s["side"]: s["duration"] for s in trial["stimuli"]}
            time.sleep(max(0.0, 0.9 * sum(durations.values()) - 0.25) + 0.01)  # the playback the server checks
            body = {"trial": trial["id"], "response": "3", "plays": {k: 1 for k in durations},
                    "listened": durations, "response_time_ms": 800}
            t0 = time.perf_counter()
            res = client.post(f"{base}/api/vote", json=body)
            latency = time.perf_counter() - t0
            with lock:
                out["latency"].append(latency)
                if res.status_code != 200:
                    out["errors"].append(f"vote {res.status_code}: {res.text[:200]}")
                else:
                    out["acked"] += 1


def run_load(url: str, public_id: str, tokens: list[str], n_votes: int) -> dict:
    out = {"latency": [], "errors": [], "acked": 0}
    lock = threading.Lock()
    threads = [threading.Thread(target=one_rater, args=(url, public_id, t, n_votes, out, lock)) for t in tokens]
    t0 = time.perf_counter()
    [t.start() for t in threads]
    [t.join() for t in threads]
    lat = np.asarray(out["latency"]) * 1000
    return {"raters": len(tokens), "acked": out["acked"], "errors": out["errors"],
            "locked_errors": sum("locked" in e for e in out["errors"]), "wall_s": time.perf_counter() - t0,
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
            "p90_ms": float(np.percentile(lat, 90)) if len(lat) else None,
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
            "max_ms": float(lat.max()) if len(lat) else None}


def start_progress_writer(home: Path) -> tuple[subprocess.Popen, int]:
    """A separate process running a job that reports progress as fast as it can (as a worker would).
    Returns once it has committed its first progress write: (process, job id)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.listening_load", "--progress-writer", str(home)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def progress_writer(home: str) -> None:
    from studio import jobs
    from studio.workspace import Workspace

    ws = Workspace.resolve(home)
    job_id = jobs.create_job(ws.db, "noop", {"bench": "listening_load"})
    token = jobs.claim(ws.db, job_id, "bench-writer")
    ctx = jobs.JobContext(db=ws.db, job_id=job_id, run_token=token, params={}, workspace=ws)
    step = 0
    while True:  # until the parent stops us
        step += 1
        ctx.progress(step=step, total=10 ** 9, message=f"step {step}")
        if step % 10 == 0:
            ctx.metrics(step, {"loss": 1.0 / step})
        if step == 1:
            print(job_id, flush=True)


def stop_progress_writer(writer: tuple[subprocess.Popen, int], ws) -> int:
    """Stop the writer and return how many progress steps it committed."""
    from studio import jobs

    proc, job_id = writer
    proc.terminate()
    proc.wait(timeout=30)
    with ws.db.read() as s:  # the bench job ends as succeeded, not as a stale "running" row
        row = s.get(jobs.Job, job_id)
        token = row.run_token
    jobs.finish(ws.db, job_id, token, "succeeded", result={"bench": "listening_load"})
    return jobs.get_job(ws.db, job_id)["step"] or 0


def report(baseline: dict, load: dict, progress_steps: int) -> str:
    ratio = load["p50_ms"] / baseline["p50_ms"] if baseline["p50_ms"] else float("nan")
    return (f"baseline (1 rater alone): vote p50 {baseline['p50_ms']:.1f} ms, p90 {baseline['p90_ms']:.1f} ms\n"
            f"load ({load['raters']} raters at once): {load['acked']} votes acknowledged in {load['wall_s']:.1f} s; "
            f"p50 {load['p50_ms']:.1f} ms, p90 {load['p90_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, "
            f"max {load['max_ms']:.1f} ms; p50 ratio vs baseline {ratio:.2f}x\n"
            f"errors {len(load['errors'])} (database is locked: {load['locked_errors']}); "
            f"job progress writes meanwhile: {progress_steps}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--votes", type=int, default=20)
    parser.add_argument("--url", help="a running studio (with --home, its workspace)")
    parser.add_argument("--home")
    parser.add_argument("--progress-writer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.progress_writer:
        progress_writer(args.progress_writer)
        return
    sys.path.insert(0, str(REPO))
    from studio.workspace import Workspace

    server = None
    if args.url:
        ws = Workspace.resolve(args.home)
        url = args.url
    else:
        from tests.conftest import Server

        ws = Workspace.resolve(Path(tempfile.mkdtemp(prefix="bench-listen-")) / "home")
        server = Server(ws)
        url = server.url
    try:
        public_id, tokens, base_tokens = prepare(ws, args.votes, args.raters)
        baseline = run_load(url, public_id, base_tokens, args.votes)
        writer = start_progress_writer(ws.root)
        load = run_load(url, public_id, tokens, args.votes)
        steps = stop_progress_writer(writer, ws)
        print(report(baseline, load, steps))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
