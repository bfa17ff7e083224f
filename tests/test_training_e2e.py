"""End to end on real speech: import and prepare (curation's jobs), then through the real CLI train
(which tokenizes), cancel and resume the training job, and generate through the adapter in a fresh
process that reloads everything from disk: the same seed gives the same audio."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import soundfile as sf

from studio import jobs
from studio import training as T
from tests.conftest import cli


def _json(proc):
    return json.loads(proc.stdout)


def _dataset(ws, awb_wav, slt_wav):
    """Two real utterances, imported, transcribed by hand and prepared (curation's own jobs, run here)."""
    from studio.datasets import store
    from studio.datasets.importer import ImportOptions, import_paths
    from workers.dispatch import submit

    store.create_dataset(ws.db, "arctic")
    import_paths(ws, "arctic", [awb_wav, slt_wav], ImportOptions(speaker="arctic"))
    texts = {"awb": "And you always want to see it in the superlative degree.",
             "slt": "He turned sharply, and faced Gregson across the table."}
    for clip in store.list_clips(ws.db, "arctic"):
        store.set_transcript(ws.db, clip["id"], texts["awb" if "awb" in clip["name"] else "slt"])
    job = submit(ws, "prepare", {"dataset": "arctic"}, wait=True)
    assert job["status"] == "succeeded" and job["result"]["kept"] == 2, job


def _generate(home, out, *adapter):
    args = ["generate", "--text", "Hello there.", "--model", "tiny", "--seed", "7", "--max-semantic-tokens", "24", "--out", str(out),
            "--json"]
    for a in adapter:
        args += ["--adapter", a]
    cli(*args, home=home)
    audio, rate = sf.read(str(out))
    assert rate == 24_000 and len(audio) > 0
    return audio


@pytest.mark.slow
@pytest.mark.timeout(1500)  # ~3 CPU-minutes of real work; more on a loaded machine
def test_train_cancel_resume_then_generate_through_the_adapter(ws, awb_wav, slt_wav, tmp_path):
    home = ws.root
    _dataset(ws, awb_wav, slt_wav)

    # `bark-studio train --wait` (no worker: the job runs in that process), stopped mid-run the way
    # the Train tab's Cancel does it: a flag on the job row, seen at the next step. The flag goes up
    # once tokenizing (which would stop at once) is over: training first looks at it after step 1, so
    # no box is fast enough to finish the run before it (a flag raised after a step could be).
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "--home", str(home), "train", "--dataset", "arctic",
                             "--stages", "semantic,coarse,fine", "--method", "lora", "--model", "tiny",
                             "--max-steps", "6", "--batch-size", "1", "--grad-accum", "1", "--lr", "0.05",
                             "--save-every", "100", "--eval-every", "100", "--name", "arctic-voice", "--wait",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "BARK_STUDIO_HOME": str(home)})
    deadline = time.monotonic() + 600
    job_id = None
    while time.monotonic() < deadline and proc.poll() is None:
        rows = jobs.list_jobs(ws.db, kind="train")
        if rows and (rows[0]["message"] or "").startswith(("loading model", "training")):
            job_id = rows[0]["id"]
            jobs.request_cancel(ws.db, job_id)
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=600)
    assert job_id is not None, err[-3000:]
    assert proc.returncode == 1, err[-3000:]  # --wait on a job that did not succeed
    stopped = json.loads(out)
    assert stopped["id"] == job_id and stopped["status"] == "cancelled", stopped
    k = stopped["result"]["step"]
    assert 1 <= k < 6 and stopped["result"]["status"] == "stopped"
    assert [c["step"] for c in T.list_checkpoints(ws, job_id)] == [k]  # the stop saved one
    assert not (ws.adapters_dir / "arctic-voice").exists()

    # ... resumed from the CLI in a new process: it continues at step k+1 and finishes
    resumed = _json(cli("jobs", "resume", str(job_id), "--wait", "--json", home=home))
    assert resumed["status"] == "succeeded", resumed
    result = resumed["result"]
    assert result["step"] == 6 and result["adapter"] == "arctic-voice"
    assert set(result["forgetting"]["base"]) == {"semantic", "coarse", "fine"}
    shown = jobs.get_job(ws.db, job_id)
    shown["metrics"] = jobs.metric_series(ws.db, job_id)
    assert f"resuming from checkpoints/{job_id}/step-{k:07d} at step {k}" in shown["log_tail"]
    loss_steps = [step for step, _ in shown["metrics"]["loss"]]
    assert loss_steps == list(range(1, 7))  # every step once: none lost, none repeated
    assert {"lr", "grad_norm", "tokens_per_s", "val_loss"} <= set(shown["metrics"])
    listed = T.list_checkpoints(ws, job_id)
    assert listed and any(c["is_best"] for c in listed) and listed[-1]["step"] == 6

    adapters = _json(cli("adapters", "list", "--json", home=home))
    assert [a["name"] for a in adapters] == ["arctic-voice"]
    manifest = adapters[0]["manifest"]
    assert manifest["base_model"] == "tiny" and manifest["stages"] == ["semantic", "coarse", "fine"]
    assert manifest["dataset"]["name"] == "arctic" and len(manifest["dataset"]["hash"]) == 64
    assert manifest["hyperparameters"]["lr"] == 0.05 and manifest["parent_checkpoint"]

    # generation through the adapter here, then again in a fresh process that reloads everything
    # from disk (`bark-studio generate`): the same seed gives the same audio
    from workers.dispatch import submit

    request = {"text": "Hello there.", "seed": 7, "semantic_max_new_tokens": 24, "model": "tiny"}
    adapter = {"name": "arctic-voice", "path": str(ws.adapters_dir / "arctic-voice"), "scale": 1.0}
    here = submit(ws, "generate", {**request, "adapters": [adapter]}, wait=True)
    base = submit(ws, "generate", request, wait=True)
    assert here["status"] == base["status"] == "succeeded", (here, base)
    with_adapter, _ = sf.read(str(ws.generated_dir / f"job-{here['id']}" / "000.wav"))
    without, _ = sf.read(str(ws.generated_dir / f"job-{base['id']}" / "000.wav"))
    assert len(without) != len(with_adapter) or not (without == with_adapter).all()  # the adapter is applied
    again = _generate(home, tmp_path / "again.wav", "arctic-voice")
    # the same sampled tokens (same length), and the same samples up to the codec's float rounding,
    # which differs in the last bits between processes (thread pools pick different kernels)
    assert len(again) == len(with_adapter) and abs(again - with_adapter).max() < 1e-5

    # export: a copy plain PEFT loads; then deleting a checkpoint (pointers move) and the adapter
    copied = _json(cli("adapters", "export", "arctic-voice", "--out", str(tmp_path / "copy"), "--json", home=home))
    assert (tmp_path / "copy" / "semantic" / "adapter_config.json").is_file() and not copied["merged"]
    first = T.list_checkpoints(ws, job_id)[0]
    T.delete_checkpoint(ws, first["id"])
    assert not ws.inside(first["path"]).exists()
    T.delete_adapter(ws, "arctic-voice")
    assert not (ws.adapters_dir / "arctic-voice").exists()
    proc = cli("adapters", "show", "arctic-voice", home=home, check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: no adapter named 'arctic-voice'"
