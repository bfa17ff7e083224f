"""Labels on clips and a dataset's own tags: speakers from the VCTK and Common Voice layouts,
`dataset label` / `dataset tags` through the real CLI (bulk, unset, bad syntax), the report's
distributions and warnings, the linter with declared tags, and migration 0009 on a workspace made
before it (nothing lost)."""
from __future__ import annotations

import json
import re
import shlex
import shutil

import numpy as np
import soundfile as sf

from studio.datasets import store
from studio.datasets.importer import ImportOptions, import_paths
from studio.datasets.labels import clip_labels, list_labels
from studio.datasets.lint import lint
from studio.datasets.report import LABEL_MIN_SECONDS, build_report
from tests.conftest import REPO, cli


def run(home, *args: str, code: int = 0):
    """The real CLI in this process (a subprocess costs seconds of imports on the loaded box)."""
    from click.testing import CliRunner

    from studio.cli import main

    result = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result


def _labels(ws, dataset: str) -> dict[str, dict]:
    return {r["name"].rsplit("/", 1)[-1]: r["labels"] for r in list_labels(ws.db, dataset)}


def test_vctk_and_common_voice_layouts_give_speakers(ws, tmp_path, awb_wav, slt_wav):
    # VCTK as distributed without txt/: wav48_silence_trimmed/<spk>/<spk>_<n>_mic1|2.flac, plus a loose p227 file
    vctk = tmp_path / "VCTK-Corpus"
    for spk, src in (("p225", awb_wav), ("p226", slt_wav)):
        folder = vctk / "wav48_silence_trimmed" / spk
        folder.mkdir(parents=True)
        data, sr = sf.read(src)
        sf.write(folder / f"{spk}_001_mic1.flac", data, sr)
        sf.write(folder / f"{spk}_001_mic2.flac", data[::-1], sr)  # the second microphone of the same take
    loose = tmp_path / "p227_003.wav"
    data, sr = sf.read(awb_wav)
    sf.write(loose, data * 0.5, sr)
    store.create_dataset(ws.db, "vctk")
    report = import_paths(ws, "vctk", [vctk], ImportOptions(speaker="fallback", clip_labels=["accent=0.2"]))
    assert report["errors"] == [] and "vctk" in report["layouts"]
    assert len(report["skipped"]) == 2  # the mic2 twins
    import_paths(ws, "vctk", [loose], ImportOptions(clip_labels=["accent=0.2"]))  # a name alone: speaker when none is given
    assert _labels(ws, "vctk") == {"p225_001_mic1.flac": {"speaker": "p225", "accent": 0.2},
                                   "p226_001_mic1.flac": {"speaker": "p226", "accent": 0.2},
                                   "p227_003.wav": {"speaker": "p227", "accent": 0.2}}

    # Common Voice: validated.tsv's client_id is the speaker
    cv = tmp_path / "cv-corpus" / "en"
    (cv / "clips").mkdir(parents=True)
    shutil.copy(awb_wav, cv / "clips" / "common_voice_en_1.wav")
    shutil.copy(slt_wav, cv / "clips" / "common_voice_en_2.wav")
    (cv / "validated.tsv").write_text("client_id\tpath\tsentence\tup_votes\n"
                                      "4f1ad3c2b9e07a6d\tcommon_voice_en_1.wav\tHello there.\t2\n"
                                      "90be2c7d1a3f5e48\tcommon_voice_en_2.wav\tGood day.\t3\n")
    store.create_dataset(ws.db, "cv")
    assert import_paths(ws, "cv", [cv.parent], ImportOptions(speaker="fallback"))["errors"] == []
    assert {n: l["speaker"] for n, l in _labels(ws, "cv").items()} == {
        "common_voice_en_1.wav": "4f1ad3c2b9e0", "common_voice_en_2.wav": "90be2c7d1a3f"}


