"""Votes survive SIGKILL: an acknowledged vote is committed (synchronous=FULL, WAL) before the
answer leaves the server, so killing the writer loses nothing and never corrupts the file."""
from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import threading
import time

import httpx
import pytest

from studio.listening import sessions
from studio.listening.sessions import SystemSource
from tests.conftest import Server
from tests.listening_support import later, make_folders


def _mos_session(ws, tmp_path, speech, n_items: int, n_raters: int) -> tuple[dict, list[str]]:
    folders = make_folders(tmp_path / "src", speech, names=("sys",), n_items=n_items, seconds=0.3, gains=(1.0,))
    made = sessions.create_session(ws, name="durable", systems=[SystemSource("sys", folders["sys"])],
                                   test_type="mos", trials_per_rater=n_items)
    return made, [r["token"] for r in sessions.add_raters(ws, made["id"], n_raters)]


def _check(db_path, acked: list[str]) -> int:
    con = sqlite3.connect(db_path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        stored = {row[0] for row in con.execute(
            "select a.opaque_id from listen_votes v join listen_assignments a on a.id = v.assignment_id")}
        lost = set(acked) - stored
        assert not lost, f"{len(lost)} acknowledged votes lost"
        return len(stored)
    finally:
        con.close()


def test_the_web_app_commits_votes_on_a_synchronous_full_connection(ws, tmp_path, awb_wav):
    """A vote through the rater routes, on the workspace opened as `bark-studio serve` opens it: the
    very connection that commits it runs synchronous=FULL in WAL mode (SIGKILL alone cannot tell
    FULL from NORMAL; a power cut can)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from studio.listening import web
    from studio.workspace import Workspace

    made, (token,) = _mos_session(ws, tmp_path, awb_wav, n_items=1, n_raters=1)
    served = Workspace.resolve(ws.root)  # the server's own workspace object, engine and pool
    app = FastAPI()
    web.install(app, served)
    committed = []
    event.listen(served.db.engine, "commit", lambda conn: committed.append(conn.connection.dbapi_connection))
    base = f"/listen/{made['public_id']}/{token}"
    with TestClient(app) as c:
        c.post(base + "/consent")
        trial = c.get(base + "/api/state").json()["trial"]
        d = {s["side"]: s["duration"] for s in trial["stimuli"]}
        time.sleep(sum(d.values()))  # the server refuses a vote before the samples could have played
        committed.clear()
        res = c.post(base + "/api/vote", json={"trial": trial["id"], "response": "4",
                                               "plays": {k: 1 for k in d}, "listened": d})
    assert res.status_code == 200, res.text
    assert committed, f"the vote was not committed through the server's engine: {res.text}"
    for connection in committed:
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    served.db.dispose()


def test_sigkill_of_the_web_server_right_after_acknowledged_votes_loses_nothing(ws, tmp_path, awb_wav):
    """Five raters vote through the real server; the server is SIGKILLed mid-stream, right after
    acknowledgements. Every vote a rater saw acknowledged is in the file, and the file is sound."""
    made, tokens = _mos_session(ws, tmp_path, awb_wav, n_items=20, n_raters=5)
    server = Server(ws)
    acked: list[str] = []
    lock = threading.Lock()
    first_acks = threading.Event()

    def rater(token: str) -> None:
        base = f"{server.url}/listen/{made['public_id']}/{token}"
        with httpx.Client(timeout=60) as c:  # a kill ends a request at once; load 8 only slows one
            try:
                c.post(base + "/consent")
                while True:
                    trial = c.get(base + "/api/state").json()["trial"]
                    if trial is None:
                        return
                    time.sleep(0.05)
                    d = {s["side"]: s["duration"] for s in trial["stimuli"]}
                    res = c.post(base + "/api/vote", json={"trial": trial["id"], "response": "4",
                                                           "plays": {k: 1 for k in d}, "listened": d})
                    if res.status_code == 200:
                        with lock:
                            acked.append(trial["id"])
                            if len(acked) >= 10:
                                first_acks.set()
            except httpx.HTTPError:
                return  # the server is gone

    threads = [threading.Thread(target=rater, args=(t,)) for t in tokens]
    [t.start() for t in threads]
    try:
        assert first_acks.wait(180), "no votes were acknowledged"
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
    finally:
        [t.join(30) for t in threads]
        server.stop()
    assert len(acked) >= 10
    assert _check(ws.db_path, acked) >= len(acked)


def _vote_writer(home: str, public_id: str, tokens: list[str], ack_fd: int) -> None:
    """Child process: vote through the real domain path (studio.listening.votes.record_vote) as fast
    as it can, writing each trial id to the pipe only after record_vote returned (acknowledged)."""
    from studio.db import Database
    from studio.listening import votes

    db = Database(f"sqlite:///{home}/studio.db")  # a fresh engine: none of the parent's connections
    votes.page_state(db, public_id, tokens[0])  # connected and warm
    os.write(ack_fd, b"ready\n")
    for token in tokens:
        page = votes.page_state(db, public_id, token)["page"]
        if page == "done":
            continue
        if page == "consent":
            votes.consent(db, public_id, token)
        while True:
            state = votes.current_trial(db, public_id, token)
            if state["done"]:
                break
            trial = state["trial"]
            d = {s["side"]: s["duration"] for s in trial["stimuli"]}
            votes.record_vote(db, public_id, token, {"trial": trial["id"], "response": "3",
                                                     "plays": {k: 1 for k in d}, "listened": d}, now=later())
            os.write(ack_fd, (trial["id"] + "\n").encode())
    os.write(ack_fd, b"done\n")  # every rater has voted: nothing left to acknowledge
    while True:
        time.sleep(1)


@pytest.mark.slow
def test_a_hundred_sigkills_during_vote_writes_leave_a_sound_file_and_every_acked_vote(ws, tmp_path, awb_wav):
    """100 SIGKILLs of a vote-writer process against one SQLite file. The writer is a forked child
    running the real vote path (the web route calls the same record_vote); forking keeps the 100
    cycles to seconds, where restarting the full web server 100 times would take many minutes. The
    web server itself is SIGKILLed in the test above."""
    made, tokens = _mos_session(ws, tmp_path, awb_wav, n_items=20, n_raters=60)
    ws.db.engine.dispose()  # no open connection crosses the fork
    fork = multiprocessing.get_context("fork")
    rng = random.Random(0)
    acked: list[str] = []
    for _ in range(100):
        read_fd, write_fd = os.pipe()
        child = fork.Process(target=_vote_writer, args=(str(ws.root), made["public_id"], tokens, write_fd))
        child.start()
        os.close(write_fd)
        data = b""
        # kill only once votes flow (its first acknowledgement, however slow a loaded box makes it),
        # at a random moment after that
        while data.count(b"\n") < 2 and b"done\n" not in data:
            chunk = os.read(read_fd, 65536)
            assert chunk, "the vote writer died before it acknowledged a vote"
            data += chunk
        time.sleep(rng.uniform(0.02, 0.2))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        while chunk := os.read(read_fd, 65536):
            data += chunk
        os.close(read_fd)
        lines = data.decode().split("\n")[:-1]  # a torn last line was never acknowledged
        acked += [line for line in lines if line not in ("ready", "done")]
    # Each kill lands 20-200 ms after an acknowledged vote, mostly mid-transaction (a vote takes tens
    # of ms: two fsynced commits).
    stored = _check(ws.db_path, acked)
    assert stored >= len(acked)
    print(f"\n100 SIGKILLs: {len(acked)} acknowledged votes, {stored} stored, integrity ok")
