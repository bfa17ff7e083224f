"""Listening sessions on a real SQLite file with real speech: blind loudness-matched stimuli, stored
randomised assignments, votes and every refusal, results with screening, and the CLI."""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select, update

from studio.db import utcnow
from studio.listening import audio, results, sessions, votes
from studio.listening.sessions import SystemSource
from studio.listening.tables import ListenAssignment, ListenRater, ListenStimulus, ListenSystem, ListenVote
from studio.listening.votes import Refused
from tests.conftest import cli
from tests.listening_support import STEM, SYSTEM_NAMES, complete_rater, later, make_folders, played


def _systems(folders, reference_last=True):
    names = list(folders)
    return [SystemSource(n, folders[n], reference=reference_last and n == names[-1]) for n in names]


def _opaque_to_system(ws, session_id) -> dict[str, tuple[str, str]]:
    with ws.db.read() as s:
        rows = s.execute(select(ListenStimulus.opaque_id, ListenSystem.name, ListenStimulus.role)
                         .join(ListenSystem, ListenSystem.id == ListenStimulus.system_id)
                         .where(ListenStimulus.session_id == session_id)).all()
    return {o: (n, r) for o, n, r in rows}


def test_stimuli_are_blind_loudness_matched_and_bad_files_are_named(ws, tmp_path, awb_wav, slt_wav):
    folders = make_folders(tmp_path / "src", awb_wav, n_items=4)
    first = folders[SYSTEM_NAMES[0]]
    (first / f"{STEM}09.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # corrupt, in one system only
    for f in folders.values():
        if f != first:
            sf.write(f / f"{STEM}09.wav", np.zeros(8000) + 0.1, 16000)
    (folders[SYSTEM_NAMES[1]] / "only_here.wav").write_bytes((first / f"{STEM}00.wav").read_bytes())

    made = sessions.create_session(ws, name="blind", systems=_systems(folders), n_gold=1, seed=7,
                                   voice_reference=slt_wav, test_type="ab", question="similar",
                                   voice_label="the speaker of the reference clip")
    assert made["n_items"] == 4
    assert made["question"] == "Which sounds more like the speaker of the reference clip?"
    assert any(f"{first / STEM}09.wav: corrupt or unreadable WAV audio" in n for n in made["notes"]), made["notes"]
    assert any("only_here" in n for n in made["notes"])

    with ws.db.read() as s:
        stimuli = s.scalars(select(ListenStimulus).where(ListenStimulus.session_id == made["id"])).all()
    assert {st.role for st in stimuli} == {"test", "trap", "voice_reference"}
    assert len([st for st in stimuli if st.role == "test"]) == 4 * 3
    levels = []
    for st in stimuli:
        path = ws.root / st.path
        data = path.read_bytes()
        assert audio.wav_chunks(data) == ["fmt ", "data"]  # no LIST/INFO/bext metadata
        assert re.fullmatch(r"[0-9a-f]{24}\.wav", path.name) and re.fullmatch(r"[0-9a-f]{32}", st.opaque_id)
        x, sr = sf.read(io.BytesIO(data))
        assert sr == 24000 and x.ndim == 1
        levels.append(audio.loudness_lufs(x, sr))
        for secret in (*SYSTEM_NAMES, STEM, str(tmp_path)):
            assert secret.encode() not in data
    # Sources differ by 12 dB and in colour; every stimulus now sits at the session's common loudness.
    assert max(levels) - min(levels) < 0.3, levels
    assert abs(np.mean(levels) - made["target_lufs"]) < 0.3
    assert len({st.opaque_id for st in stimuli}) == len(stimuli)



def test_stereo_44k_and_short_clips_become_mono_at_the_session_rate_and_loudness(ws, tmp_path, awb_wav):
    import pyloudnorm
    import soxr

    folders = make_folders(tmp_path / "src", awb_wav, n_items=3, names=SYSTEM_NAMES[:2])
    first, second = folders[SYSTEM_NAMES[0]], folders[SYSTEM_NAMES[1]]
    x, sr = sf.read(str(first / f"{STEM}00.wav"))
    y = soxr.resample(x, sr, 44_100)
    sf.write(first / f"{STEM}00.wav", np.stack([y, 0.3 * y], axis=1), 44_100)  # (T, 2), channels unequal
    sf.write(second / f"{STEM}02.wav", x[:int(0.3 * sr)], sr)  # under BS.1770's 400 ms block

    made = sessions.create_session(ws, name="formats", systems=_systems(folders, False), seed=3)
    assert made["n_items"] == 3 and made["target_lufs"] == audio.DEFAULT_TARGET_LUFS == -23.0, made["notes"]

    def stimulus(folder, stem):
        with ws.db.read() as s:
            path = s.scalar(select(ListenStimulus.path).where(ListenStimulus.source_path == str((folder / stem).resolve())))
        stim, stim_sr = sf.read(str(ws.root / path))
        assert stim_sr == 24_000 and stim.ndim == 1
        return stim

    stim = stimulus(first, f"{STEM}00.wav")
    assert abs(len(stim) - len(y) * 24_000 / 44_100) <= 2
    lufs = pyloudnorm.Meter(24_000).integrated_loudness(stim)  # an independent meter
    assert abs(lufs - made["target_lufs"]) < 0.1, lufs
    short = stimulus(second, f"{STEM}02.wav")  # measured tiled to one gating block
    assert abs(len(short) - 0.3 * 24_000) <= 2
    lufs = pyloudnorm.Meter(24_000).integrated_loudness(np.tile(short, 2))
    assert abs(lufs - made["target_lufs"]) < 0.1, lufs

def test_each_raters_trials_are_randomised_stored_and_cover_the_pool(ws, tmp_path, awb_wav):
    folders = make_folders(tmp_path / "src", awb_wav, n_items=4)  # 3 systems x 4 items -> 12 A/B pairs
    made = sessions.create_session(ws, name="plan", systems=_systems(folders), trials_per_rater=6, n_gold=2, seed=11)
    links = sessions.add_raters(ws, made["id"], 4)
    assert len({x["token"] for x in links}) == 4
    with ws.db.read() as s:
        rows = s.scalars(select(ListenAssignment).where(ListenAssignment.session_id == made["id"])
                         .order_by(ListenAssignment.rater_id, ListenAssignment.position)).all()
        hashes = s.scalars(select(ListenRater.token_hash)).all()
    by_rater: dict[int, list] = {}
    for a in rows:
        by_rater.setdefault(a.rater_id, []).append(a)
    assert all(len(v) == 8 and sum(a.is_gold for a in v) == 2 for v in by_rater.values())
    assert all(a.expected in ("A", "B") for a in rows if a.is_gold)
    pair = lambda a: (a.item_id, frozenset((a.stimulus_a_id, a.stimulus_b_id)))  # noqa: E731
    r1, r2 = [{pair(a) for a in v if not a.is_gold} for v in list(by_rater.values())[:2]]
    assert len(r1 | r2) == 12  # consecutive raters take consecutive shares of the shuffled pool
    assert {a.swapped for a in rows if not a.is_gold} == {True, False}  # sides randomised
    assert len({tuple(a.is_gold for a in v) for v in by_rater.values()}) > 1  # order differs per rater
    # Only hashes of the tokens are stored.
    assert not any(x["token"][16:] in h for x in links for h in hashes)
    assert {h for h in hashes} == {sessions.hash_secret(x["token"][16:]) for x in links}


def test_votes_are_idempotent_and_every_refusal_holds(ws, tmp_path, awb_wav):
    folders = make_folders(tmp_path / "src", awb_wav, n_items=3, names=SYSTEM_NAMES[:2])
    made = sessions.create_session(ws, name="refusals", systems=_systems(folders, False), trials_per_rater=3)
    other = sessions.create_session(ws, name="other", systems=_systems(folders, False), trials_per_rater=3)
    me, you = sessions.add_raters(ws, made["id"], 2)
    stranger = sessions.add_raters(ws, other["id"], 1)[0]
    pid = made["public_id"]

    def refused(status, fn, *args, **kw):
        with pytest.raises(Refused) as info:
            fn(*args, **kw)
        assert info.value.status == status, info.value.message
        return info.value.message

    with pytest.raises(Refused):
        votes.current_trial(ws.db, pid, me["token"])  # consent first
    votes.consent(ws.db, pid, me["token"])
    votes.consent(ws.db, pid, you["token"])
    trial = votes.current_trial(ws.db, pid, me["token"])["trial"]
    plays, listened = played(trial)
    vote = {"trial": trial["id"], "response": "A", "plays": plays, "listened": listened}

    refused(403, votes.record_vote, ws.db, pid, "0" * 16 + "x" * 43, vote)  # wrong token
    refused(403, votes.record_vote, ws.db, pid, me["token"][:16] + "y" * 43, vote)  # right selector, wrong secret
    refused(403, votes.record_vote, ws.db, pid, stranger["token"], vote)  # another session's rater
    refused(403, votes.record_vote, ws.db, other["public_id"], me["token"], vote)  # right token, other session
    refused(403, votes.record_vote, ws.db, pid, you["token"], vote, now=later())  # another rater's trial
    msg = refused(422, votes.record_vote, ws.db, pid, me["token"], {**vote, "listened": {"A": 0.1, "B": 0.1}},
                  now=later())
    assert "to the end" in msg
    refused(422, votes.record_vote, ws.db, pid, me["token"], {**vote, "plays": {"A": 1, "B": 0}}, now=later())
    refused(422, votes.record_vote, ws.db, pid, me["token"], vote)  # server clock: no time to have listened
    refused(422, votes.record_vote, ws.db, pid, me["token"], {**vote, "response": "none"}, now=later())  # not offered
    refused(422, votes.record_vote, ws.db, pid, me["token"], {**vote, "plays": "lots"}, now=later())

    first = votes.record_vote(ws.db, pid, me["token"], vote, now=later())
    again = votes.record_vote(ws.db, pid, me["token"], {**vote, "response": "B"}, now=later())
    assert not first["duplicate"] and again["duplicate"] and again["response"] == "A"
    assert first["progress"] == again["progress"] == {"done": 1, "total": 3}
    with ws.db.read() as s:
        assert s.scalar(select(func.count()).select_from(ListenVote)) == 1
        row = s.scalar(select(ListenVote))
    assert row.plays_a == 1 and row.listened_b_s == pytest.approx(listened["B"]) and row.server_elapsed_ms >= 59_000
    assert row.system_a_id != row.system_b_id and row.presented_at <= row.recorded_at

    with ws.db.write() as s:  # the link of `you` expires
        s.execute(update(ListenRater).where(ListenRater.id == you["rater_id"]).values(expires_at=utcnow() - timedelta(1)))
    assert "expired" in refused(403, votes.current_trial, ws.db, pid, you["token"])

    sessions.close_session(ws, made["id"])
    nxt = {"trial": "0" * 32, "response": "A", "plays": plays, "listened": listened}
    assert "closed" in refused(403, votes.record_vote, ws.db, pid, me["token"], nxt, now=later())
    with pytest.raises(Exception, match="closed"):
        sessions.add_raters(ws, made["id"], 1)


def test_results_screen_raters_and_exclusion_changes_the_scores(ws, tmp_path, awb_wav):
    folders = make_folders(tmp_path / "src", awb_wav, n_items=4, names=SYSTEM_NAMES[:2])
    made = sessions.create_session(ws, name="mos", systems=_systems(folders, False), test_type="mos",
                                   trials_per_rater=8, n_gold=2, seed=3)
    owner = _opaque_to_system(ws, made["id"])
    good, bad = SYSTEM_NAMES[:2]
    links = sessions.add_raters(ws, made["id"], 5)

    def honest(rater):
        def answer(i, trial):
            name, role = owner[trial["stimuli"][0]["url"].rsplit("/", 1)[1]]
            if role == "trap":
                return "1"
            return str((5, 4)[(i + rater) % 2]) if name == good else str((2, 1)[(i + rater) % 2])
        return answer

    for k, link in enumerate(links[:4]):
        complete_rater(ws.db, made["public_id"], link["token"], honest(k))
    complete_rater(ws.db, made["public_id"], links[4]["token"], lambda i, t: "5")  # fails traps, never varies

    res = results.session_results(ws, made["id"], n_boot=300)
    flagged = {r["rater_id"] for r in res["screening"] if r["flags"]}
    assert flagged == {links[4]["rater_id"]}
    worst = next(r for r in res["screening"] if r["rater_id"] == links[4]["rater_id"])
    assert worst["trap_failures"] == 2 and worst["near_constant"]
    assert res["n_votes"] == 5 * 8 and res["n_votes_all"] == 5 * 10

    clean = results.session_results(ws, made["id"], exclude_flagged=True, n_boot=300)
    mos = {m["system"]: m for m in clean["mos"]}
    assert clean["n_votes"] == 4 * 8 and clean["excluded_raters"] == [links[4]["rater_id"]]
    # Honest raters alternate 5/4 and 2/1 (by trial index), so the means are near 4.5 and 1.5.
    assert 4.0 <= mos[good]["mean"] <= 5.0 and 1.0 <= mos[bad]["mean"] <= 2.0
    assert mos[good]["ci_t"][0] < mos[good]["mean"] < mos[good]["ci_t"][1]
    assert mos[good]["ci_bootstrap"][0] <= mos[good]["mean"] <= mos[good]["ci_bootstrap"][1]
    hand = [v for v in _scores(ws, made["id"], good, exclude={links[4]["rater_id"]})]
    assert mos[good]["mean"] == pytest.approx(np.mean(hand)) and mos[good]["n"] == len(hand)
    assert all(p.endswith(".png") and open(p, "rb").read(4) == b"\x89PNG" for p in clean["plots"])

    sessions.set_excluded(ws, made["id"], [links[0]["rater_id"]])
    stored = results.session_results(ws, made["id"], plots=False, n_boot=100)
    assert stored["excluded_raters"] == [links[0]["rater_id"]]

    path = results.export_csv(ws, made["id"], tmp_path / "votes.csv")
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 50 and set(rows[0]) == set(results.CSV_COLUMNS)
    assert {r["system_a"] for r in rows} >= {good, bad}


def _scores(ws, session_id, system_name, exclude):
    with ws.db.read() as s:
        return s.scalars(select(ListenVote.score).join(ListenSystem, ListenSystem.id == ListenVote.system_a_id)
                         .where(ListenVote.session_id == session_id, ListenSystem.name == system_name,
                                ListenVote.is_gold.is_(False), ListenVote.rater_id.not_in(exclude))).all()


@pytest.mark.slow
def test_cli_creates_hands_out_links_reports_and_closes(ws, tmp_path, awb_wav):
    folders = make_folders(tmp_path / "src", awb_wav, n_items=3)
    a, b, ref = SYSTEM_NAMES
    made = json.loads(cli("listen", "create", "--name", "cli session", "--system", f"{a}={folders[a]}",
                          "--system", f"{b}={folders[b]}", "--reference", f"{ref}={folders[ref]}",
                          "--no-preference", "--trials", "4", "--gold", "1", "--seed", "5", "--json",
                          home=ws.root).stdout)
    assert made["allow_no_preference"] and [s["kind"] for s in made["systems"]] == ["system", "system", "reference", "trap"]
    proc = cli("listen", "raters", str(made["id"]), "--count", "3", "--base-url", "https://listen.example", home=ws.root)
    links = re.findall(r"https://listen\.example/listen/[0-9a-f]{24}/\S+", proc.stdout)
    assert len(links) == 3
    for k, link in enumerate(links):
        token = link.rsplit("/", 1)[1]
        complete_rater(ws.db, made["public_id"], token, lambda i, t: ("A", "B", "none")[(i + k) % 3])
    res = json.loads(cli("listen", "results", str(made["id"]), "--json", "--csv", str(tmp_path / "out.csv"),
                         "--bootstrap", "200", home=ws.root).stdout)
    assert res["n_votes"] == 12 and len(res["ab"]["pairs"]) == 3 and res["ab"]["bradley_terry"]
    assert res["ab"]["ties"] == sum(p["ties"] for p in res["ab"]["pairs"]) > 0
    assert (tmp_path / "out.csv").exists() and len(res["plots"]) == 2
    closed = json.loads(cli("listen", "close", str(made["id"]), "--json", home=ws.root).stdout)
    assert closed["status"] == "closed"


def test_bad_folders_are_named_in_one_clear_error(ws, tmp_path, awb_wav):
    from studio.errors import UserError

    folders = make_folders(tmp_path / "src", awb_wav, n_items=2, names=SYSTEM_NAMES[:2])
    with pytest.raises(UserError, match=r"nope: not a folder of audio files"):
        sessions.create_session(ws, name="x", systems=[SystemSource("a", tmp_path / "nope"),
                                                        SystemSource("b", folders[SYSTEM_NAMES[1]])])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"empty: holds no audio files"):
        sessions.create_session(ws, name="x", systems=[SystemSource("a", empty),
                                                        SystemSource("b", folders[SYSTEM_NAMES[1]])])
    with pytest.raises(UserError, match="needs a voice label"):
        sessions.create_session(ws, name="x", question="similar", systems=_systems(folders, False))


