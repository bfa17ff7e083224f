"""The job path of label conditioning: the README's Conditioning commands, run as written through
the real CLI (`--model small` swapped for the offline `tiny`, and a short schedule added), train
with --condition speaker on two labelled speakers and generate a mix of them; an unknown speaker
is one clear line. (Bad labels and values in general, both engines and plain adapters:
test_conditioning.py, in process.)"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import soundfile as sf

from tests.conftest import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
FAST_TRAIN = ["--max-steps", "2", "--batch-size", "1", "--grad-accum", "1", "--save-every", "100", "--eval-every", "100"]
FAST_GENERATE = ["--max-semantic-tokens", "12", "--seed", "3"]


def _readme_commands() -> list[list[str]]:
    section = README.split("### Conditioning", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line)[1:] for line in block.strip().splitlines()]  # drop "bark-studio"


def _dataset(ws, awb_wav, slt_wav):
    from studio.datasets import store
    from studio.datasets.importer import ImportOptions, import_paths
    from workers.dispatch import submit

    store.create_dataset(ws.db, "cast")
    import_paths(ws, "cast", [awb_wav], ImportOptions(speaker="alice"))
    import_paths(ws, "cast", [slt_wav], ImportOptions(speaker="bob"))
    for clip in store.list_clips(ws.db, "cast"):
        store.set_transcript(ws.db, clip["id"], "And you always want to see it.")
    job = submit(ws, "prepare", {"dataset": "cast"}, wait=True)
    assert job["status"] == "succeeded" and job["result"]["kept"] == 2, job


def test_readme_conditioning_commands_train_and_generate_a_speaker_and_a_mix(ws, awb_wav, slt_wav, tmp_path):
    _dataset(ws, awb_wav, slt_wav)
    commands = _readme_commands()
    assert [c[0] for c in commands] == ["train", "generate"]
    outputs = []
    for args in commands:
        args = [("tiny" if a == "small" and args[i - 1] == "--model" else a) for i, a in enumerate(args)]
        args = [str(tmp_path / a) if a.endswith(".wav") else a for a in args]
        extra = FAST_TRAIN if args[0] == "train" else FAST_GENERATE
        proc = cli(*args, *extra, "--json", home=ws.root)
        result = json.loads(proc.stdout)
        if args[0] == "train":
            assert result["status"] == "succeeded", result
            manifest = json.loads((ws.root / result["result"]["adapter_path"] / "manifest.json").read_text())
            assert manifest["conditioning"] == {"labels": [{"name": "speaker", "kind": "categorical",
                                                            "categories": ["alice", "bob"]}]}
        else:
            audio, rate = sf.read(result["out"])
            assert rate == 24_000 and len(audio) > 0
            outputs.append((result["params"]["condition"], audio))
    assert outputs[0][0] == {"speaker": {"alice": 0.7, "bob": 0.3}}

    base = ["generate", "--text", "Hello there.", "--model", "tiny", "--adapter", "cast-voices", *FAST_GENERATE]
    bad = cli(*base, "--speaker", "carol", home=ws.root, check=False)
    assert bad.returncode == 1 and "unknown speaker 'carol'; this adapter knows alice, bob" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr, bad.stderr