def test_label_cli_sets_unsets_in_bulk_and_refuses_bad_syntax(ws, tmp_path, awb_wav, slt_wav):
    folder = tmp_path / "takes"
    folder.mkdir()
    for name, src in (("p225_001.wav", awb_wav), ("p225_002.wav", slt_wav)):
        shutil.copy(src, folder / name)
    data, sr = sf.read(awb_wav)
    sf.write(folder / "studio_take.wav", data[: sr * 2], sr)
    store.create_dataset(ws.db, "set")
    assert import_paths(ws, "set", [folder])["errors"] == []
    home = ws.root

    # the README's lines, run as written (the dataset there is called narrator)
    readme = [line.split("  #")[0].strip() for line in (REPO / "README.md").read_text().splitlines()
              if re.match(r"bark-studio dataset (label|tags) ", line)]
    assert len(readme) >= 2
    store.create_dataset(ws.db, "narrator")
    assert import_paths(ws, "narrator", [folder / "p225_001.wav"])["errors"] == []
    for line in readme:
        run(home, *shlex.split(line)[1:])
    assert store.get_dataset(ws.db, "narrator")["tags"] == ["thunder", "rain intensifies"]
    assert list(_labels(ws, "narrator").values())[0]["speaker"] == "alice"

    # bulk by glob: both p225 clips; the studio take keeps its labels
    run(home, "dataset", "label", "set", "p225_*", "accent=0.3", "emotion=angry")
    take = next(c for c in store.list_clips(ws.db, "set") if c["name"].endswith("studio_take.wav"))
    run(home, "dataset", "label", "set", str(take["id"]), "speaker=bob", "emotion=calm", "accent=1")
    run(home, "dataset", "label", "set", "p225_002.wav", "--unset", "emotion")
    listing = json.loads(run(home, "dataset", "label", "set", "--json").stdout)
    assert {r["name"].rsplit("/", 1)[-1]: r["labels"] for r in listing} == {
        "p225_001.wav": {"speaker": "p225", "accent": 0.3, "emotion": "angry"},
        "p225_002.wav": {"speaker": "p225", "accent": 0.3},
        "studio_take.wav": {"speaker": "bob", "emotion": "calm", "accent": 1.0}}

    # bad input: one line naming the clip and the label; nothing changes
    before = _labels(ws, "set")
    proc = cli("dataset", "label", "set", "p225_002.wav", "accent=high", home=home, check=False)  # a real terminal
    assert proc.returncode == 1 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert re.fullmatch(r"error: clip \d+ \(takes/p225_002.wav\): accent=high is not a number, but accent is numeric "
                        r"in set \(accent=0.3 on clip \d+ \(takes/p225_001.wav\)\)\n", proc.stderr), proc.stderr
    for args, expected in (
        (["p225_002.wav", "=3"], "p225_002.wav): label '=3': the name must be"),
        (["p225_*", "accent="], "2 clips of set (takes/p225_001.wav, takes/p225_002.wav): label 'accent=' has no value (to remove a label, use --unset accent)"),
        (["accent", "emotion=sad"], "no clip of set matches 'accent' (give clip ids or name globs such as 'p225_*'; "
                                    "a label is written name=value)"),
        (["1", "--unset", "bad name"], "--unset 'bad name': not a label name"),
    ):
        message = run(home, "dataset", "label", "set", *args, code=1).stderr
        assert expected in message and len(message.splitlines()) == 1, message
    message = run(home, "dataset", "import", "set", str(awb_wav), "--label", "accent=strong", code=1).stderr
    assert "--label: accent=strong is not a number, but accent is numeric in set (accent=0.3 on clip" in message
    assert _labels(ws, "set") == before


