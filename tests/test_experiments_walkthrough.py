"""The first experiment of the plan, end to end on tiny models with the real CLI: a dataset of
one speaker, a voice prompt from it, a LoRA trained on it, a sweep of both arms with metrics
(and the real recording's floors beside them), a blind A/B listening session, a conclusion, and the one
page (CLI and Experiments tab) that gathers all of it."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import cli
from tests.listening_support import complete_rater

TEXT = "And you always want to see it in the superlative degree."


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # 2 shared cores: avoid thread oversubscription


def studio_json(ws, *args: str):
    """A quick command of the real CLI, in this process."""
    from click.testing import CliRunner

    from studio.cli import main

    res = CliRunner().invoke(main, ["--home", str(ws.root), *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def job_json(ws, *args: str) -> dict:
    """A command that runs a job (`--wait`, inline in its own process)."""
    return json.loads(cli(*args, "--json", home=ws.root).stdout)


@pytest.mark.slow
def test_fine_tune_vs_voice_prompt_walks_every_step_onto_one_page(ws, tmp_path, awb_wav):
    src = tmp_path / "src"
    src.mkdir()
    subprocess.run(["sox", awb_wav, src / "awb_fast.wav", "tempo", "1.1"], check=True)
    subprocess.run(["sox", awb_wav, src / "awb_slow.wav", "tempo", "0.9"], check=True)
    subprocess.run(["sox", awb_wav, src / "awb_slow.wav", src / "awb_long.wav"], check=True)  # 8.4 s for a prompt

    # Dataset: one speaker, transcribed by hand, prepared.
    studio_json(ws, "dataset", "create", "awb")
    cli("dataset", "import", "awb", str(awb_wav), str(src / "awb_fast.wav"), str(src / "awb_slow.wav"),
        "--speaker", "awb", home=ws.root)
    for clip in studio_json(ws, "dataset", "clips", "awb"):
        cli("dataset", "text", str(clip["id"]), TEXT, home=ws.root)
    assert job_json(ws, "dataset", "prepare", "awb", "--wait")["status"] == "succeeded"

    # The two arms: a voice prompt of awb, and a LoRA trained on awb.
    voice = job_json(ws, "voice", "create", "awb-voice", "--clip", str(src / "awb_long.wav"), "--model", "tiny")
    assert voice["name"] == "awb-voice"
    trained = job_json(ws, "train", "--dataset", "awb", "--model", "tiny", "--max-steps", "1", "--name", "awb-lora",
                       "--wait")
    assert trained["status"] == "succeeded", trained["error"]

    exp = studio_json(ws, "experiment", "create", "ft-vs-prompt",
                      "--hypothesis", "A LoRA of awb holds his voice more steadily than a voice prompt of awb",
                      "--dataset", "awb", "--arm", "name=prompted,kind=voice_prompt,voice=awb-voice,model=tiny",
                      "--arm", "name=lora,kind=finetune,adapter=awb-lora:1.0,model=tiny", "--prompt", "Hello there, friend.")
    assert [a["kind"] for a in exp["arms"]] == ["voice_prompt", "finetune"]
    assert exp["arms"][0]["voice"] == "voices/awb-voice.npz"  # workspace-relative: a copied workspace works
    assert exp["arms"][1]["adapters"] == [{"path": "adapters/awb-lora", "scale": 1.0}]

    # Sweep both arms over seeds, with speaker similarity and WER through the random test Whisper.
    swept = job_json(ws, "sweep", "--experiment", "ft-vs-prompt", "--seeds", "0,1", "--max-new-semantic", "30",
                     "--ref", str(awb_wav), "--asr", "test-random", "--real", str(awb_wav), "--real-text", TEXT, "--wait")
    assert swept["job"]["status"] == "succeeded", swept["job"]["error"]
    sweep = swept["sweep"]
    assert {(o["arm"], o["params"]["seed"]) for o in sweep["outputs"]} == \
        {("prompted", 0), ("prompted", 1), ("lora", 0), ("lora", 1)}
    lora_out = next(o for o in sweep["outputs"] if o["arm"] == "lora")
    assert lora_out["params"]["adapters"] == [{"path": "adapters/awb-lora", "scale": 1.0}]
    assert next(o for o in sweep["outputs"] if o["arm"] == "prompted")["params"]["voice"] == "voices/awb-voice.npz"
    assert all("speaker_similarity" in o["metrics"] and "wer" in o["metrics"] for o in sweep["outputs"])
    assert {"arm", "seed"} <= set(sweep["summary"]["by_param"]) and sweep["plots"]
    floors = sweep["summary"]["floors"]  # the real recording through the same models, beside the numbers
    assert floors["wer_floor"] is not None and floors["real_vs_real_similarity"] is not None
    assert "random weights" in floors["asr_model"]

    # A blind A/B session of the two arms, two raters who vote, linked to the experiment.
    folders = studio_json(ws, "sweeps", "export", str(sweep["id"]), str(tmp_path / "ab"))
    session = json.loads(cli("listen", "create", "--name", "ft vs prompt", "--system", f"prompted={folders['prompted']}",
                             "--system", f"lora={folders['lora']}", "--trials", "2", "--seed", "1", "--json",
                             home=ws.root).stdout)
    assert session["n_items"] == 2
    raters = studio_json(ws, "listen", "raters", str(session["id"]), "--count", "2")
    for rater in raters:
        complete_rater(ws.db, session["public_id"], rater["token"], lambda i, t: "A")
    studio_json(ws, "experiment", "link", "ft-vs-prompt", "--listening", str(session["id"]))

    # A clip a person found worth keeping, and the conclusion.
    studio_json(ws, "emergent", "add", "--output", str(lora_out["id"]), "--tag", "steady", "--stars", "3")
    studio_json(ws, "experiment", "conclude", "ft-vs-prompt",
                "Tiny random models: the pipeline runs; no claim about voices.")

    page = studio_json(ws, "experiment", "show", "ft-vs-prompt")
    assert page["hypothesis"].startswith("A LoRA") and page["dataset"] == "awb" and page["status"] == "concluded"
    assert [s["mode"] for s in page["sweeps"]] == ["grid"]
    by_arm = page["sweeps"][0]["summary"]["by_arm"]["speaker_similarity"]
    assert set(by_arm) == {"prompted", "lora"} and all(v["n"] == 2 for v in by_arm.values())
    (listening,) = page["listening"]
    assert listening["session_id"] == session["id"] and listening["n_votes"] > 0 and listening["ab"]
    assert [e["tags"] for e in page["emergent"]] == [["steady"]]
    assert page["conclusion"].startswith("Tiny random models")

    # The Experiments tab renders the same page: every part in one place.
    from studio.ui import experiments_tab

    markdown, plots = experiments_tab.show(ws, page["id"])
    for part in ("A LoRA of awb", "**Dataset:** awb", "`prompted` (voice_prompt)", "`lora` (finetune)",
                 "| prompted |", "| lora |", "speaker_similarity", "wer_floor", "ft vs prompt", "votes",
                 "Emergent log (1 entries)", "Tiny random models"):
        assert part in markdown, part
    assert len(plots) == len(sweep["plots"]) and all(p.endswith(".png") for p in plots)
