"""Label conditioning in experiments, sweeps and listening sessions: an arm's and a generated
system's `speaker=`/`label=` reach generation, a `speaker_mix` sweep and a numeric `label:accent`
sweep (the README's, as written) measure each output against each speaker's real clips
(`sim_alice`, `sim_bob`) and plot them against the axis, bad arm syntax is one line naming the arm
and a bad conditioning axis one line naming the axis, before a job is queued. One conditioned
adapter (tiny, trained through the CLI on alice/bob with --condition speaker --condition accent)
serves every test here."""
from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from studio.errors import UserError
from studio.experiments import arms, grid, requests


def run(ws, *args):
    """The real `bark-studio` command, in this process (the model and metric imports are paid once)."""
    from click.testing import CliRunner

    from studio.cli import main

    return CliRunner().invoke(main, ["--home", str(ws.root), *args])

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
# Two steps at a high rate: the conditioning tables start at zero and must move far enough that each
# label value makes different audio.
FAST_TRAIN = ["--max-steps", "2", "--lr", "0.05", "--batch-size", "1", "--grad-accum", "1", "--save-every", "100",
              "--eval-every", "100"]


@pytest.fixture(scope="module")
def cast(tmp_path_factory, awb_wav, slt_wav):
    """A workspace with dataset `cast` (alice: awb, accent=0; bob: slt, accent=1; both also carry
    pace and emotion, not conditioned on) and adapter `cast-voices` trained with --condition speaker
    --condition accent."""
    from studio.datasets import labels, store
    from studio.datasets.importer import ImportOptions, import_paths
    from studio.workspace import Workspace
    from workers.dispatch import submit

    home = tmp_path_factory.mktemp("cast") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BARK_STUDIO_HOME", str(home))
        mp.delenv("BARK_STUDIO_REDIS_URL", raising=False)
        mp.delenv("BARK_STUDIO_DATABASE_URL", raising=False)
        ws = Workspace.resolve(home)
        store.create_dataset(ws.db, "cast")
        import_paths(ws, "cast", [awb_wav], ImportOptions(speaker="alice"))
        import_paths(ws, "cast", [slt_wav], ImportOptions(speaker="bob"))
        for clip, values in zip(store.list_clips(ws.db, "cast"), (("0", "0.2", "calm"), ("1", "0.8", "angry"))):
            store.set_transcript(ws.db, clip["id"], "And you always want to see it.")
            labels.set_labels(ws.db, "cast", [str(clip["id"])], [f"{k}={v}" for k, v in
                                                                  zip(("accent", "pace", "emotion"), values)])
        assert submit(ws, "prepare", {"dataset": "cast"}, wait=True)["status"] == "succeeded"
        trained = run(ws, "train", "--dataset", "cast", "--model", "tiny", "--condition", "speaker", "--condition",
                      "accent", "--name", "cast-voices", "--wait", *FAST_TRAIN)
        assert trained.exit_code == 0, trained.output
        yield ws


def test_arm_and_system_syntax_carry_a_speaker_mix_and_labels():
    arm = arms.parse_arm("name=mix,kind=base,speaker=alice:0.7,bob:0.3,label=accent=0.35,label=mood=calm")
    assert arm == {"name": "mix", "kind": "base", "speaker": {"alice": 0.7, "bob": 0.3},
                   "labels": {"accent": 0.35, "mood": "calm"}}
    assert arms.parse_arm("name=two,speaker=alice,speaker=bob:2")["speaker"] == {"alice": 1.0, "bob": 2.0}
    assert requests.parse_axis("speaker_mix=alice:bob:3") == ("speaker_mix", [0.0, 0.5, 1.0])
    assert requests.speaker_mix_ends(["seed=0", "speaker_mix=alice:bob:3"]) == ["alice", "bob"]
    assert requests.parse_axis("label:accent=0:1:5") == ("label:accent", [0.0, 0.25, 0.5, 0.75, 1.0])
    request = grid.normalize({"prompts": ["p"], "model": "tiny", "adapter": "a", "speaker_mix": ["alice", "bob"],
                              "labels": {"mood": "calm"}, "axes": {"speaker_mix": [0.0, 0.25, 1.0],
                                                                   "label:accent": [0.2]}})
    made = [grid.generation_params(request, pt) for pt in grid.points(request)]
    assert [p["speaker"] for p in made] == [{"alice": 1.0}, {"alice": 0.75, "bob": 0.25}, {"bob": 1.0}]
    assert all(p["labels"] == {"mood": "calm", "accent": 0.2} and p["label:accent"] == 0.2 for p in made)


