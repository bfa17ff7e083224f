"""The shared job view shows a running job's newest log lines, and drops them once it ended."""
from __future__ import annotations

from studio import jobs
from studio.ui import job_view


def test_running_job_shows_its_last_log_lines_as_they_come(ws):
    job_id = jobs.create_job(ws.db, "train", {})
    ctx = jobs.JobContext(db=ws.db, job_id=job_id, run_token=jobs.claim(ws.db, job_id, "test:1"), params={},
                          workspace=ws)
    for k in range(1, 31):
        ctx.log(f"line {k:02d}")
    text = job_view.summary_md(jobs.get_job(ws.db, job_id))
    shown = [line for line in text.splitlines() if "] line " in line]
    assert [line.rsplit(" ", 1)[1] for line in shown] == [f"{k:02d}" for k in range(11, 31)]

    ctx.log("step 31 ```` ends here?")  # a fence inside a line stays inside the block
    text = job_view.summary_md(jobs.get_job(ws.db, job_id))
    assert "line 11" not in text and "step 31" in text and text.rstrip().endswith("````")
    assert text.count("````") == 2

    jobs.finish(ws.db, job_id, ctx.run_token, "succeeded", result={})
    assert "line 30" not in job_view.summary_md(jobs.get_job(ws.db, job_id))
