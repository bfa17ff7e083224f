"""The Listen tab's results: a table per system (MOS) or per pair (A/B) with its intervals and p,
and plots written under a name of the numbers they draw, so more votes always serve a new plot."""
from __future__ import annotations

import io

from sqlalchemy import select

from studio.listening import results, sessions
from studio.listening.sessions import SystemSource
from studio.listening.tables import ListenStimulus, ListenSystem
from studio.ui import listen_tab
from tests.listening_support import complete_rater, make_folders


def _system_of(ws, session_id) -> dict[str, str]:
    with ws.db.read() as s:
        return dict(s.execute(select(ListenStimulus.opaque_id, ListenSystem.name)
                              .join(ListenSystem, ListenSystem.id == ListenStimulus.system_id)
                              .where(ListenStimulus.session_id == session_id)).all())


def _side_of(system_of, name):
    """An answer function choosing the side that holds system `name`."""
    def answer(i, trial):
        return next(st["side"] for st in trial["stimuli"] if system_of[st["url"].rsplit("/", 1)[1]] == name)
    return answer


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_ab_table_and_a_new_plot_file_after_more_votes(ws, tmp_path, awb_wav):
    folders = make_folders(tmp_path / "src", awb_wav, names=("a", "b"), n_items=2, seconds=0.5)
    made = sessions.create_session(ws, name="ab", systems=[SystemSource(n, f) for n, f in folders.items()], n_gold=0)
    system_of = _system_of(ws, made["id"])
    first, second = sessions.add_raters(ws, made["id"], 2)
    complete_rater(ws.db, made["public_id"], first["token"], _side_of(system_of, "a"))

    text, _, table, plot, _ = listen_tab.show_results(ws, made["id"], [], False)
    assert "a vs b: 2-0" in text
    frame = table["value"]
    assert table["visible"] and list(frame.columns) == results.AB_TABLE_COLUMNS
    assert frame.values.tolist() == [["a vs b", "2-0-0", "1.00", "[0.16, 1.00]", "0.5"]]  # exact binomial, n = 2
    folder = ws.exports_dir / "listening" / f"session-{made['id']}"
    (folder / "ab.png").write_bytes(b"stale")  # a plot left by an older studio under the fixed name
    before = results.session_results(ws, made["id"], n_boot=100)["plots"]
    served_before = _png(plot["value"])

    complete_rater(ws.db, made["public_id"], second["token"], _side_of(system_of, "b"))
    text, _, table, plot, _ = listen_tab.show_results(ws, made["id"], [], False)
    assert "a vs b: 2-2" in text and table["value"].values.tolist()[0][:3] == ["a vs b", "2-2-0", "0.50"]
    after = results.session_results(ws, made["id"], n_boot=100)["plots"]
    assert after != before  # a new file name for new numbers; the old file and the fixed name are gone
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(p.rsplit("/", 1)[1] for p in after)
    assert _png(plot["value"]) != served_before
    assert results.session_results(ws, made["id"], n_boot=100)["plots"] == after  # same numbers, same file


def test_mos_table_per_system(ws, tmp_path, awb_wav):
    folders = make_folders(tmp_path / "src", awb_wav, names=("good", "bad"), n_items=2, seconds=0.5)
    made = sessions.create_session(ws, name="mos", systems=[SystemSource(n, f) for n, f in folders.items()],
                                   test_type="mos", trials_per_rater=4, n_gold=0)
    system_of = _system_of(ws, made["id"])
    for link in sessions.add_raters(ws, made["id"], 2):
        complete_rater(ws.db, made["public_id"], link["token"],
                       lambda i, t: "5" if system_of[t["stimuli"][0]["url"].rsplit("/", 1)[1]] == "good" else str(1 + i % 2))
    res = results.session_results(ws, made["id"], n_boot=200, plots=False)
    headers, rows = results.results_table(res)
    assert headers == results.MOS_TABLE_COLUMNS
    by_name = {r[0]: r for r in rows}
    good = next(m for m in res["mos"] if m["system"] == "good")
    assert by_name["good"][1:3] == [4, "5.00"] and by_name["bad"][1] == 4
    assert 1.0 <= float(by_name["bad"][2]) <= 2.0
    assert by_name["good"][4] == f"[{good['ci_bootstrap'][0]:.2f}, {good['ci_bootstrap'][1]:.2f}]"
    assert by_name["good"][3] == "[5.00, 5.00]"  # every rating 5: no spread


def test_ab_listen_tab_and_experiment_page_agree_with_the_votes(ws, tmp_path, awb_wav):
    """A rater who always picks lora, heard on side A in some trials and on side B in others: the
    Listen tab and the Experiments page both read lora winning every trial."""
    from studio.experiments import records
    from studio.ui import experiments_tab

    folders = make_folders(tmp_path / "src", awb_wav, names=("lora", "base"), n_items=4, seconds=0.5)
    made = sessions.create_session(ws, name="lora vs base", n_gold=0,
                                   systems=[SystemSource(n, f) for n, f in folders.items()])
    system_of = _system_of(ws, made["id"])
    pick_lora = _side_of(system_of, "lora")
    sides = []
    while set(sides) != {"A", "B"} and len(sides) < 40:  # each rater's sides are drawn at random: until both
        (rater,) = sessions.add_raters(ws, made["id"], 1)
        complete_rater(ws.db, made["public_id"], rater["token"], lambda i, t: sides.append(pick_lora(i, t)) or sides[-1])
    assert set(sides) == {"A", "B"}, sides  # lora was heard on both sides
    n = len(sides)

    text, _, table, _, _ = listen_tab.show_results(ws, made["id"], [], False)
    assert f"lora vs base: {n}-0" in text
    assert table["value"].values.tolist()[0][:3] == ["lora vs base", f"{n}-0-0", "1.00"]
    exp = records.create_experiment(ws, name="lora-vs-base")
    markdown, _ = experiments_tab.link(ws, exp["id"], str(made["id"]))
    assert f"lora vs base: lora won {n}, base won 0, ties 0; win rate 1" in markdown, markdown