@pytest.mark.parametrize("spec, message", [
    ("name=mix,speaker=alice:lots", "--arm 'name=mix,speaker=alice:lots': speaker alice:lots: the weight after ':' "
                                    "must be a number"),
    ("name=acc,label=accent", "--arm 'name=acc,label=accent': label accent: write NAME=VALUE, e.g. accent=0.35"),
    ("name=twice,speaker=alice,alice", "--arm 'name=twice,speaker=alice,alice': speaker alice: give each speaker "
                                       "once as NAME or NAME:WEIGHT with a weight > 0"),
])
def test_bad_speaker_or_label_syntax_is_one_line_naming_the_arm(spec, message):
    with pytest.raises(UserError) as caught:
        arms.parse_arm(spec)
    assert str(caught.value) == message


def test_speaker_mix_sweep_measures_similarity_to_each_speaker_and_plots_it(cast):
    bad = run(cast, "sweep", "--prompt", "Hi.", "--model", "tiny", "--adapter", "cast-voices",
              "--axis", "speaker_mix=alice:3")
    assert bad.exit_code == 1 and bad.stderr.strip().splitlines() == [
        "error: --axis 'speaker_mix=alice:3': write speaker_mix=FROM:TO:STEPS (e.g. speaker_mix=alice:bob:5)"]
    proc = run(cast, "sweep", "--prompt", "Hello there, friend.", "--model", "tiny", "--adapter", "cast-voices",
               "--axis", "speaker_mix=alice:bob:3", "--max-new-semantic", "30", "--wait", "--json")
    assert proc.exit_code == 0, proc.output
    out = json.loads(proc.stdout)
    assert out["job"]["status"] == "succeeded", out["job"]
    outputs = sorted(out["sweep"]["outputs"], key=lambda o: o["params"]["speaker_mix"])
    assert len(outputs) == 3 and not any(o["error"] for o in outputs)
    assert [(o["params"]["speaker_mix"], o["params"]["speaker"]) for o in outputs] == \
        [(0.0, {"alice": 1.0}), (0.5, {"alice": 0.5, "bob": 0.5}), (1.0, {"bob": 1.0})]
    # sim_<speaker>: the mean cosine of the output's embedding to each of that speaker's real clips
    from models.metrics import speaker
    from studio.datasets.store import list_clips

    clips = {c["speaker"]: cast.root / c["blob"] for c in list_clips(cast.db, "cast")}
    for o in outputs:
        for name, clip in clips.items():
            expected = speaker.similarity([cast.root / o["audio_path"]], [clip])["mean"]
            assert o["metrics"][f"sim_{name}"] == pytest.approx(expected, abs=1e-4)
    plots = {os.path.basename(p) for p in out["sweep"]["plots"]}
    assert {"sim_alice__vs__speaker_mix.png", "sim_bob__vs__speaker_mix.png"} <= plots
    assert set(out["sweep"]["summary"]["by_param"]["speaker_mix"]["sim_alice"]) == {"0.0", "0.5", "1.0"}


