"""The CLI forms of curation, with no worker (`--wait` runs the job in the command's own process)
and with a real `bark-studio worker` (imports of uploads and transcription run there)."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from studio import jobs
from studio.datasets import store
from studio.cli import main
from studio.datasets.api import prepared_segments, training_items
from tests.conftest import cli
from workers.dispatch import submit, wait_for


def _json(proc):
    return json.loads(proc.stdout)


def run(home, *args, code: int = 0):
    """The real click command in this process (fast); `cli` below runs it as a subprocess."""
    result = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result


def test_cli_forms_without_a_worker(ws, awb_wav, slt_wav, tmp_path):
    home = ws.root
    assert _json(cli("dataset", "create", "cli-set", "--json", home=home))["name"] == "cli-set"  # the installed command
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    report = _json(run(home, "dataset", "import", "cli-set", str(awb_wav), str(slt_wav), str(bad), "--speaker", "arctic",
                       "--licence", "CMU ARCTIC licence", "--json", code=3))  # 3: some files refused
    assert len(report["imported"]) == 2 and report["errors"][0]["file"] == "broken.wav"
    clip_ids = [c["id"] for c in _json(run(home, "dataset", "clips", "cli-set", "--json"))]
    run(home, "dataset", "trim", str(clip_ids[0]), "0.2", "3.8")
    out = _json(run(home, "dataset", "text", str(clip_ids[0]),
                    "And you always want to see it [laughs] in the superlative degree.", "--json"))
    assert out["source"] == "human" and out["lint"] == []
    run(home, "dataset", "text", str(clip_ids[1]), "He turned sharply, and faced Gregson across the table.")
    job = _json(run(home, "dataset", "prepare", "cli-set", "--wait", "--json"))
    assert job["status"] == "succeeded" and job["worker_id"] == "inline" and job["result"]["kept"] == 2
    shown = _json(run(home, "dataset", "show", "cli-set", "--json", "--plots", str(tmp_path / "plots")))
    assert shown["clips"] == 2 and shown["training_segments"] == 2 and shown["markers"] == {"[laughs]": 1}
    assert shown["tier"]["tier"] == "zero-shot" and shown["prepared"]["version"] == 1
    assert all((tmp_path / "plots" / f"cli-set-{k}.png").stat().st_size > 1000 for k in ("lengths", "snr", "loudness"))
    exported = _json(run(home, "dataset", "export", "cli-set", str(tmp_path / "out"), "--json"))
    assert exported["segments"] == 2 and (tmp_path / "out" / "manifest.json").exists()
    listed = _json(run(home, "dataset", "list", "--json"))
    assert [(d["name"], d["clips"]) for d in listed] == [("cli-set", 2)]
    # user errors are one line and exit 1
    for args, message in ((("dataset", "create", "cli-set"), "already exists"),
                          (("dataset", "prepare", "nope", "--wait"), "no dataset named 'nope'"),
                          (("dataset", "prepare", "cli-set", "--min-segment", "20"), "segment bounds"),
                          (("dataset", "transcribe", "cli-set", "--model-size", "huge"), "unknown Whisper size"),
                          (("dataset", "trim", str(clip_ids[0]), "3", "99"), "outside"),
                          (("dataset", "export", "cli-set", str(tmp_path / "out")), "not an empty folder")):
        result = run(home, *args, code=1)
        assert result.stderr.startswith("error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    proc = cli("dataset", "show", "nope", home=home, check=False)  # the same through the installed command
    assert proc.returncode == 1 and proc.stderr.strip() == "error: no dataset named 'nope' (create it with `bark-studio dataset create nope`)"


@pytest.mark.slow
def test_uploads_import_and_transcription_run_in_the_worker(ws, consumer, awb_wav, slt_wav, tmp_path):
    """The browser's path: raw uploads staged in the workspace, an import job decodes them in the
    worker; then `dataset transcribe --wait` (random-weight Whisper) and `prepare --wait` run there too."""
    store.create_dataset(ws.db, "jobs")
    staged = ws.tmp_dir / "uploads" / "t1" / "upload"
    staged.mkdir(parents=True)
    shutil.copy(awb_wav, staged / "a.wav")
    shutil.copy(slt_wav, staged / "b.wav")
    (staged / "bad.ogg").write_bytes(b"OggS" + b"\x00" * 100)
    job = submit(ws, "import", {"dataset": "jobs", "paths": [ws.relative(staged)], "labels": {ws.relative(staged): "upload"},
                                "staged": True, "cleanup": True})
    job = wait_for(ws, job["id"], poll=0.2)
    assert job["status"] == "succeeded" and job["worker_id"] != "inline"
    assert {i["file"] for i in job["result"]["imported"]} == {"upload/a.wav", "upload/b.wav"}
    assert "corrupt or unreadable OGG" in job["result"]["errors"][0]["error"]
    assert not staged.exists()  # the staged upload is removed once imported

    done = _json(cli("dataset", "transcribe", "jobs", "--wait", "--model-size", "test-random", "--json", home=ws.root))
    assert done["status"] == "succeeded" and done["worker_id"] != "inline" and done["result"]["transcribed"] == 2
    assert "running in a spawned process" in done["log_tail"]  # Whisper loads in its own interpreter, never the fork
    clips = store.list_clips(ws.db, "jobs")
    assert all(c["transcript_source"] == "machine" and c["text"] and c["has_words"] for c in clips)
    words = store.get_clip(ws.db, clips[0]["id"])["words"]
    assert all(0 <= w["start"] <= w["end"] <= clips[0]["duration"] + 0.5 for w in words)
    # a second run skips clips that already have ASR text
    again = submit(ws, "transcribe", {"dataset": "jobs", "model_size": "test-random"}, wait=True, poll=0.2)
    assert again["result"]["transcribed"] == 0

    prep = submit(ws, "prepare", {"dataset": "jobs"}, wait=True, poll=0.2)
    assert prep["status"] == "succeeded" and prep["worker_id"] != "inline"
    segments = prepared_segments(ws.db, "jobs")
    assert segments and all(g["text"] for g in segments)
    assert {it["clip_id"] for it in training_items(ws.db, "jobs")} == {c["id"] for c in clips}
    rows = jobs.list_jobs(ws.db)
    assert [r["kind"] for r in rows] == ["prepare", "transcribe", "transcribe", "import"]