def test_report_shows_label_distributions_tags_and_warnings(ws, tmp_path, awb_wav, slt_wav):
    long_take = tmp_path / "long_take.wav"  # over a minute, so one value clears the threshold
    rng = np.random.default_rng(0)
    speech, sr = sf.read(awb_wav)
    sf.write(long_take, np.tile(speech, int(LABEL_MIN_SECONDS // (len(speech) / sr)) + 2) + rng.normal(0, 1e-3, 1), sr)
    store.create_dataset(ws.db, "r")
    import_paths(ws, "r", [long_take, awb_wav, slt_wav])
    ids = {c["name"].rsplit("/", 1)[-1]: c["id"] for c in store.list_clips(ws.db, "r")}
    from studio.datasets.labels import set_labels
    from studio.datasets.tags import update_tags

    set_labels(ws.db, "r", ["long_take.wav"], ["speaker=alice", "accent=0", "emotion=angry"])
    set_labels(ws.db, "r", ["awb*"], ["speaker=bob", "accent=1"])
    set_labels(ws.db, "r", ["slt*"], ["speaker=alice", "accent=0.5"])
    update_tags(ws.db, "r", add=["thunder", "[rain intensifies]", "wind"])
    store.set_transcript(ws.db, ids["long_take.wav"], "[thunder] The storm is coming [rain intensifies]")
    store.set_transcript(ws.db, ids["awb_arctic_a0007.wav"], "[thunder] again and [thunder] [boom]")

    report = build_report(ws.db, "r")
    speaker = report["labels"]["speaker"]
    assert speaker["kind"] == "categorical" and speaker["values"]["alice"]["clips"] == 2
    assert speaker["values"]["alice"]["seconds"] > LABEL_MIN_SECONDS > speaker["values"]["bob"]["seconds"] > 0
    accent = report["labels"]["accent"]
    assert (accent["kind"], accent["min"], accent["max"]) == ("numeric", 0.0, 1.0)
    assert [b["clips"] for b in accent["bins"]] == [1, 0, 1, 0, 1]
    assert report["labels"]["emotion"]["unlabelled_clips"] == 2
    warnings = "\n".join(report["warnings"])
    assert re.search(r"label speaker=bob has \d+ s of audio \(1 clip\(s\)\), under the 60 s", warnings)
    assert "speaker=alice" not in warnings and "at its low end" not in warnings
    assert "label accent has" in warnings and "at its high end (0.8-1)" in warnings
    assert "label emotion is missing on 2 clip(s)" in warnings

    tags = report["tags"]
    assert (tags["[thunder]"]["count"], tags["[thunder]"]["clips"], tags["[thunder]"]["declared"]) == (3, 2, True)
    assert {e["clip_id"] for e in tags["[thunder]"]["examples"]} == {ids["long_take.wav"], ids["awb_arctic_a0007.wav"]}
    assert tags["[wind]"]["clips"] == 0 and tags["[boom]"]["declared"] is False
    assert "declared tag [wind] appears in 0 clip(s)" in warnings

    linted = {o["clip_id"]: [i["message"].split(":")[0] for i in o["issues"] if i["code"] == "unknown-tag"]
              for o in json.loads(run(ws.root, "dataset", "lint", "r", "--json").stdout)}
    assert linted.get(ids["long_take.wav"], []) == [] and linted[ids["awb_arctic_a0007.wav"]] == ["unknown tag [boom]"]
    out = run(ws.root, "dataset", "show", "r").stdout
    assert "Label speaker (categorical): alice 2 clip(s)" in out and "Tag [thunder]: 3 time(s) in 2 clip(s), e.g." in out


def test_linter_accepts_declared_tags_and_flags_the_rest():
    declared = ["thunder", "rain intensifies"]
    text = "[thunder] The storm is coming [rain intensifies] [laughs] [boom]"
    codes = {(i["code"], i["message"].split(":")[0]) for i in lint(text, declared=declared)}
    assert codes == {("unknown-tag", "unknown tag [boom]")}
    assert any(i["code"] == "tag-case" and "[Thunder] is written [thunder] in the dataset's declared tags" in i["message"]
               for i in lint("[Thunder] outside", declared=declared))
    undeclared = {i["message"].split(":")[0] for i in lint(text) if i["code"] == "unknown-tag"}
    assert undeclared == {"unknown tag [thunder]", "unknown tag [rain intensifies]", "unknown tag [boom]"}


def test_migration_0009_keeps_a_workspace_made_before_it(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from studio.datasets.models import Clip
    from studio.db import Database

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = db.alembic_config()
    command.upgrade(cfg, "0007_clip_states")
    command.upgrade(cfg, "0008_worker_gpus")  # every table as it was before 0009
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO datasets (id, name, description, settings, allow_free_tags, created_at) "
                          "VALUES (1, 'old', '', '{\"target_lufs\": -18}', 1, '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO clips (id, dataset_id, name, sha256, blob, format, sample_rate, channels, "
                          "duration, source, licence, speaker, provenance, trim_history, peaks, created_at) VALUES "
                          "(7, 1, 'p225_001.wav', 'ab', 'blobs/ab.wav', 'WAV', 16000, 1, 3.5, 's', 'CC0', 'p225', "
                          "'human', '[[null, 2.0]]', '[0.1]', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO transcripts (clip_id, text, source, words, updated_at) "
                          "VALUES (7, 'Please call Stella.', 'human', '[]', '2026-01-01 00:00:00')"))
    db.upgrade()
    clip = store.get_clip(db, 7)
    assert (clip["speaker"], clip["labels"], clip["trim_history"], clip["licence"]) == ("p225", {}, [[None, 2.0]], "CC0")
    assert clip["text"] == "Please call Stella."  # a table rebuild would have cascaded it away
    assert store.get_dataset(db, "old")["tags"] == [] and store.get_dataset(db, "old")["settings"] == {"target_lufs": -18}
    with db.read() as s:
        assert clip_labels(s.get(Clip, 7)) == {"speaker": "p225"}
    db.dispose()