def test_listen_tab_handlers_create_from_workspace_folders_only(ws, awb_wav, tmp_path):
    import gradio as gr

    from studio.ui import listen_tab

    folders = make_folders(ws.generated_dir / "alice", awb_wav, n_items=2, names=SYSTEM_NAMES[:2])
    assert set(listen_tab.audio_folders(ws)) >= {ws.relative(f) for f in folders.values()}
    lines = "\n".join(f"{n} = {ws.relative(f)}" for n, f in folders.items())
    with pytest.raises(gr.Error, match="leaves the workspace"):
        listen_tab.create(ws, "x", f"a = {tmp_path}\nb = ../elsewhere", "", "A/B", "Which sounds more natural?",
                          "", "", False, 4, 0, None)
    update_, message = listen_tab.create(ws, "tab session", lines, "", "MOS", "Which sounds more natural?", "", "",
                                         False, 4, 1, 9)
    assert update_["value"] == 1 and "2 items" in message
    assert "tab session" in listen_tab.describe(ws, 1)[0]
    links = listen_tab.make_links(ws, 1, 2, 7, "https://ratings.example")
    assert links.count("https://ratings.example/listen/") == 2
    csv_path = listen_tab.export(ws, 1)
    assert open(csv_path).readline().startswith("vote_id,")
    listen_tab.close(ws, 1)
    assert sessions.get_session(ws, 1)["status"] == "closed"


