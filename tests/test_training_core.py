"""LoRA wiring, the training loop's exact resume, atomic checkpoints and adapters on disk.

These use a plain next-token objective on the tiny stages (the stage layouts are tested by the
model core and in test_training_learning.py); what is checked here is the machinery."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from models import adapters as A
from models import checkpoints as ckpt
from models.lora import LoraSettings, add_lora, enable_full_finetune, peft_models, trainable_parameters
from models.presets import load_bark, tiny_bark_config
from models.training import TrainConfig, TrainingRecipe

REPO = Path(__file__).resolve().parent.parent


class NextToken:
    """Next-token cross-entropy on plain id sequences; records the examples each training
    micro-batch used (validation passes run in eval mode and are not recorded)."""

    def __init__(self, seen: list | None = None):
        self.seen = seen if seen is not None else []

    def examples(self, items):
        return [(i, torch.tensor(x)) for i, x in items]

    def collate(self, exs):
        return {"ids": torch.stack([t for _, t in exs]), "idx": [i for i, _ in exs]}

    def loss(self, module, batch):
        if torch.is_grad_enabled():
            self.seen.append(batch["idx"])
        ids = batch["ids"]
        logits = module(input_ids=ids[:, :-1]).logits
        target = ids[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))
        return loss, target.numel()


def token_items(n=24, length=17, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(i, torch.randint(0, 60, (length,), generator=g).tolist()) for i in range(n)]


def small_config(**kw):
    base = dict(stages=("semantic", "coarse"), batch_size=2, grad_accum=2, lr=3e-3, max_steps=6, eval_every=3,
                save_every=3, precision="fp32", attention="eager", dropout=0.1, r=4, alpha=8, seed=7)
    return TrainConfig(**{**base, **kw})


def semantic_logits(bark, ids):
    with torch.no_grad():
        return bark.semantic(input_ids=ids).logits


def randomize_lora(bark, seed):
    """Give the adapters a non-zero update (fresh LoRA B is zero) without training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in trainable_parameters(bark).items():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def make_adapter(tmp_path, name, seed, stages=("semantic", "coarse"), settings=None):
    bark = load_bark("tiny")
    sig = A.base_signature(bark, stages)
    add_lora(bark, stages, settings or LoraSettings(r=4, alpha=8, dropout=0.0))
    randomize_lora(bark, seed)
    A.save_adapter(bark, tmp_path / name, method="lora", stages=stages, base_model="tiny", base_signature=sig,
                   dataset={"name": "d", "hash": "abc"}, hyperparameters={"r": 4})
    return bark.eval(), tmp_path / name


# --- LoRA wiring ------------------------------------------------------------------------------

def test_lora_targets_bark_module_names_and_freezes_the_rest():
    bark = load_bark("tiny")
    add_lora(bark, ["semantic", "fine"], LoraSettings(r=4, targets="attention"))
    names = list(trainable_parameters(bark))
    assert names and all("lora_" in n for n in names)
    assert {n.split(".")[0] for n in names} == {"semantic", "fine_acoustics"}
    assert all(".attn.att_proj." in n or ".attn.out_proj." in n for n in names)

    bark2 = load_bark("tiny")
    add_lora(bark2, ["coarse"], LoraSettings(r=4, targets="attention+mlp"))
    names2 = list(trainable_parameters(bark2))
    assert any(".mlp.in_proj." in n for n in names2) and any(".mlp.out_proj." in n for n in names2)
    assert all(n.startswith("coarse_acoustics.") for n in names2)

    # a training step: frozen weights get no gradient; optimizer state only for trained weights
    ids = torch.randint(0, 60, (2, 9))
    bark.semantic(input_ids=ids).logits.sum().backward()
    frozen = [p for n, p in bark.named_parameters() if not p.requires_grad]
    assert all(p.grad is None for p in frozen)
    params = list(trainable_parameters(bark).values())
    opt = torch.optim.AdamW(params, lr=1e-3)
    opt.step()
    assert 0 < len(opt.state) <= len(params)
    assert all(any(s is p for p in params) for s in opt.state)


def test_full_finetune_makes_every_weight_of_the_stage_trainable():
    bark = load_bark("tiny")
    enable_full_finetune(bark, ["coarse"])
    trainable = trainable_parameters(bark)
    assert set(trainable) == {f"coarse_acoustics.{n}" for n, _ in bark.coarse_acoustics.named_parameters()}


# --- the loop: exact resume, stop, atomic checkpoints --------------------------------------------

def run(tmp, cfg, items, stop_after=None, resume_from=None, seen=None):
    seen = seen if seen is not None else []
    losses = {}
    progress = []

    def on_progress(info):
        losses[info["step"]] = info["loss"]
        progress.append(info)

    recipe = TrainingRecipe(cfg, load_bark("tiny"), items, tmp,
                            objectives={"semantic": NextToken(seen), "coarse": NextToken(seen)},
                            resume_from=resume_from, on_progress=on_progress,
                            should_stop=(lambda: bool(progress) and progress[-1]["step"] >= stop_after)
                            if stop_after else None)
    return recipe.train(), losses, seen, progress


