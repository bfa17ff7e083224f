"""The studio side of training: checkpoint and adapter rows, promote, delete (pointers kept
valid), and the CLI's one-line errors."""
from __future__ import annotations

import json

from models import checkpoints as ckpt
from models.presets import load_bark
from models.training import TrainingRecipe
from studio import jobs
from studio import training as T
from tests.conftest import cli
from tests.test_training_core import NextToken, small_config, token_items


def test_checkpoints_promote_and_delete_keep_the_run_resumable(ws):
    job_id = jobs.create_job(ws.db, "train", {"dataset": "d"})
    run = T.run_dir(ws, job_id)
    cfg = small_config(stages=("semantic",), max_steps=3, save_every=1, eval_every=1, keep_last=5)
    TrainingRecipe(cfg, load_bark("tiny"), token_items(), run, objectives={"semantic": NextToken()},
                   on_checkpoint=lambda info: T.record_checkpoint(ws, job_id, info)).train()
    rows = T.list_checkpoints(ws, job_id)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert sum(r["is_best"] for r in rows) == 1
    best = next(r for r in rows if r["is_best"])
    assert ckpt.read_pointer(run, ckpt.BEST).name == f"step-{best['step']:07d}"

    adapter = T.promote_checkpoint(ws, rows[1]["id"], "mid-run")
    assert adapter["name"] == "mid-run" and adapter["checkpoint"] == rows[1]["path"]
    assert adapter["stages"] == ["semantic"] and adapter["base_model"] == "tiny"
    manifest = json.loads((ws.adapters_dir / "mid-run" / "manifest.json").read_text())
    assert manifest["name"] == "mid-run" and manifest["metrics"]["step"] == 2
    assert T.get_adapter(ws, "latest")["name"] == "mid-run"
    assert T.adapter_folder(ws, "mid-run") == ws.adapters_dir / "mid-run"
    from models import adapters as A

    A.load_manifest(ws.adapters_dir / "mid-run")  # checksums still hold after the copy

    # deleting the newest checkpoint moves `latest` back; the run still resumes
    T.delete_checkpoint(ws, rows[2]["id"])
    assert ckpt.read_pointer(run).name == "step-0000002"
    assert ckpt.read_state(run)["step"] == 2
    assert [r["step"] for r in T.list_checkpoints(ws, job_id)] == [1, 2]

    for bad, message in (("latest", "not allowed"), ("mid-run", "already exists"), ("a/b", "not allowed")):
        try:
            T.promote_checkpoint(ws, rows[0]["id"], bad)
        except Exception as exc:  # noqa: BLE001
            assert message in str(exc)
        else:
            raise AssertionError(f"promote to {bad!r} should fail")
    # merged into a standalone checkpoint by the export job (run here: no worker)
    from workers.dispatch import submit

    out = ws.exports_dir / "merged"
    job = submit(ws, "export_adapter", {"adapters": [{"name": "mid-run", "scale": 1.5}], "out": str(out)}, wait=True)
    assert job["status"] == "succeeded", job
    from transformers import BarkModel

    merged = BarkModel.from_pretrained(out)
    base = load_bark("tiny")
    assert not merged.semantic.layers[0].attn.att_proj.weight.allclose(base.semantic.layers[0].attn.att_proj.weight)
    assert merged.coarse_acoustics.layers[0].attn.att_proj.weight.equal(base.coarse_acoustics.layers[0].attn.att_proj.weight)
    exported = json.loads((out / "bark_studio_export.json").read_text())
    assert exported["adapters"][0]["scale"] == 1.5 and exported["base_model"] == "tiny"

    T.delete_adapter(ws, "mid-run")
    assert T.list_adapters(ws) == [] and not (ws.adapters_dir / "mid-run").exists()


def test_cli_errors_are_one_line(ws):
    for args, message in ((("train", "--dataset", "nope"), "no dataset named 'nope'"),
                          (("checkpoints", "promote", "99", "--name", "x"), "no checkpoint 99")):
        proc = cli(*args, home=ws.root, check=False)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_a_resumed_job_lists_exactly_the_checkpoints_on_disk(ws):
    """A worker SIGKILLed between writing a checkpoint and recording its row leaves a folder the
    studio does not list (and a pruned folder whose row stays): the resumed job reconciles both."""
    import shutil

    from workers.handlers.train import reconcile_checkpoints

    job_id = jobs.create_job(ws.db, "train", {"dataset": "d"})
    run = T.run_dir(ws, job_id)
    cfg = small_config(stages=("semantic",), max_steps=3, save_every=1, eval_every=1, keep_last=5)
    recorded = []
    TrainingRecipe(cfg, load_bark("tiny"), token_items(), run, objectives={"semantic": NextToken()},
                   on_checkpoint=lambda info: recorded.append(info) or (
                       T.record_checkpoint(ws, job_id, info) if info["step"] != 3 else None)).train()
    assert [r["step"] for r in T.list_checkpoints(ws, job_id)] == [1, 2]  # step 3 "killed" before its row
    shutil.rmtree(run / "step-0000001")  # pruned on disk, row left behind
    (run / ".tmp-step-0000004").mkdir()  # a half-written one: not a checkpoint
    reconcile_checkpoints(ws, job_id, run)
    rows = T.list_checkpoints(ws, job_id)
    assert [r["step"] for r in rows] == [2, 3]
    assert rows[1]["path"] == ws.relative(run / "step-0000003")
    assert rows[1]["val_loss"] == recorded[-1]["val_loss"]
    reconcile_checkpoints(ws, job_id, run)  # idempotent
    assert [r["step"] for r in T.list_checkpoints(ws, job_id)] == [2, 3]