@pytest.mark.slow
def test_generated_systems_come_from_real_generate_jobs(ws, tmp_path, awb_wav):
    """A system generated by the model core (tiny preset) through a real `generate` job, against a
    hidden reference folder whose files are named by prompt index (000, 001)."""
    from studio import jobs
    from workers.dispatch import submit

    ref = tmp_path / "real"
    ref.mkdir()
    x, sr = sf.read(str(awb_wav))
    for i in range(2):
        sf.write(ref / f"{i:03d}.wav", x[i * 8000:(i + 1) * 8000], sr)
    prompts = ["Hello there.", "Good morning to you."]
    job = submit(ws, "listening_stimuli", {
        "name": "generated", "test_type": "mos", "trials_per_rater": 4, "prompts": prompts, "generation_seed": 3,
        "systems": [{"name": "tiny_base", "generation": {"model": "tiny", "semantic_max_new_tokens": 16}},
                    {"name": "real", "folder": str(ref), "reference": True}]}, wait=True)
    assert job["status"] == "succeeded", job["error"]
    made = sessions.get_session(ws, job["result"]["session_id"])
    assert made["n_items"] == 2 and [s["name"] for s in made["systems"]] == ["tiny_base", "real"]
    gen_jobs = jobs.list_jobs(ws.db, kind="generate")
    assert len(gen_jobs) == 1 and gen_jobs[0]["status"] == "succeeded"
    assert gen_jobs[0]["params"]["texts"] == prompts and gen_jobs[0]["params"]["seed"] == 3
    from studio.listening.tables import ListenItem

    with ws.db.read() as s:
        items = s.scalars(select(ListenItem).where(ListenItem.session_id == made["id"]).order_by(ListenItem.key)).all()
    assert [(i.key, i.text, i.seed) for i in items] == [("000", prompts[0], 3), ("001", prompts[1], 3)]
