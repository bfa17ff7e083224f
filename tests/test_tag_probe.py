"""The tag probe (issue 14, custom tags): the takes it plans, where it places a tag's window, the
table it makes, what it refuses, the panel's audio lookup, and the proof that it sees what an
adapter learned for a tag (a real job through the CLI, on a LoRA trained from a teacher's data)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from studio.datasets import store
from studio.datasets.tags import update_tags
from studio.errors import UserError
from studio.experiments import tag_probe as TP


def test_carriers_put_the_tag_in_its_slot_and_the_control_leaves_it_out():
    assert TP.carrier_text("{tag} Well, here we are again.", "thunder") == ("[thunder] Well, here we are again.", 0)
    assert TP.carrier_text("{tag} Well, here we are again.", None) == ("Well, here we are again.", 0)
    text, anchor = TP.carrier_text("We waited. {tag} Then it stopped.", "rain intensifies")
    assert text == "We waited. [rain intensifies] Then it stopped." and text[anchor:].startswith("[rain")
    control, c_anchor = TP.carrier_text("We waited. {tag} Then it stopped.", None)
    assert control == "We waited. Then it stopped." and control[c_anchor:] == "Then it stopped."
    with pytest.raises(UserError, match="exactly once"):
        TP.carrier_text("No slot here.", "thunder")

    takes = TP.plan(["thunder", "rain"], [0, 1])
    assert len(takes) == 2 * len(TP.CARRIERS) * 2 * 2 * 2  # tag x carrier x seed x (tag, control) x (base, adapter)
    assert len({t.key for t in takes}) == len(takes)
    # base and adapter, tag and control share the seeds: the only differences are the adapter and the tag
    pairs = {(t.tag, t.carrier, t.seed) for t in takes}
    assert all({(t.arm, t.with_tag) for t in takes if (t.tag, t.carrier, t.seed) == p} ==
               {(a, w) for a in TP.ARMS for w in (True, False)} for p in pairs)


def test_the_window_starts_at_the_tags_text_position_and_short_takes_are_measured_whole():
    text, anchor = TP.carrier_text("We waited. {tag} Then it stopped.", "thunder")
    start, end, how = TP.window(text, anchor, 200)
    assert how == TP.PROPORTIONAL
    assert start == round(200 * anchor / len(text)) and end - start == round(TP.WINDOW_S * TP.SEMANTIC_RATE_HZ)
    assert TP.window("[thunder] Well.", 0, 30) == (0, 30, TP.PROPORTIONAL)  # clipped to the take
    late = TP.window("Well, here we are again at last [x]", 31, 60)  # a tag near the end: the last second
    assert late[1] == 60 and late[1] - late[0] == 50 and late[2] == TP.PROPORTIONAL
    assert TP.window("[thunder] Well.", 0, 12) == (0, 12, TP.WHOLE_TAKE)  # 0.24 s: under the loudness minimum
    assert TP.token_repetition([5, 5, 5, 7]) == pytest.approx(2 / 3) and TP.token_repetition([5]) is None


def test_the_table_gives_the_tags_effect_under_base_and_adapter():
    def rec(arm, with_tag, loud, rep=None):
        return {"tag": "thunder", "arm": arm, "with_tag": with_tag, "measures": {"loudness_lufs": loud,
                                                                                  "token_repetition": rep}}
    rows = TP.table([rec("base", False, -30), rec("base", True, -29), rec("adapter", False, -31),
                     rec("adapter", True, -11), rec("adapter", True, -13, 0.5),
                     {**rec("adapter", True, 99), "error": "failed"}])
    loud = next(r for r in rows if r["measure"] == "loudness_lufs")
    assert loud["adapter_tag"] == -12 and loud["tag_effect_adapter"] == 19 and loud["tag_effect_base"] == 1
    rep = next(r for r in rows if r["measure"] == "token_repetition")
    assert rep["adapter_tag"] == 0.5 and rep["tag_effect_adapter"] is None  # no control value to compare with
    assert {r["measure"] for r in rows} == {"loudness_lufs", "token_repetition"}  # measures never measured: no row
    text = TP.table_text({"adapter": "foley-lora", "dataset": "foley", "takes": [{}] * 6, "table": rows,
                          "alignments": [TP.PROPORTIONAL]})
    assert "adapter foley-lora (dataset foley): 6 takes" in text and "tag_effect_adapter" in text
    assert any(line.split()[:2] == ["thunder", "loudness_lufs"] and "19" in line.split() for line in text.splitlines())


def _adapter_row(ws, name="foley-lora", dataset="foley"):
    from studio import training

    folder = ws.adapters_dir / name
    folder.mkdir(parents=True)
    return training.register_adapter(ws, name, folder, {"base_model": "tiny", "stages": ["semantic"],
                                                        "dataset": {"name": dataset}})


def test_the_request_names_what_cannot_be_probed(ws):
    store.create_dataset(ws.db, "foley")
    _adapter_row(ws)
    with pytest.raises(UserError, match="declares no tags.*dataset tags foley --add"):
        TP.probe_request(ws, "foley-lora")
    update_tags(ws.db, "foley", add=["thunder", "rain"])
    with pytest.raises(UserError, match=r"does not declare \[wind\] \(declared: \[thunder\], \[rain\]\)"):
        TP.probe_request(ws, "foley-lora", ["[wind]", "thunder"])
    with pytest.raises(UserError, match="seeds must be"):
        TP.probe_request(ws, "foley-lora", seeds=0)
    with pytest.raises(UserError, match="no adapter named 'nope'"):
        TP.probe_request(ws, "nope")
    req = TP.probe_request(ws, "foley-lora", ["[thunder]"], seeds=3)
    assert req["tags"] == ["thunder"] and req["seeds"] == [0, 1, 2] and req["carriers"] == list(TP.CARRIERS)
    assert TP.probe_request(ws, "foley-lora")["tags"] == ["thunder", "rain"]  # default: every declared tag


def test_the_panel_plays_only_takes_inside_the_generated_folder(ws, tmp_path):
    import gradio as gr
    import soundfile as sf

    from studio.ui import tag_probe_view as V

    inside = ws.generated_dir / "tag_probes" / "job-1" / "t.wav"
    inside.parent.mkdir(parents=True)
    sf.write(inside, np.zeros(2400, np.float32), 24000)
    outside = ws.root / "studio.wav"  # in the workspace, but not where takes are served from
    sf.write(outside, np.zeros(2400, np.float32), 24000)
    result = {"takes": [{"key": "in", "audio_path": ws.relative(inside)}, {"key": "out", "audio_path": "studio.wav"},
                        {"key": "escape", "audio_path": "../../etc/passwd"}]}
    assert V.take_audio(ws, result, "in") == str(inside)
    assert V.take_audio(ws, result, "out") is None
    assert V.take_audio(ws, result, "escape") is None
    with gr.Blocks():
        parts = V.build(ws)
    assert {"table", "takes", "audio", "start"} <= set(parts)


# --- the proof ------------------------------------------------------------------------------------
# The teacher: in its data a declared tag always comes before a held sound, one semantic token
# repeated for half a second (what a drone or a sustained note looks like in Bark's tokens); the
# same words without the tag are varied tokens. Random-init Bark's heads are too weak to be sure
# of any token, so the base is tiny with a final LayerNorm gain of 20 (as in
# test_training_learning.py), saved as a model folder the job loads like any other.
TAG, HELD_TOKEN, HELD = "thunder", 4242, 25
WORDS = "the a and of to in it is was that we they here there now then good day night time well oh okay home".split()
GAIN = 20.0
# The teacher's speech, the same varied tokens in every clip: the tag is then the only thing that tells
# a clip that opens with the held sound from one that opens with speech.
SPEECH = (np.arange(50) * 397 + 101) % 10000  # distinct tokens, longer than a probe take (40)
# Whether a LoRA picks the tag up from 24 clips, rather than a tag-blind even bet between the held
# sound and speech, depends on its initialisation at this budget. Measured on four unseen carriers
# (the held sound's first-token NLL without the tag minus with it): seed 1 learns the tag by 7.2 to
# 8.2 nats, seed 0 by 0.1 to 5.0, seed 2 by 0.3 to 0.4. The proof is that the probe sees a learnt
# tag's effect, and only with the tag; so the student is the seed that learns it.
STUDENT_STEPS, STUDENT_LR, STUDENT_SEED = 100, 1e-2, 1


def teacher_items(tokenizer, n=24, seed=0):
    from models import layouts as L
    from models.text import encode_text

    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        words = " ".join(rng.choice(WORDS, rng.integers(3, 7))) + "."
        tagged = i % 2 == 0
        speech = SPEECH
        semantic = np.concatenate([np.full(HELD, HELD_TOKEN), speech]) if tagged else speech
        frames = round(len(semantic) * 75 / 49.9)
        items.append(L.TokenItem(text_ids=encode_text(tokenizer, f"[{TAG}] {words}" if tagged else words),
                                 semantic=semantic, codes=rng.integers(0, 1024, (8, frames)), history=None,
                                 key=f"clip{i}", ended=True))
    return items


def confident_base_folder(folder):
    from models.adapters import save_bark
    from models.presets import load_bark, load_text_tokenizer

    bark = load_bark("tiny")
    for stage in (bark.semantic, bark.coarse_acoustics, bark.fine_acoustics):
        stage.layernorm_final.weight.data.mul_(GAIN)
    save_bark(bark, folder)
    load_text_tokenizer("tiny").save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_the_probe_shows_what_the_adapter_learned_for_the_tag_and_only_with_the_tag(ws, tmp_path):
    from models import adapters as A
    from models.presets import load_bark, load_text_tokenizer
    from models.training import TrainConfig, TrainingRecipe
    from studio import training
    from tests.conftest import cli

    base = str(confident_base_folder(tmp_path / "confident-tiny"))
    student = load_bark(base)
    items = teacher_items(load_text_tokenizer(base))
    cfg = TrainConfig(stages=("semantic",), method="lora", r=8, alpha=16, dropout=0.0, targets="attention+mlp",
                      lr=STUDENT_LR, batch_size=8, grad_accum=1, max_steps=STUDENT_STEPS, warmup_ratio=0.1,
                      eval_every=1000, save_every=1000, patience=0, precision="fp32", seed=STUDENT_SEED)
    recipe = TrainingRecipe(cfg, student, items, tmp_path / "run", val_items=items[:2], base_model=base)
    assert recipe.train().status == "completed"
    folder = ws.adapters_dir / "foley-lora"
    manifest = A.save_adapter(student, folder, method="lora", stages=("semantic",), base_model=base,
                              base_signature=recipe.base_signature, dataset={"name": "foley"})
    store.create_dataset(ws.db, "foley")
    update_tags(ws.db, "foley", add=[TAG])
    training.register_adapter(ws, "foley-lora", folder, manifest)

    out = cli("experiments", "tag-probe", "--adapter", "foley-lora", "--carrier", "{tag} Well, here we are again.",
              "--seeds", "3", "--max-new-semantic", "40", "--wait", "--json", home=ws.root)
    job = json.loads(out.stdout)
    assert job["status"] == "succeeded", job.get("error")
    result = job["result"]
    assert result["alignments"] == [TP.PROPORTIONAL] and len(result["takes"]) == 12
    for take in result["takes"]:  # every take is a playable file where the studio serves generated audio
        assert (ws.root / take["audio_path"]).is_file() and take["audio_path"].startswith("generated/tag_probes/")
    assert {"loudness_lufs", "nonspeech_share", "music_likeness"} <= {r["measure"] for r in result["table"]}
    rep = next(r for r in result["table"] if r["tag"] == TAG and r["measure"] == "token_repetition")
    print("token repetition in the tag's window:", {k: round(v, 3) for k, v in rep.items() if isinstance(v, float)})
    # with the adapter the tag brings the held sound (measured: 0.62 with the tag, 0.0 without) ...
    assert rep["tag_effect_adapter"] > 0.4, rep
    assert abs(rep["tag_effect_base"]) < 0.15, rep  # ... and the base has no such tag (measured: 0.0)
