"""Learning is real: LoRA recovers a teacher it has never seen, on every stage.

The teacher is the tiny base plus a random rank-2 change to every attention projection of all
three stages. Its own samples (text -> semantic -> coarse -> fine, through models.generation, as
Bark generates) make a token dataset; the recipe LoRA-trains the base on part of it through the
inference-identical layouts, and on held-out clips the NLL must move at least 80% of the way from
the base's to the teacher's, for each stage.

Random-init Bark has nearly uniform outputs (its final LayerNorm bounds the hidden state and the
heads are small), so base and teacher would differ by a hundredth of a nat. Both share a base whose
final LayerNorm gain is 20 (another random init, just with confident heads), which makes the
teacher's change visible in the outputs: the base-teacher gap is several nats per token."""
from __future__ import annotations

import pytest
import torch

from models import generation as G
from models import layouts as L
from models.attention import enable_sdpa
from models.presets import load_bark
from models.training import LayoutObjective, TrainConfig, TrainingRecipe

STAGES = ("semantic", "coarse", "fine")
GAIN = 20.0
N_TRAIN, N_HELD = 8, 3


def confident_base():
    bark = load_bark("tiny")
    for stage in (bark.semantic, bark.coarse_acoustics, bark.fine_acoustics):
        stage.layernorm_final.weight.data.mul_(GAIN)
    return bark.eval()


def make_teacher(seed=5, rank=2, scale=0.05):
    bark = confident_base()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for stage in (bark.semantic, bark.coarse_acoustics, bark.fine_acoustics):
            for layer in stage.layers:
                for linear in (layer.attn.att_proj, layer.attn.out_proj):
                    out_f, in_f = linear.weight.shape
                    b, a = torch.randn(out_f, rank, generator=g), torch.randn(rank, in_f, generator=g)
                    linear.weight.add_(scale * (b @ a) / rank ** 0.5)
    return bark


def teacher_items(teacher, n, seed=1):
    """Token clips sampled from the teacher at temperature 1, the way generate runs each stage."""
    enable_sdpa(teacher)
    g = torch.Generator().manual_seed(seed)
    texts = [torch.randint(200, 900, (int(torch.randint(4, 10, (1,), generator=g)),), generator=g).tolist()
             for _ in range(n)]
    sampling = G.Sampling(semantic_temperature=1.0, coarse_temperature=1.0, fine_temperature=1.0, min_eos_p=None,
                          semantic_max_new_tokens=12)
    gens = [torch.Generator().manual_seed(100 + i) for i in range(n)]
    semantic = G.semantic_tokens(teacher.semantic, texts, [None] * n, sampling, gens)
    coarse = G.coarse_tokens(teacher.coarse_acoustics, semantic, None, sampling, gens)
    return [L.TokenItem(text_ids=texts[i], semantic=semantic[i].numpy(),
                        codes=G.fine_codes(teacher.fine_acoustics, coarse[i], None, 1.0, gens[i]).numpy(), key=f"t{i}",
                        ended=len(semantic[i]) < sampling.semantic_max_new_tokens)  # a cut is no EOS
            for i in range(n)]


@torch.no_grad()
def held_out_nll(bark, items) -> dict[str, float]:
    modules = {"semantic": bark.semantic, "coarse": bark.coarse_acoustics, "fine": bark.fine_acoustics}
    out = {}
    for stage in STAGES:
        obj = LayoutObjective(stage)
        examples = obj.examples(items)
        total = count = 0
        for i in range(0, len(examples), 6):
            loss, n = obj.loss(modules[stage], obj.collate(examples[i:i + 6]))
            total, count = total + float(loss) * n, count + n
        out[stage] = total / count
    return out


@pytest.mark.slow
def test_lora_moves_held_out_nll_most_of_the_way_to_the_teacher(tmp_path):
    teacher = make_teacher()
    items = teacher_items(teacher, N_TRAIN + N_HELD)
    train, held = items[:N_TRAIN], items[N_TRAIN:]
    base_nll, teacher_nll = held_out_nll(confident_base(), held), held_out_nll(teacher, held)
    for stage in STAGES:
        assert base_nll[stage] - teacher_nll[stage] > 2.0, (stage, base_nll, teacher_nll)  # a real gap to close

    student = confident_base()
    cfg = TrainConfig(stages=STAGES, method="lora", r=4, alpha=8, dropout=0.0, targets="attention", lr=1e-2,
                      batch_size=2, grad_accum=1, max_steps=14, warmup_ratio=0.1, eval_every=100, save_every=100,
                      patience=0, precision="fp32", seed=0)
    result = TrainingRecipe(cfg, student, train, tmp_path, val_items=held).train()
    assert result.status == "completed" and result.step == 14
    trained_nll = held_out_nll(student.eval(), held)
    moved = {s: (base_nll[s] - trained_nll[s]) / (base_nll[s] - teacher_nll[s]) for s in STAGES}
    print("share of the base-to-teacher held-out NLL gap closed:", {s: round(v, 3) for s, v in moved.items()})
    assert all(moved[s] >= 0.8 for s in STAGES), {"moved": moved, "base": base_nll, "teacher": teacher_nll,
                                                    "trained": trained_nll}
