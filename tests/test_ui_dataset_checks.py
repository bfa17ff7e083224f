"""A transcript Bark cannot read whole is refused when training is submitted (CLI and the Train
tab's launch), naming the user's clip, before a job is queued."""
from __future__ import annotations

import pytest

from studio import jobs
from studio.datasets.store import list_clips, set_transcript
from studio.errors import UserError
from tests.conftest import cli
from tests.queue_support import copy_template


def test_an_overlong_transcript_is_refused_at_submit_naming_the_clip(train_template, tmp_path, monkeypatch):
    from studio.workspace import Workspace

    home = copy_template(train_template, tmp_path / "home")
    monkeypatch.setenv("BARK_STUDIO_HOME", str(home))
    ws = Workspace.resolve(home)
    clip = next(c for c in list_clips(ws.db, "voice") if "slt" in c["name"])
    set_transcript(ws.db, clip["id"], " ".join(["It had fallen on them like a thunderbolt."] * 60))

    proc = cli("train", "--dataset", "voice", "--model", "tiny", "--max-steps", "1", home=home, check=False)
    assert proc.returncode == 1, proc.stdout
    err = proc.stderr.strip()
    assert err.startswith("error: ") and clip["name"] in err and "too long" in err, err
    assert "\n" not in err and "Traceback" not in err
    from studio.ui import train_tab

    with pytest.raises(Exception) as caught:  # the tab's launch: the same message as a gr.Error
        train_tab.launch(ws, "voice", "tiny", ["semantic"], train_tab.DEFAULT_PRESET,
                         train_tab.preset_values(train_tab.DEFAULT_PRESET))
    assert clip["name"] in str(caught.value)
    assert jobs.list_jobs(ws.db, kind="train") == []
    assert not isinstance(caught.value, UserError)  # shown to the user, not raised as a crash