def test_stop_then_resume_replays_the_uninterrupted_run_exactly(tmp_path):
    items = token_items()
    cfg = small_config()
    full, full_losses, full_seen, progress = run(tmp_path / "a", cfg, items)
    assert full.status == "completed" and full.step == 6
    assert set(progress[0]) >= {"step", "loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "eta_s"}
    assert progress[2]["val_loss"] is not None and progress[0]["val_loss"] is None
    assert full_losses[6] < full_losses[1]

    stopped, first_losses, seen_b, _ = run(tmp_path / "b", cfg, items, stop_after=4)
    assert stopped.status == "stopped" and stopped.step == 4
    assert ckpt.read_state(tmp_path / "b")["step"] == 4  # the stop saved a checkpoint

    resumed, later_losses, seen_b, _ = run(tmp_path / "b", cfg, items, resume_from=tmp_path / "b", seen=seen_b)
    assert resumed.status == "completed" and resumed.step == 6
    assert sorted(later_losses) == [5, 6]  # same step count: continues at 5
    assert seen_b == full_seen  # the same examples in the same micro-batches, in the same order
    for step in range(1, 7):
        got = first_losses.get(step, later_losses.get(step))
        assert got == pytest.approx(full_losses[step], abs=1e-5), step
    assert [h["step"] for h in resumed.history] == list(range(1, 7))


def test_checkpoints_keep_best_and_last_k(tmp_path):
    cfg = small_config(max_steps=6, save_every=1, eval_every=1, keep_last=2, stages=("semantic",))
    recipe = TrainingRecipe(cfg, load_bark("tiny"), token_items(), tmp_path, objectives={"semantic": NextToken()})
    events = []
    recipe.on_checkpoint = events.append
    result = recipe.train()
    kept = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    best = ckpt.read_pointer(tmp_path, ckpt.BEST).name
    assert kept[-2:] == ["step-0000005", "step-0000006"] and best in kept and len(kept) <= 3
    assert result.best_checkpoint.endswith(best)
    vals = {e["step"]: e["val_loss"] for e in events}
    assert vals[int(best.split("-")[1])] == min(vals.values())
    assert any(e["deleted"] for e in events)
    state = ckpt.read_state(tmp_path)
    assert state["step"] == 6 and state["samplers"]["semantic"]["epoch"] >= 0
    manifest = A.load_manifest(Path(state["path"]) / "adapter")
    assert manifest["stages"] == ["semantic"] and manifest["metrics"]["step"] == 6


CRASH_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    sys.path.insert(0, {repo!r})
    from tests.test_training_core import NextToken, token_items, small_config
    from models.presets import load_bark
    from models.training import TrainingRecipe
    import models.adapters as A
    real = A.write_adapter
    calls = []
    def dying(bark, folder, manifest, *a, **k):
        calls.append(1)
        if len(calls) == 2:          # the second checkpoint: files half written, then the power goes
            (folder).mkdir(parents=True, exist_ok=True)
            (folder / "manifest.json").write_text('{{"half": ')
            os._exit(9)
        return real(bark, folder, manifest, *a, **k)
    A.write_adapter = dying
    cfg = small_config(stages=("semantic",), max_steps=4, save_every=2, eval_every=2)
    TrainingRecipe(cfg, load_bark("tiny"), token_items(), {run!r},
                   objectives={{"semantic": NextToken()}}).train()
""")


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT.format(repo=str(REPO), run=str(run_dir))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert [p.name for p in ckpt.list_checkpoints(run_dir)] == ["step-0000002"]
    assert not (run_dir / "step-0000004").exists()  # no partial file under a final name
    assert list(run_dir.glob(".tmp-step-0000004-*"))  # the half-written one sits under a temporary name
    state = ckpt.read_state(run_dir)  # checksums verified
    assert state["step"] == 2
    # resuming from it cleans the debris and finishes the run
    cfg = small_config(stages=("semantic",), max_steps=4, save_every=2, eval_every=2)
    result = TrainingRecipe(cfg, load_bark("tiny"), token_items(), run_dir, objectives={"semantic": NextToken()},
                            resume_from=run_dir).train()
    assert result.step == 4 and not list(run_dir.glob(".tmp-*"))
    assert ckpt.read_state(run_dir)["step"] == 4


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path):
    cfg = small_config(stages=("semantic",), max_steps=2, save_every=2, eval_every=2)
    TrainingRecipe(cfg, load_bark("tiny"), token_items(), tmp_path, objectives={"semantic": NextToken()}).train()
    with pytest.raises(ckpt.CheckpointError, match="trained on other data"):
        TrainingRecipe(cfg, load_bark("tiny"), token_items(n=30), tmp_path, objectives={"semantic": NextToken()},
                       resume_from=tmp_path).train()
    folder = ckpt.resolve(tmp_path)
    blob = bytearray((folder / "optimizer.pt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (folder / "optimizer.pt").write_bytes(bytes(blob))
    with pytest.raises(ckpt.CheckpointError, match=r"corrupt: optimizer.pt does not match its checksum"):
        TrainingRecipe(cfg, load_bark("tiny"), token_items(), tmp_path, objectives={"semantic": NextToken()},
                       resume_from=tmp_path).train()
    (folder / "state.json").write_text("{not json")
    with pytest.raises(ckpt.CheckpointError, match="state.json is missing or corrupt"):
        ckpt.read_state(folder)
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint"):
        ckpt.resolve(tmp_path / "nothing-here")


# --- adapters ----------------------------------------------------------------------------------

def test_adapter_loads_with_plain_peft_and_scales(tmp_path):
    from peft import PeftModel

    trained, path = make_adapter(tmp_path, "voice", seed=1)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["base_model"] == "tiny" and manifest["stages"] == ["semantic", "coarse"]
    assert manifest["dataset"] == {"name": "d", "hash": "abc"} and manifest["created"] and manifest["studio_version"]
    ids = torch.randint(0, 60, (1, 12))
    want = semantic_logits(trained, ids)

    # plain peft, outside the studio
    fresh = load_bark("tiny")
    plain = PeftModel.from_pretrained(fresh.semantic, str(path / "semantic")).eval()
    with torch.no_grad():
        assert torch.allclose(plain(input_ids=ids).logits, want, atol=1e-5)

    base = semantic_logits(load_bark("tiny"), ids)
    assert not torch.allclose(base, want, atol=1e-3)
    bark = load_bark("tiny")
    A.apply_adapters(bark, [(path, 0.0)])
    assert torch.equal(semantic_logits(bark, ids), base)  # scale 0 is the base model, exactly
    A.apply_adapters(bark, [(path, 1.0)])
    assert torch.allclose(semantic_logits(bark, ids), want, atol=1e-5)
    A.remove_adapters(bark)
    assert torch.equal(semantic_logits(bark, ids), base)


def test_scale_and_mix_act_on_the_weights_linearly(tmp_path):
    _, a = make_adapter(tmp_path, "a", seed=1)
    _, b = make_adapter(tmp_path, "b", seed=2)

    def merged_att_proj(specs, name):
        bark = load_bark("tiny")
        A.merge_and_export(bark, specs, tmp_path / name)
        from transformers import BarkModel

        back = BarkModel.from_pretrained(tmp_path / name)
        return back.semantic.layers[0].attn.att_proj.weight.detach(), back

    w0 = load_bark("tiny").semantic.layers[0].attn.att_proj.weight.detach()
    wa, _ = merged_att_proj([(a, 1.0)], "xa")
    wa2, _ = merged_att_proj([(a, 2.5)], "xa2")  # amplification
    wb, _ = merged_att_proj([(b, 1.0)], "xb")
    wmix, exported = merged_att_proj([(a, 0.3), (b, 0.7)], "xmix")
    assert not torch.allclose(wa, w0)
    assert torch.allclose(wa2 - w0, 2.5 * (wa - w0), atol=1e-5)
    assert torch.allclose(wmix - w0, 0.3 * (wa - w0) + 0.7 * (wb - w0), atol=1e-5)
    export_info = json.loads((tmp_path / "xmix" / "bark_studio_export.json").read_text())
    assert [x["scale"] for x in export_info["adapters"]] == [0.3, 0.7]

    # the mix applied live equals the merged export; a weight-0 partner changes nothing
    ids = torch.randint(0, 60, (1, 10))
    live = A.apply_adapters(load_bark("tiny"), [(a, 0.3), (b, 0.7)])
    assert torch.allclose(semantic_logits(live, ids), semantic_logits(exported, ids), atol=1e-4)
    only_a = A.apply_adapters(load_bark("tiny"), [(a, 1.0), (b, 0.0)])
    alone = A.apply_adapters(load_bark("tiny"), [(a, 1.0)])
    assert torch.allclose(semantic_logits(only_a, ids), semantic_logits(alone, ids), atol=1e-6)
    assert set(peft_models(only_a)) == {"semantic", "coarse"}


def test_adapter_for_another_base_or_corrupt_is_refused(tmp_path):
    from transformers import BarkModel

    _, path = make_adapter(tmp_path, "voice", seed=1)
    with torch.random.fork_rng():
        torch.manual_seed(99)
        other = BarkModel(tiny_bark_config())
    with pytest.raises(A.AdapterError, match=r"trained on base model 'tiny'.*different base"):
        A.apply_adapters(other, [(path, 1.0)], base_model="suno/bark-small")

    broken = tmp_path / "broken"
    A.copy_adapter(path, broken)
    weights = broken / "semantic" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(A.AdapterError, match=r"corrupt: semantic/adapter_model.safetensors"):
        A.apply_adapters(load_bark("tiny"), [(broken, 1.0)])
    (broken / "manifest.json").write_text("{")
    with pytest.raises(A.AdapterError, match="manifest.json' is corrupt"):
        A.load_manifest(broken)
    os.remove(broken / "manifest.json")
    with pytest.raises(A.AdapterError, match="not an adapter folder"):
        A.apply_adapters(load_bark("tiny"), [(broken, 1.0)])
