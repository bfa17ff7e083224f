"""Excluding and (softly) deleting clips from the CLI, each undoable: prepare, training items and
the report leave them out; a deleted clip's audio stays stored so undo brings it back whole."""
from __future__ import annotations

import json

from click.testing import CliRunner

from studio.cli import main
from studio.datasets.api import training_items


def run(home, *args, code: int = 0):
    result = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result


def _json(home, *args, code: int = 0):
    return json.loads(run(home, *args, "--json", code=code).stdout)


def _prepare(home) -> dict:
    job = _json(home, "dataset", "prepare", "states", "--wait", "--no-vad")
    assert job["status"] == "succeeded", job
    return job["result"]


def test_exclude_and_delete_round_trip_with_prepare_honouring_them(ws, awb_wav, slt_wav):
    home = ws.root
    run(home, "dataset", "create", "states")
    run(home, "dataset", "import", "states", str(awb_wav), str(slt_wav))
    a, b = [c["id"] for c in _json(home, "dataset", "clips", "states")]
    run(home, "dataset", "text", str(a), "And you always want to see it in the superlative degree.")
    run(home, "dataset", "text", str(b), "He turned sharply, and faced Gregson across the table.")

    # exclude a: still listed (marked), but prepare, training and the report leave it out
    assert _json(home, "dataset", "exclude", str(a))["state"] == "excluded"
    listed = run(home, "dataset", "clips", "states").stdout
    assert "[excluded]" in listed.splitlines()[0] and "[excluded]" not in listed.splitlines()[1]
    assert "already excluded" in run(home, "dataset", "exclude", str(a), code=1).stderr
    assert _prepare(home)["clips"] == 1
    assert {it["clip_id"] for it in training_items(ws.db, "states")} == {b}
    shown = _json(home, "dataset", "show", "states")
    assert shown["clips"] == 1 and shown["excluded_clips"] == 1 and shown["training_segments"] == 1
    assert "Excluded: 1 clip" in run(home, "dataset", "show", "states").stdout

    # undo: a is back in the next prepare
    assert _json(home, "dataset", "exclude", str(a), "--undo")["state"] == "active"
    assert _prepare(home)["clips"] == 2
    assert {it["clip_id"] for it in training_items(ws.db, "states")} == {a, b}

    # delete b: hidden from the list, out of the ready version's training items at once, audio kept
    blob = ws.root / _json(home, "dataset", "clips", "states")[1]["blob"]
    out = run(home, "dataset", "delete", str(b)).stdout
    assert "deleted" in out and f"delete {b} --undo" in out
    assert [c["id"] for c in _json(home, "dataset", "clips", "states")] == [a]
    assert [(c["id"], c["state"]) for c in _json(home, "dataset", "clips", "states", "--deleted")] == \
        [(a, "active"), (b, "deleted")]
    assert {it["clip_id"] for it in training_items(ws.db, "states")} == {a}
    assert [d["clips"] for d in _json(home, "dataset", "list")] == [1]
    assert blob.is_file()
    again = _json(home, "dataset", "import", "states", str(slt_wav))  # the same audio again: pointed at the undo
    assert f"delete {b} --undo" in again["duplicates"][0]["note"] and again["imported"] == []
    assert _prepare(home)["clips"] == 1

    # undo the delete: b comes back with its transcript
    assert _json(home, "dataset", "delete", str(b), "--undo")["state"] == "active"
    clips = _json(home, "dataset", "clips", "states")
    assert [c["id"] for c in clips] == [a, b] and clips[1]["text"].startswith("He turned sharply")
    assert _prepare(home)["clips"] == 2
    assert "is not deleted" in run(home, "dataset", "delete", str(b), "--undo", code=1).stderr
    assert "no clip 999" in run(home, "dataset", "exclude", "999", code=1).stderr
