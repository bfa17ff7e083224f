"""Fifty raters voting at once through the real web server on PostgreSQL, while a job process
writes its progress to the same database: every vote acknowledged is stored, none refused."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bench.listening_load import prepare, run_load, start_progress_writer, stop_progress_writer
from studio import jobs
from studio.listening.tables import ListenVote
from tests.conftest import Server

RATERS = 50
VOTES_EACH = 4  # 200 votes: enough to overlap every rater on 2 cores, short enough for `make test`


@pytest.mark.slow
def test_fifty_raters_lose_no_vote_on_postgresql(ws, postgres_url, awb_wav):
    public_id, tokens, _ = prepare(ws, VOTES_EACH, RATERS, speech=awb_wav)
    server = Server(ws)  # inherits BARK_STUDIO_DATABASE_URL
    try:
        writer = start_progress_writer(ws.root)  # a job's progress writes compete for the write lock
        load = run_load(server.url, public_id, tokens, VOTES_EACH)
        progress_steps = jobs.get_job(ws.db, writer[1])["step"]
        stop_progress_writer(writer, ws)
    finally:
        server.stop()
    assert load["errors"] == []
    assert load["acked"] == RATERS * VOTES_EACH
    with ws.db.read() as s:
        assert s.scalar(select(func.count()).select_from(ListenVote)) == RATERS * VOTES_EACH
    assert progress_steps > 0
    print(f"50 raters on PostgreSQL: {load['acked']} votes in {load['wall_s']:.1f} s, p50 {load['p50_ms']:.0f} ms, "
          f"p99 {load['p99_ms']:.0f} ms; progress writes meanwhile {progress_steps}")
