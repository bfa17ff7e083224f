"""The Experiments and Listen forms take what the README and their own placeholders show, and
refuse what cannot work with a message about the form (no CLI flag, no server path)."""
from __future__ import annotations

import numpy as np
import pytest

from studio.errors import UserError
from studio.listening import results, sessions
from studio.listening.sessions import SystemSource
from tests.listening_support import make_folders


def test_arms_written_as_the_readme_and_placeholder_show_them_are_accepted(ws, tmp_path, monkeypatch):
    from studio.ui import experiments_tab

    (ws.voices_dir / "x.npz").parent.mkdir(parents=True, exist_ok=True)
    np.savez(ws.voices_dir / "x.npz", semantic_prompt=np.zeros(4, np.int64))
    (ws.adapters_dir / "x").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # the studio's working folder is not the workspace
    text = ("name=base,kind=base\nname=prompted,kind=voice_prompt,voice=voices/x.npz\n"
            "name=lora,kind=finetune,adapter=adapters/x:1.0")
    arms = experiments_tab.parse_arms(text, ws)
    assert arms[1]["voice"] == "voices/x.npz"
    assert arms[2]["adapters"] == [{"path": "adapters/x", "scale": 1.0}]
    with pytest.raises(UserError) as caught:
        experiments_tab.parse_arms("name=base,kind=base\nname=p,kind=voice_prompt,voice=voices/missing.npz", ws)
    assert "--arm" not in str(caught.value) and "arm line 2" in str(caught.value)


def test_an_ab_session_refuses_more_trials_than_its_pairs_and_results_print_no_path(ws, tmp_path, awb_wav):
    folders = make_folders(tmp_path / "src", awb_wav, names=("a", "b"), n_items=2, seconds=0.5)
    systems = [SystemSource(n, f) for n, f in folders.items()]
    with pytest.raises(UserError) as caught:
        sessions.create_session(ws, name="too many", systems=systems, trials_per_rater=20)
    assert "2 item(s) x 1 pair(s) of systems = 2 distinct trials" in str(caught.value)
    made = sessions.create_session(ws, name="as many as there are", systems=systems)
    assert made["trials_per_rater"] == 2
    from tests.listening_support import complete_rater

    for link in sessions.add_raters(ws, made["id"], 2):
        complete_rater(ws.db, made["public_id"], link["token"], lambda i, t: "A")
    res = results.session_results(ws, made["id"], n_boot=200)
    assert res["plots"] and str(ws.root) not in results.summary_text(res, with_paths=False)


def test_a_user_error_reaches_the_page_as_one_line_and_a_fault_stays_a_fault():
    import gradio as gr

    from studio.ui.errors import page_errors

    with pytest.raises(gr.Error) as shown:
        with page_errors():
            raise UserError("clip a.wav: too short")
    assert shown.value.message == "clip a.wav: too short" and shown.value.__suppress_context__
    with pytest.raises(gr.Error, match="choose a job first"):
        with page_errors(ValueError, default="choose a job first"):
            raise ValueError()  # no message of its own
    with pytest.raises(KeyError):  # a real fault is not dressed up as the user's mistake
        with page_errors():
            raise KeyError("bug")
