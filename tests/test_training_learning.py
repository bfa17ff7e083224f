"""Learning is real: LoRA recovers a teacher it has never seen, on every stage, padded and
multi-window fine included.

The teacher is the tiny base plus two changes to all three stages: a random rank-2 change to
every attention projection, and a random full-rank change to every MLP matrix (in_proj,
out_proj), which no LoRA can match exactly. Its own samples (text -> semantic -> coarse -> fine,
through models.fast_generation, as the studio generates: each stage sampled at temperature 1 by
the teacher's own model, fine over the real window schedule) make a token dataset in which:
- most clips are conditioned on a 12 s voice prompt (as `voice create` makes them: 512 frames of
  fine history), and the held-out clips use a prompt and texts that training never saw;
- short clips (a semantic cap of 12 tokens, EOS where the teacher chose it) put the fine stage
  in one window padded to 1024 frames, filled as generation fills it;
- long clips (380 semantic tokens, the cap raised and EOS forbidden, so no EOS target) give 571
  frames, which after the prompt's 512 frames of history take two fine windows: the second one
  starts 59 frames in, re-predicts the overlap and adds 59 new frames per codebook. (Without a
  prompt a second window needs over 1024 frames, ~680 semantic tokens: twice the generation time.)
The recipe LoRA-trains the base on part of it through the inference-identical layouts, and on the
held-out clips the NLL must move most of the way from the base's to the teacher's, per stage
(fine: separately on padded windows and on the two windows of a long clip).

Random-init Bark has nearly uniform outputs (its final LayerNorm bounds the hidden state and the
heads are small), so base and teacher would differ by a hundredth of a nat. Both share a base whose
final LayerNorm gain is 20 (another random init, just with confident heads), which makes the
teacher's change visible in the outputs: the base-teacher gap is several nats per token.

Per-stage early stopping catching one stage that overfits while another improves:
test_training_stages.py (test_each_stage_has_its_own_epochs_schedule_early_stop_and_best)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import constants as C
from models import fast_generation as FG
from models import layouts as L
from models.presets import load_bark
from models.rng import RowRandom
from models.training import LayoutObjective, TrainConfig, TrainingRecipe
from models.voice_prompt import from_tokens

GAIN = 20.0
N_TRAIN, N_HELD = 8, 3            # short clips
N_LONG_TRAIN = 2                  # long clips (plus one held out)
LONG_SEMANTIC = 380               # -> 571 frames: two fine windows after 512 frames of prompt history
# Fine is trained apart, with its own lr and steps. Why the fine stage closed only 0.752 of the gap
# before (20 steps of 2 at lr 1e-2, padded windows only), measured on this teacher (CPU fp32, r=8):
# - passes, not rank: 20 steps of 2 are under one pass over its 48 examples (6 per clip: one per
#   codebook 2..7), while semantic and coarse got 5; the student's NLL on its own training clips
#   was still far from the teacher's;
# - lr: 1e-2 oscillates on the fine stage and 2e-2 ends worse than the base; 5e-3 is steadier
#   (60 steps, short clips only: 0.87; same steps at 1e-2: 0.78);
# - the full-rank MLP change is not the limit: long clips alone (24 examples), 60 steps at 1e-2,
#   reach 0.86 held out and 1.07 on the training clips (over-fitting, not under-reaching).
STEPS = {"semantic+coarse": 20, "fine": 60}
LR = {"semantic+coarse": 1e-2, "fine": 5e-3}
# Share of the base-to-teacher gap each stage must close. Measured (seeds below, CPU fp32): semantic
# 0.95, coarse 0.96, fine padded 0.88, fine two windows 0.73, of which the second window 0.60.
# The long clip's windows stay under 0.8 within this test's time, for want of passes: 60 steps of 2
# are 1.7 passes over the fine stage's 72 examples. With 110 steps the same run reaches padded 0.91,
# two windows 0.83, second window 0.71 (trained on long clips alone, 40 steps reach 0.80-0.85); the
# second window's 59 new frames per codebook are the fewest targets of all. 50 more steps would
# add ~40% to this test's time; the thresholds are the 60-step values less a margin.
MIN_CLOSED = {"semantic": 0.8, "coarse": 0.8, "fine (padded)": 0.8, "fine (two windows)": 0.65,
              "fine (second window)": 0.5}


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
    return FG.prepare_for_inference(bark, "fp32")


def voice(seed, seconds=0.8):
    """A voice prompt of random codes: 0.8 s (short clips), or 12 s (the longest `voice create`
    makes: 600 semantic tokens, 900 frames, of which fine keeps 512 as history)."""
    rng = np.random.default_rng(seed)
    n_semantic, n_frames = round(seconds * 50), round(seconds * C.CODEC_FRAME_RATE)
    return from_tokens(rng.integers(0, C.SEMANTIC_VOCAB_SIZE, n_semantic),
                       rng.integers(0, C.CODEBOOK_SIZE, (8, n_frames)))


def teacher_items(teacher, specs, seed, max_semantic, forbid_eos=False, tag="t"):
    """Token clips sampled from the teacher at temperature 1, in one batch, each row with its own
    random stream. specs: a voice prompt or None per clip (the teacher generates with it; the clip
    carries it). forbid_eos: every clip runs to max_semantic (and carries no EOS target)."""
    g = torch.Generator().manual_seed(seed)
    texts = [torch.randint(200, 900, (int(torch.randint(4, 10, (1,), generator=g)),), generator=g).tolist()
             for _ in specs]
    prefixes = [L.semantic_prefix(t, p.semantic if p is not None else None) for t, p in zip(texts, specs)]
    rows = range(len(specs))
    semantic = FG.semantic_tokens(teacher.semantic, torch.stack([p[0] for p in prefixes]),
                                  torch.stack([p[1] for p in prefixes]), max_new_tokens=max_semantic,
                                  min_new_tokens=max_semantic if forbid_eos else 0, temperature=1.0,
                                  min_eos_p=None, generators=[RowRandom(seed * 1000 + i) for i in rows])
    coarse = FG.coarse_tokens(teacher.coarse_acoustics, semantic, specs, temperature=1.0,
                              generators=[RowRandom(seed * 1000 + 100 + i) for i in rows])
    codes = FG.fine_codes(teacher.fine_acoustics, coarse, specs, temperature=1.0,
                          generators=[RowRandom(seed * 1000 + 200 + i) for i in rows])
    return [L.TokenItem(text_ids=t, semantic=s.numpy(), codes=c.numpy(), history=p, key=f"{tag}{i}",
                        ended=len(s) < max_semantic)  # cut at the cap: the teacher never chose EOS there
            for i, (t, s, c, p) in enumerate(zip(texts, semantic, codes, specs))]


def stage_module(bark, stage):
    return {"semantic": bark.semantic, "coarse": bark.coarse_acoustics, "fine": bark.fine_acoustics}[stage]


@torch.no_grad()
def mean_nll(bark, stage, examples) -> float:
    obj = LayoutObjective(stage)
    total = count = 0
    for i in range(0, len(examples), 6):
        loss, n = obj.loss(stage_module(bark, stage), obj.collate(examples[i:i + 6]))
        total, count = total + float(loss) * n, count + n
    return total / count


def held_out_sets(short, long) -> dict[str, tuple[str, list]]:
    """name -> (stage, held-out examples). A long clip's fine examples come window by window, six
    codebooks each; the second window's are its last six."""
    fine_long = LayoutObjective("fine").examples(long)
    assert len(fine_long) == 12 and all(len(L.fine_windows(x.codes.shape[1], 512)[1]) == 2 for x in long)
    return {"semantic": ("semantic", LayoutObjective("semantic").examples(short)),
            "coarse": ("coarse", LayoutObjective("coarse").examples(short)),
            "fine (padded)": ("fine", LayoutObjective("fine").examples(short)),
            "fine (two windows)": ("fine", fine_long),
            "fine (second window)": ("fine", fine_long[6:])}


