"""The ground everything stands on: workspace, database, migrations, jobs, the queue, the CLI."""
from __future__ import annotations

import sqlite3
import threading

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from studio import jobs
from studio.schema import metadata
from studio.workspace import Workspace
from tests.conftest import cli
from workers.dispatch import submit, wait_for


def test_workspace_comes_from_home_flag_or_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BARK_STUDIO_HOME", str(tmp_path / "from-env"))
    assert Workspace.resolve().root == (tmp_path / "from-env").resolve()
    assert Workspace.resolve(tmp_path / "flag").root == (tmp_path / "flag").resolve()
    proc = cli("--home", str(tmp_path / "cli-home"), "jobs", "list", "--json", home=tmp_path / "ignored")
    assert proc.stdout.strip() == "[]"
    assert (tmp_path / "cli-home" / "studio.db").exists()
    assert not (tmp_path / "ignored").exists()


def test_database_is_wal_with_foreign_keys_and_full_sync(ws):
    with ws.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_migrations_build_exactly_the_orm_schema(ws):
    with ws.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_write_transactions_begin_immediate_so_contention_never_says_locked(ws):
    """Many threads doing read-then-write on the same row: all succeed, none 'database is locked'."""
    job_id = jobs.create_job(ws.db, "noop", {"n": 0})
    errors: list[Exception] = []

    def bump():
        try:
            for _ in range(20):
                with ws.db.write() as s:
                    job = s.get(jobs.Job, job_id)
                    job.params = {"n": job.params["n"] + 1}
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == []
    assert jobs.get_job(ws.db, job_id)["params"]["n"] == 160


def test_a_job_is_claimed_once(ws):
    job_id = jobs.create_job(ws.db, "noop")
    first = jobs.claim(ws.db, job_id, "a")
    assert first and jobs.claim(ws.db, job_id, "b") is None
    assert jobs.get_job(ws.db, job_id)["worker_id"] == "a"


def test_wait_without_worker_runs_the_job_here(ws):
    job = submit(ws, "noop", wait=True)
    assert job["status"] == "succeeded" and job["result"] == {"pong": True}
    assert job["worker_id"] == "inline"


def test_real_consumer_runs_queued_jobs(ws):
    from tests.conftest import Consumer

    job = submit(ws, "noop")  # queued before the consumer starts: a running one could take it at once
    assert job["status"] == "queued"
    c = Consumer(ws)
    try:
        done = wait_for(ws, job["id"], poll=0.2, timeout=120)
    finally:
        c.stop()
    assert done["status"] == "succeeded"
    assert done["worker_id"] not in (None, "inline")


def test_unknown_job_kind_is_refused_before_a_row_is_written(ws):
    import pytest
    from studio.errors import UserError

    with pytest.raises(UserError, match="unknown job kind 'bogus'"):
        submit(ws, "bogus")
    assert jobs.list_jobs(ws.db) == []


def test_backup_uses_sqlite_backup_api_and_is_consistent(ws, tmp_path):
    for _ in range(5):
        jobs.create_job(ws.db, "noop")
    proc = cli("backup", str(tmp_path / "bk"), "--json", home=ws.root)
    import json

    path = json.loads(proc.stdout)["backup"]
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("select count(*) from jobs").fetchone()[0] == 5


def test_user_errors_are_one_line(ws):
    proc = cli("jobs", "show", "999", home=ws.root, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: no job 999"


def test_store_is_content_addressed_and_never_overwrites(ws, awb_wav):
    digest, path = ws.store_file(awb_wav)
    again, path2 = ws.store_file(awb_wav)
    assert digest == again and path == path2 and path.read_bytes() == awb_wav.read_bytes()
    import pytest
    from studio.errors import UserError

    with pytest.raises(UserError):
        ws.inside("../outside")


def test_stopping_serve_stops_its_embedded_worker(ws):
    """Ctrl-C on `bark-studio serve` must not leave its worker running on its own."""
    import os
    import signal
    import time

    from tests.conftest import Server

    server = Server(ws, embedded_workers=1)
    try:
        deadline = time.monotonic() + 120
        while not jobs.live_workers(ws.db):
            assert time.monotonic() < deadline, "the embedded worker never came up"
            time.sleep(0.5)
        (worker_id,) = jobs.live_workers(ws.db)
        pid = int(worker_id.rsplit(":", 1)[1])
        # Ctrl-C reaches the terminal's whole process group; the server may then die before its
        # exit hooks run (killed here), so the worker must have had the signal itself.
        os.killpg(server.proc.pid, signal.SIGINT)
        server.proc.kill()
    finally:
        server.stop()
    deadline = time.monotonic() + 60
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split()[2] == "Z":  # exited, waiting to be reaped
                break
        assert time.monotonic() < deadline, "the embedded worker outlived the studio"
        time.sleep(0.5)
