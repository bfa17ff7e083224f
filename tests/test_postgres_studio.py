"""The multi-host recipe on a real PostgreSQL server (Debian's, started by the tests in a temp
folder): migrations, the write path's serialisation, and the job rows the workers share."""
from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from studio import jobs
from studio.schema import metadata


def test_the_workspace_database_is_postgresql(ws, postgres_url):
    assert ws.db.engine.dialect.name == "postgresql"
    with ws.db.read() as s:
        assert s.connection().exec_driver_sql("select current_database()").scalar() == postgres_url.rsplit("/", 1)[1]


def test_migrations_build_exactly_the_orm_schema_on_postgresql(ws, postgres_url):
    with ws.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"models and migrations disagree on PostgreSQL: {diff}"


def test_concurrent_read_then_write_loses_no_update_on_postgresql(ws, postgres_url):
    """Eight threads each read a row and write it back bumped, twenty times: all 160 bumps land.
    Under PostgreSQL's default READ COMMITTED without the write lock, bumps are lost."""
    job_id = jobs.create_job(ws.db, "noop", {"n": 0})
    errors: list[Exception] = []
    start = threading.Barrier(8)

    def bump():
        try:
            start.wait()
            for _ in range(20):
                with ws.db.write() as s:
                    job = s.get(jobs.Job, job_id)
                    n = job.params["n"]
                    s.connection().exec_driver_sql("select pg_sleep(0.001)")  # widen the read-write gap
                    job.params = {"n": n + 1}
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == []
    assert jobs.get_job(ws.db, job_id)["params"]["n"] == 160


def test_a_job_is_claimed_once_across_racing_workers(ws, postgres_url):
    job_id = jobs.create_job(ws.db, "noop")
    won: list[str] = []
    start = threading.Barrier(6)

    def race(name):
        start.wait()
        if jobs.claim(ws.db, job_id, name):
            won.append(name)

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(won) == 1 and jobs.get_job(ws.db, job_id)["worker_id"] == won[0]
