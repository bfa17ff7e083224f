"""Learning is real: LoRA recovers a teacher it has never seen, on every stage.

The teacher is the tiny base plus two changes to all three stages: a random rank-2 change to
every attention projection, and a random full-rank change to every MLP matrix (in_proj,
out_proj), which no LoRA can match exactly. Its own samples (text -> semantic -> coarse -> fine,
through models.generation, as Bark generates) make a token dataset in which:
- most clips are conditioned on a voice prompt (the teacher generated them with it, the student
  trains and is scored with it in its inputs), and the held-out clips use prompts and texts that
  training never saw;
- every clip is short, so the fine stage trains on padded windows, filled as generation fills
  them. Multi-window fine is not in this proof: the teacher rarely runs past the ~340 semantic
  tokens it takes, and long clips whose coarse codes were extended with random frames gave a fine
  teacher the student could not follow (3-8% of the gap, measured); the multi-window layout is
  proven against transformers logit for logit in test_models_parity.py instead.
The recipe LoRA-trains the base on part of it through the inference-identical layouts, and on the
held-out clips the NLL must move most of the way from the base's to the teacher's, per stage.

Random-init Bark has nearly uniform outputs (its final LayerNorm bounds the hidden state and the
heads are small), so base and teacher would differ by a hundredth of a nat. Both share a base whose
final LayerNorm gain is 20 (another random init, just with confident heads), which makes the
teacher's change visible in the outputs: the base-teacher gap is several nats per token."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import constants as C
from models import generation as G
from models import layouts as L
from models.attention import enable_sdpa
from models.presets import load_bark
from models.training import LayoutObjective, TrainConfig, TrainingRecipe
from models.voice_prompt import from_tokens

STAGES = ("semantic", "coarse", "fine")
GAIN = 20.0
N_TRAIN, N_HELD = 8, 3
STEPS = 20
# Share of the base-to-teacher gap each stage must close. Measured (seeds below, CPU fp32, r=8,
# 20 steps): semantic 0.93, coarse 0.965, fine 0.752. The fine stage stops short of 0.8 (with the
# attention-only teacher it reached 0.89): the full-rank MLP change is not representable at rank 8.
# 0.7 is the measured value less a margin. (Per-stage early stopping catching one stage that
# overfits while another improves: test_training_stages.py.)
MIN_CLOSED = {"semantic": 0.8, "coarse": 0.8, "fine": 0.7}


def confident_base():
    bark = load_bark("tiny")
    for stage in (bark.semantic, bark.coarse_acoustics, bark.fine_acoustics):
        stage.layernorm_final.weight.data.mul_(GAIN)
    return bark.eval()


def make_teacher(seed=5, rank=2, scale=0.05, mlp_scale=0.02):
    bark = confident_base()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for stage in (bark.semantic, bark.coarse_acoustics, bark.fine_acoustics):
            for layer in stage.layers:
                for linear in (layer.attn.att_proj, layer.attn.out_proj):
                    out_f, in_f = linear.weight.shape
                    b, a = torch.randn(out_f, rank, generator=g), torch.randn(rank, in_f, generator=g)
                    linear.weight.add_(scale * (b @ a) / rank ** 0.5)
                for linear in (layer.mlp.in_proj, layer.mlp.out_proj):  # full rank
                    linear.weight.add_(mlp_scale * torch.randn(linear.weight.shape, generator=g))
    return bark


def voice(seed):
    rng = np.random.default_rng(seed)
    return from_tokens(rng.integers(0, C.SEMANTIC_VOCAB_SIZE, 40), rng.integers(0, C.CODEBOOK_SIZE, (8, 60)))


def teacher_items(teacher, specs, seed=1):
    """Token clips sampled from the teacher at temperature 1, the way generate runs each stage.
    specs: a voice prompt or None per clip (the teacher generates with it; the clip carries it)."""
    enable_sdpa(teacher)
    g = torch.Generator().manual_seed(seed)
    sampling = G.Sampling(semantic_temperature=1.0, coarse_temperature=1.0, fine_temperature=1.0, min_eos_p=None,
                          semantic_max_new_tokens=12)
    items = []
    for i, prompt in enumerate(specs):
        text = torch.randint(200, 900, (int(torch.randint(4, 10, (1,), generator=g)),), generator=g).tolist()
        gen = [torch.Generator().manual_seed(100 + i)]
        hist = prompt.semantic if prompt is not None else None
        (semantic,) = G.semantic_tokens(teacher.semantic, [text], [hist], sampling, gen)
        (coarse,) = G.coarse_tokens(teacher.coarse_acoustics, [semantic], prompt, sampling, gen)
        codes = G.fine_codes(teacher.fine_acoustics, coarse, prompt, 1.0, gen[0])
        items.append(L.TokenItem(text_ids=text, semantic=semantic.numpy(), codes=codes.numpy(), history=prompt,
                                 key=f"t{i}", ended=len(semantic) < sampling.semantic_max_new_tokens))  # cut: no EOS
    return items


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
    seen, unseen = voice(1), voice(2)
    train_specs = [seen if i % 4 else None for i in range(N_TRAIN)]             # 6 with a prompt, 2 without
    held_specs = [unseen, unseen, None]                                        # a prompt training never saw
    items = teacher_items(teacher, train_specs + held_specs)
    train, held = items[:N_TRAIN], items[N_TRAIN:]

    base_nll, teacher_nll = held_out_nll(confident_base(), held), held_out_nll(teacher, held)
    for stage in STAGES:
        assert base_nll[stage] - teacher_nll[stage] > 2.0, (stage, base_nll, teacher_nll)  # a real gap to close

    student = confident_base()
    cfg = TrainConfig(stages=STAGES, method="lora", r=8, alpha=16, dropout=0.0,
                      targets="attention+mlp", lr=1e-2, batch_size=2, grad_accum=1, max_steps=STEPS,
                      warmup_ratio=0.1, eval_every=100, save_every=100, patience=0, precision="fp32", seed=0)
    result = TrainingRecipe(cfg, student, train, tmp_path, val_items=held).train()
    assert result.status == "completed" and result.step == STEPS
    trained_nll = held_out_nll(student.eval(), held)
    moved = {s: (base_nll[s] - trained_nll[s]) / (base_nll[s] - teacher_nll[s]) for s in STAGES}
    print("share of the base-to-teacher held-out NLL gap closed:", {s: round(v, 3) for s, v in moved.items()})
    assert all(moved[s] >= MIN_CLOSED[s] for s in STAGES), {"moved": moved, "base": base_nll,
                                                             "teacher": teacher_nll, "trained": trained_nll}