def test_an_arms_and_a_generated_systems_mix_reach_generation(cast):
    from studio import jobs
    from studio.experiments.records import create_experiment
    from workers.dispatch import submit

    arm = arms.parse_arm("name=mix,kind=finetune,adapter=cast-voices:1,model=tiny,speaker=alice:0.7,bob:0.3", cast)
    exp = create_experiment(cast, name="cast-mix", arms=[arm], prompts=["Hello there."])
    assert exp["arms"][0]["speaker"] == {"alice": 0.7, "bob": 0.3}
    request = grid.normalize({"prompts": exp["prompts"], "model": "tiny", "arms": exp["arms"],
                              "axes": {"arm": ["mix"]}, "max_new_semantic": 12, "experiment_id": exp["id"]})
    job = submit(cast, "sweep", request, wait=True)
    assert job["status"] == "succeeded", job["error"]
    from studio.experiments.sweeps import get_sweep

    (output,) = get_sweep(cast, job["result"]["sweep_id"])["outputs"]
    assert output["error"] is None and output["params"]["speaker"] == {"alice": 0.7, "bob": 0.3}

    generation = arms.generation_spec("model=tiny,adapter=cast-voices,speaker=alice:0.7,bob:0.3", cast)
    job = submit(cast, "listening_stimuli", {
        "name": "mix", "test_type": "mos", "trials_per_rater": 1, "prompts": ["Hello there."], "generation_seed": 3,
        "systems": [{"name": "mix", "generation": {**generation, "semantic_max_new_tokens": 12}}]}, wait=True)
    assert job["status"] == "succeeded", job["error"]
    (gen,) = jobs.list_jobs(cast.db, kind="generate")
    assert gen["params"]["speaker"] == {"alice": 0.7, "bob": 0.3}
    assert gen["result"]["params"]["condition"] == {"speaker": {"alice": 0.7, "bob": 0.3}}

    # an unknown speaker is refused by the adapter's manifest, in one line naming it
    bad = arms.generation_spec("model=tiny,adapter=cast-voices,speaker=carol", cast)
    job = submit(cast, "listening_stimuli", {
        "name": "bad", "test_type": "mos", "prompts": ["Hi."], "systems": [{"name": "carol", "generation": bad}]},
        wait=True)
    assert job["status"] == "failed" and "unknown speaker 'carol'; this adapter knows alice, bob" in job["error"]


