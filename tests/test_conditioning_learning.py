"""Label conditioning learns: one student, one shared LoRA plus a vector per speaker, recovers
three different teachers from data labelled by speaker, and a numeric label recovers the two
teachers at its endpoints.

Teachers as in test_training_learning.py (the confident tiny base plus a seeded rank-2 change to
every attention projection and a full-rank change to every MLP matrix), one seed per speaker,
so the three differ from the base and from each other by several nats per token. Their own
samples, labelled with their speaker, make the data; the label-conditioned student trains on all
of it in process through the recipe, and is scored on held-out clips of each teacher:
- under the right label it closes most of the base-to-teacher NLL gap of each speaker;
- under another speaker's label it scores clearly worse against that teacher;
- along alice:1-t + bob:t the NLL against alice's teacher rises and against bob's falls;
- a numeric label whose endpoints are alice's (0) and bob's (1) data does the same along 0..1.
The proof trains the semantic and coarse stages, where the vector enters only the prompt (the
generated positions see it only through attention). The fine stage adds it at every position of
its window; that it enters identically in training and generation is proven in
test_conditioning.py, and that the fine stage learns it in test_conditioning_learning_fine.py
(apart: its data, 1024-frame windows with refilled padding, would double this test's cost)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import constants as C
from models import generation as G
from models import layouts as L
from models.training import LayoutObjective, TrainConfig, TrainingRecipe
from tests.test_training_learning import confident_base, make_teacher

STAGES = ("semantic", "coarse")
SPEAKERS = {"alice": 5, "bob": 6, "carol": 7}   # speaker -> teacher seed
N_TRAIN, N_HELD = 8, 3
STEPS = 30
MIN_CLOSED = 0.8
MIX = (0.0, 0.25, 0.5, 0.75, 1.0)
WRONG_MARGIN = 1.0  # nats per token, every stage: "clearly worse" under another speaker's label
NOISE = 0.05  # nats: a step along the mix may go the wrong way by this much (sampling noise of the held-out NLL)


def teacher_clips(teacher, n: int, seed: int, labels: dict) -> list[L.TokenItem]:
    """Clips sampled from the teacher at temperature 1 (semantic, then coarse, as generate runs
    them); fine codebooks 2..7 are zeros (the fine stage is not trained here)."""
    g = torch.Generator().manual_seed(seed)
    sampling = G.Sampling(semantic_temperature=1.0, coarse_temperature=1.0, fine_temperature=1.0, min_eos_p=None,
                          semantic_max_new_tokens=12)
    out = []
    for i in range(n):
        text = torch.randint(200, 900, (int(torch.randint(4, 10, (1,), generator=g)),), generator=g).tolist()
        gen = [torch.Generator().manual_seed(seed * 100 + i)]
        (semantic,) = G.semantic_tokens(teacher.semantic, [text], [None], sampling, gen)
        (coarse,) = G.coarse_tokens(teacher.coarse_acoustics, [semantic], None, sampling, gen)
        codes = np.zeros((C.N_FINE_CODEBOOKS, coarse.shape[1]), dtype=np.int64)
        codes[:2] = coarse.numpy()
        out.append(L.TokenItem(text_ids=text, semantic=semantic.numpy(), codes=codes, key=f"{seed}-{i}",
                               ended=len(semantic) < sampling.semantic_max_new_tokens, labels=dict(labels)))
    return out


@torch.no_grad()
def nll(bark, items, conditioning=None, label=None) -> dict[str, float]:
    """Token-weighted held-out NLL per stage; with `label`, every clip scored under that label."""
    from dataclasses import replace

    if label is not None:
        items = [replace(x, labels=label) for x in items]
    modules = {"semantic": bark.semantic, "coarse": bark.coarse_acoustics}
    out = {}
    for stage in STAGES:
        obj = LayoutObjective(stage, conditioning)
        examples = obj.examples(items)
        total = count = 0
        for i in range(0, len(examples), 8):
            loss, n = obj.loss(modules[stage], obj.collate(examples[i:i + 8]))
            total, count = total + float(loss) * n, count + n
        out[stage] = total / count
    return out


def train_student(train, held, condition, tmp_path):
    student = confident_base()
    cfg = TrainConfig(stages=STAGES, method="lora", r=8, alpha=16, dropout=0.0, targets="attention+mlp", lr=1e-2,
                      batch_size=4, grad_accum=1, max_steps=STEPS, warmup_ratio=0.1, eval_every=100,
                      save_every=100, patience=0, precision="fp32", seed=0, condition=condition,
                      voice_prompts="off")
    recipe = TrainingRecipe(cfg, student, train, tmp_path, val_items=held)
    recipe.train()
    return student.eval(), recipe.conditioning


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.manual_seed(0)
    teachers = {s: make_teacher(seed=seed) for s, seed in SPEAKERS.items()}
    for t in teachers.values():
        from models.attention import enable_sdpa

        enable_sdpa(t)
    clips = {s: teacher_clips(teachers[s], N_TRAIN + N_HELD, seed, {"speaker": s}) for s, seed in SPEAKERS.items()}
    train = {s: c[:N_TRAIN] for s, c in clips.items()}
    held = {s: c[N_TRAIN:] for s, c in clips.items()}
    base = confident_base()
    gaps = {s: (nll(base, held[s]), nll(teachers[s], held[s])) for s in SPEAKERS}
    student, cond = train_student([x for s in SPEAKERS for x in train[s]], [x for s in SPEAKERS for x in held[s]],
                                  ("speaker",), tmp_path_factory.mktemp("speakers"))
    return {"teachers": teachers, "train": train, "held": held, "gaps": gaps, "student": student, "cond": cond}


def closed(world, speaker, scores) -> dict[str, float]:
    base, teacher = world["gaps"][speaker]
    return {s: (base[s] - scores[s]) / (base[s] - teacher[s]) for s in STAGES}


def test_each_speaker_closes_most_of_the_gap_to_its_own_teacher(world):
    shares = {}
    for speaker in SPEAKERS:
        base, teacher = world["gaps"][speaker]
        assert all(base[s] - teacher[s] > 2.0 for s in STAGES), (speaker, base, teacher)  # a real gap
        shares[speaker] = closed(world, speaker, nll(world["student"], world["held"][speaker], world["cond"],
                                                      {"speaker": speaker}))
    print("share of each speaker's base-to-teacher gap closed:",
          {k: {s: round(v, 3) for s, v in d.items()} for k, d in shares.items()})
    assert all(v >= MIN_CLOSED for d in shares.values() for v in d.values()), shares


def test_a_wrong_label_scores_clearly_worse_against_the_teacher(world):
    margins = {}
    for speaker in SPEAKERS:
        right = nll(world["student"], world["held"][speaker], world["cond"], {"speaker": speaker})
        for other in SPEAKERS:
            if other != speaker:
                wrong = nll(world["student"], world["held"][speaker], world["cond"], {"speaker": other})
                margins[(speaker, other)] = {s: round(wrong[s] - right[s], 3) for s in STAGES}
    print("NLL against a speaker's teacher under another's label minus under its own:", margins)
    assert all(v > WRONG_MARGIN for m in margins.values() for v in m.values()), margins


def _monotone(values, rising: bool) -> bool:
    steps = np.diff(values) * (1 if rising else -1)
    return bool((steps > -NOISE).all()) and (values[-1] - values[0]) * (1 if rising else -1) > 1.0


def test_a_speaker_mix_moves_from_alice_to_bob(world):
    to_alice, to_bob = [], []
    for t in MIX:
        label = {"speaker": {k: w for k, w in (("alice", 1 - t), ("bob", t)) if w > 0}}
        a = nll(world["student"], world["held"]["alice"], world["cond"], label)
        b = nll(world["student"], world["held"]["bob"], world["cond"], label)
        to_alice.append(sum(a.values()))
        to_bob.append(sum(b.values()))
    print("alice:1-t + bob:t, NLL against alice's / bob's teacher:", np.round(to_alice, 3), np.round(to_bob, 3))
    assert _monotone(to_alice, rising=True) and _monotone(to_bob, rising=False), (to_alice, to_bob)


def test_a_numeric_label_interpolates_between_its_endpoint_teachers(world, tmp_path):
    def relabel(items, value):
        from dataclasses import replace

        return [replace(x, labels={"accent": value}) for x in items]

    train = relabel(world["train"]["alice"], 0.0) + relabel(world["train"]["bob"], 1.0)
    held = relabel(world["held"]["alice"], 0.0) + relabel(world["held"]["bob"], 1.0)
    student, cond = train_student(train, held, ("accent",), tmp_path)
    assert cond.specs[0].kind == "numeric" and (cond.specs[0].lo, cond.specs[0].hi) == (0.0, 1.0)
    to_alice, to_bob = [], []
    for t in MIX:
        to_alice.append(sum(nll(student, world["held"]["alice"], cond, {"accent": t}).values()))
        to_bob.append(sum(nll(student, world["held"]["bob"], cond, {"accent": t}).values()))
    print("accent 0..1, NLL against alice's / bob's teacher:", np.round(to_alice, 3), np.round(to_bob, 3))
    ends = {"alice": closed(world, "alice", nll(student, world["held"]["alice"], cond, {"accent": 0.0})),
            "bob": closed(world, "bob", nll(student, world["held"]["bob"], cond, {"accent": 1.0}))}
    print("share of the gap closed at the endpoints:", ends)
    assert _monotone(to_alice, rising=True) and _monotone(to_bob, rising=False), (to_alice, to_bob)
    assert all(v >= MIN_CLOSED for d in ends.values() for v in d.values()), ends
