"""The first experiment of the plan, end to end on tiny models with the real CLI: a voice prompt
of one speaker against the base model, a sweep of both arms with metrics (and the real
recording's floors beside them), the outputs exported per arm, a blind A/B listening session, a
conclusion, and the one page (CLI and Experiments tab) that gathers all of it. The same loop with
a dataset and a trained LoRA, through the pages, is tests/test_walkthrough_browser.py."""
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
def test_voice_prompt_vs_base_walks_every_step_onto_one_page(ws, tmp_path, awb_wav):
    src = tmp_path / "src"
    src.mkdir()
    subprocess.run(["sox", awb_wav, src / "awb_slow.wav", "tempo", "0.9"], check=True)
    subprocess.run(["sox", awb_wav, src / "awb_slow.wav", src / "awb_long.wav"], check=True)  # 8.4 s for a prompt

    # The two arms: a voice prompt of awb, and the base model with no voice. (The LoRA arm, trained
    # from a dataset, is the browser walkthrough's: tests/test_walkthrough_browser.py.)
    voice = job_json(ws, "voice", "create", "awb-voice", "--clip", str(src / "awb_long.wav"), "--model", "tiny")
    assert voice["name"] == "awb-voice"

    exp = studio_json(ws, "experiment", "create", "prompt-vs-base",
                      "--hypothesis", "A voice prompt of awb sounds more like him than the base model",
                      "--dataset", "awb", "--arm", "name=prompted,kind=voice_prompt,voice=awb-voice,model=tiny",
                      "--arm", "name=base,kind=base,model=tiny", "--prompt", "Hello there, friend.")
    assert [a["kind"] for a in exp["arms"]] == ["voice_prompt", "base"]
    assert exp["arms"][0]["voice"] == "voices/awb-voice.npz"  # workspace-relative: a copied workspace works

    # Sweep both arms over seeds, with speaker similarity and WER through the random test Whisper.
    swept = job_json(ws, "sweep", "--experiment", "prompt-vs-base", "--seeds", "0,1", "--max-new-semantic", "30",
                     "--ref", str(awb_wav), "--asr", "test-random", "--real", str(awb_wav), "--real-text", TEXT, "--wait")
    assert swept["job"]["status"] == "succeeded", swept["job"]["error"]
    sweep = swept["sweep"]
    assert {(o["arm"], o["params"]["seed"]) for o in sweep["outputs"]} == \
        {("prompted", 0), ("prompted", 1), ("base", 0), ("base", 1)}
    base_out = next(o for o in sweep["outputs"] if o["arm"] == "base")
    assert base_out["params"]["adapters"] == [] and base_out["params"]["voice"] is None
    assert next(o for o in sweep["outputs"] if o["arm"] == "prompted")["params"]["voice"] == "voices/awb-voice.npz"
    assert all("speaker_similarity" in o["metrics"] and "wer" in o["metrics"] for o in sweep["outputs"])
    assert {"arm", "seed"} <= set(sweep["summary"]["by_param"]) and sweep["plots"]
    floors = sweep["summary"]["floors"]  # the real recording through the same models, beside the numbers
    assert floors["wer_floor"] is not None and floors["real_vs_real_similarity"] is not None
    assert "random weights" in floors["asr_model"]

    # A blind A/B session of the two arms, two raters who vote, linked to the experiment.
    folders = studio_json(ws, "sweeps", "export", str(sweep["id"]), str(tmp_path / "ab"))
    session = json.loads(cli("listen", "create", "--name", "prompt vs base", "--system", f"prompted={folders['prompted']}",
                             "--system", f"base={folders['base']}", "--trials", "2", "--seed", "1", "--json",
                             home=ws.root).stdout)
    assert session["n_items"] == 2
    raters = studio_json(ws, "listen", "raters", str(session["id"]), "--count", "2")
    for rater in raters:
        complete_rater(ws.db, session["public_id"], rater["token"], lambda i, t: "A")
    studio_json(ws, "experiment", "link", "prompt-vs-base", "--listening", str(session["id"]))

    # A clip a person found worth keeping, and the conclusion.
    studio_json(ws, "emergent", "add", "--output", str(base_out["id"]), "--tag", "steady", "--stars", "3")
    studio_json(ws, "experiment", "conclude", "prompt-vs-base",
                "Tiny random models: the pipeline runs; no claim about voices.")

    page = studio_json(ws, "experiment", "show", "prompt-vs-base")
    assert page["hypothesis"].startswith("A voice prompt of awb") and page["dataset"] == "awb" and page["status"] == "concluded"
    assert [s["mode"] for s in page["sweeps"]] == ["grid"]
    by_arm = page["sweeps"][0]["summary"]["by_arm"]["speaker_similarity"]
    assert set(by_arm) == {"prompted", "base"} and all(v["n"] == 2 for v in by_arm.values())
    (listening,) = page["listening"]
    assert listening["session_id"] == session["id"] and listening["n_votes"] > 0 and listening["ab"]
    assert [e["tags"] for e in page["emergent"]] == [["steady"]]
    assert page["conclusion"].startswith("Tiny random models")

    # The Experiments tab renders the same page: every part in one place.
    from studio.ui import experiments_tab

    markdown, plots = experiments_tab.show(ws, page["id"])
    for part in ("A voice prompt of awb", "**Dataset:** awb", "`prompted` (voice_prompt)", "`base` (base)",
                 "| prompted |", "| base |", "speaker_similarity", "wer_floor", "prompt vs base", "votes",
                 "Emergent log (1 entries)", "Tiny random models"):
        assert part in markdown, part
    assert len(plots) == len(sweep["plots"]) and all(p.endswith(".png") for p in plots)