def test_a_numeric_label_sweep_reaches_generation_and_measures_each_speaker(cast):
    # the README's label sweep as written, on the offline tiny model, 3 steps and short outputs
    section = README.split("Experiments, sweeps and listening sessions take the same values", 1)[1]
    (line,) = [ln for ln in re.search(r"```sh\n(.*?)```", section, re.S).group(1).splitlines() if "label:" in ln]
    args = shlex.split(line.replace("--model small", "--model tiny").replace("=0:1:5", "=0:1:3"))[1:]
    assert args == ["sweep", "--prompt", "Hello there.", "--model", "tiny", "--adapter", "adapters/cast-voices",
                    "--speaker", "alice", "--axis", "label:accent=0:1:3", "--wait"]
    proc = run(cast, *args, "--max-new-semantic", "30", "--json")
    assert proc.exit_code == 0, proc.output
    out = json.loads(proc.stdout)
    assert out["job"]["status"] == "succeeded", out["job"]
    outputs = sorted(out["sweep"]["outputs"], key=lambda o: o["params"]["label:accent"])
    assert len(outputs) == 3 and not any(o["error"] for o in outputs)
    assert [(o["params"]["label:accent"], o["params"]["labels"], o["params"]["seed"]) for o in outputs] == \
        [(0.0, {"accent": 0.0}, 0), (0.5, {"accent": 0.5}, 0), (1.0, {"accent": 1.0}, 0)]
    assert all(o["params"]["speaker"] == {"alice": 1.0} for o in outputs)
    # the value reaches generation: the same seed and text give different audio at each point
    assert len({o["audio_sha256"] for o in outputs}) == 3
    # a label sweep measures each output against every speaker of the adapter's dataset, not only alice
    from models.metrics import speaker
    from studio.datasets.store import list_clips

    clips = {c["speaker"]: cast.root / c["blob"] for c in list_clips(cast.db, "cast")}
    for o in outputs:
        for name, clip in clips.items():
            expected = speaker.similarity([cast.root / o["audio_path"]], [clip])["mean"]
            assert o["metrics"][f"sim_{name}"] == pytest.approx(expected, abs=1e-4)
    plots = {os.path.basename(p): cast.root / p for p in out["sweep"]["plots"]}
    for name in ("sim_alice__vs__label_accent.png", "sim_bob__vs__label_accent.png"):
        assert plots[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_value = out["sweep"]["summary"]["by_param"]["label:accent"]
    assert set(by_value["sim_alice"]) == set(by_value["sim_bob"]) == {"0.0", "0.5", "1.0"}


@pytest.mark.parametrize("axis, message", [
    ("label:loudness=0:1:3", "--axis label:loudness: unknown label 'loudness'; adapter cast-voices is conditioned on "
                             "speaker, accent"),
    ("label:speaker=0:1:3", "--axis label:speaker: speaker is a categorical label (alice, bob), not a number; "
                            "sweep speakers with speaker_mix=alice:bob:STEPS"),
    ("label:emotion=0:1:3", "--axis label:emotion: emotion is a categorical label, not a number, and adapter "
                            "cast-voices is conditioned on speaker, accent"),
    ("label:pace=0:1:3", "--axis label:pace: adapter cast-voices was not trained on pace (it is conditioned on "
                         "speaker, accent); train with --condition pace to sweep it"),
    ("label:accent=0:2:3", "--axis label:accent: 2 is outside the range 0..1 adapter cast-voices was trained on"),
    ("label:accent=0:1", "--axis 'label:accent=0:1': the number of steps after the last ':' must be a whole "
                         "number >= 2"),
    ("label:accent=low:high:3", "--axis 'label:accent=low:high:3': write NAME=LOW:HIGH:STEPS with numbers "
                                "(e.g. label:accent=0:1:5)"),
    ("label:=0:1:3", "--axis 'label:=0:1:3': write label:NAME=LOW:HIGH:STEPS with the name of a numeric label "
                     "(e.g. label:accent=0:1:5)"),
    ("speaker_mix=alice:carol:3", "--axis speaker_mix: unknown speaker 'carol'; adapter cast-voices knows alice, bob"),
])
def test_a_bad_conditioning_axis_is_one_line_before_a_job_is_queued(cast, axis, message):
    from studio import jobs

    before = len(jobs.list_jobs(cast.db, kind="sweep"))
    bad = run(cast, "sweep", "--prompt", "Hi.", "--model", "tiny", "--adapter", "cast-voices", "--axis", axis)
    assert bad.exit_code == 1 and bad.stderr.strip().splitlines() == [f"error: {message}"]
    assert len(jobs.list_jobs(cast.db, kind="sweep")) == before


@pytest.mark.parametrize("option, message", [
    (["--speaker", "carol"], "--speaker carol: unknown speaker 'carol'; adapter cast-voices knows alice, bob"),
    (["--label", "accent=2"], "--label accent: accent=2 is outside the trained range 0..1"),
    (["--label", "accent=strong"], "--label accent: accent is a numeric label (0..1); got 'strong'"),
    (["--label", "pace=0.5"], "--label pace: adapter cast-voices is conditioned on speaker, accent"),
])
def test_a_bad_fixed_speaker_or_label_is_one_line_before_a_job_is_queued(cast, option, message):
    from studio import jobs

    before = len(jobs.list_jobs(cast.db, kind="sweep"))
    bad = run(cast, "sweep", "--prompt", "Hi.", "--model", "tiny", "--adapter", "cast-voices",
              "--axis", "seed=1,2", *option)
    assert bad.exit_code == 1 and bad.stderr.strip().splitlines() == [f"error: {message}"]
    assert len(jobs.list_jobs(cast.db, kind="sweep")) == before


def test_a_label_axis_needs_a_conditioned_adapter(cast):
    bad = run(cast, "sweep", "--prompt", "Hi.", "--model", "tiny", "--axis", "label:accent=0:1:3")
    assert bad.exit_code == 1 and bad.stderr.strip().splitlines() == [
        "error: --axis label:accent: no adapter is chosen; sweeping label:accent needs an adapter trained with "
        "--condition accent (--adapter NAME)"]