def train(student, stages, items, tmp_path, steps, lr):
    cfg = TrainConfig(stages=stages, method="lora", r=8, alpha=16, dropout=0.0, targets="attention+mlp", lr=lr,
                      batch_size=2, grad_accum=1, max_steps=steps, warmup_ratio=0.1, eval_every=1000,
                      save_every=1000, patience=0, precision="fp32", seed=0)
    result = TrainingRecipe(cfg, student, items, tmp_path / "+".join(stages), val_items=[]).train()
    assert result.status == "completed" and result.step == steps
    return student.eval()


@pytest.mark.slow
def test_lora_moves_held_out_nll_most_of_the_way_to_the_teacher(tmp_path):
    teacher = make_teacher()
    seen, unseen = voice(1), voice(2)
    short = teacher_items(teacher, [seen if i % 4 else None for i in range(N_TRAIN)]   # 6 with a prompt, 2 without
                          + [unseen, unseen, None], seed=1, max_semantic=12)            # held: a prompt never seen
    long_seen, long_unseen = voice(1, seconds=12.0), voice(2, seconds=12.0)
    long = teacher_items(teacher, [long_seen] * N_LONG_TRAIN + [long_unseen], seed=3, max_semantic=LONG_SEMANTIC,
                         forbid_eos=True, tag="long")
    held = held_out_sets(short[N_TRAIN:], long[N_LONG_TRAIN:])

    base = confident_base()
    base_nll = {name: mean_nll(base, stage, exs) for name, (stage, exs) in held.items()}
    teacher_nll = {name: mean_nll(teacher, stage, exs) for name, (stage, exs) in held.items()}
    for name in held:
        assert base_nll[name] - teacher_nll[name] > 1.5, (name, base_nll, teacher_nll)  # a real gap to close

    # semantic and coarse on the short clips, fine on short and long ones (its own lr and steps)
    early = train(confident_base(), ("semantic", "coarse"), short[:N_TRAIN], tmp_path, STEPS["semantic+coarse"],
                  LR["semantic+coarse"])
    fine = train(confident_base(), ("fine",), short[:N_TRAIN] + long[:N_LONG_TRAIN], tmp_path, STEPS["fine"],
                 LR["fine"])
    trained_nll = {name: mean_nll(fine if stage == "fine" else early, stage, exs) for name, (stage, exs) in held.items()}
    moved = {n: (base_nll[n] - trained_nll[n]) / (base_nll[n] - teacher_nll[n]) for n in held}
    print("share of the base-to-teacher held-out NLL gap closed:", {n: round(v, 3) for n, v in moved.items()})
    print("NLL base / teacher / trained:", {n: (round(base_nll[n], 2), round(teacher_nll[n], 2), round(trained_nll[n], 2))
                                            for n in held})
    assert all(moved[n] >= MIN_CLOSED[n] for n in held), {"moved": moved, "base": base_nll,
                                                         "teacher": teacher_nll, "trained": trained_nll}
