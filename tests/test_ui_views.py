"""How jobs and their curves read in the studio: numeric plot axes whatever the rows hold,
progress that only moves forward within a named phase, ended jobs that say how they ended."""
from __future__ import annotations

import gradio as gr

from studio import jobs
from studio.ui import job_view


def _axis_types(frame, y: str, color: str | None = None) -> dict:
    return gr.LinePlot(x="step", y=y, color=color).postprocess(frame).datatypes


def test_training_plots_have_numeric_axes_before_and_during_a_run():
    empty = job_view.loss_frame({})  # a job reopened before its first step: no rows at all
    assert _axis_types(empty, "loss", "series")["loss"] == "quantitative"
    mixed = job_view.loss_frame({"loss": [(1, 2.5), (2, None), (3, 2.0)], "val_loss": [(2, 2.4)]})
    assert _axis_types(mixed, "loss", "series") == {"step": "quantitative", "loss": "quantitative",
                                                     "series": "nominal"}
    assert mixed["loss"].tolist() == [2.5, 2.0, 2.4]
    for name in ("lr", "grad_norm"):
        assert _axis_types(job_view.metric_frame({}, name), name)[name] == "quantitative"


def _running(ws) -> jobs.JobContext:
    job_id = jobs.create_job(ws.db, "train", {})
    token = jobs.claim(ws.db, job_id, "test:1")
    return jobs.JobContext(db=ws.db, job_id=job_id, run_token=token, params={}, workspace=ws)


def test_progress_moves_forward_within_a_phase_and_names_it(ws):
    ctx = _running(ws)
    ctx.progress(message="tokenizing what is not yet tokenized", phase="tokenizing")
    ctx.progress(step=7, total=7, message="all cached")
    row = jobs.get_job(ws.db, ctx.job_id)
    assert row["progress"] == 1.0 and row["message"] == "tokenizing: all cached"
    ctx.progress(message="loading tiny", phase="loading model")
    row = jobs.get_job(ws.db, ctx.job_id)
    assert row["message"] == "loading model: loading tiny" and row["step"] is None
    seen = []
    for step in (1, 2, 3):
        ctx.progress(step=step, total=8, phase="training", message=f"step {step}/8")
        seen.append(jobs.get_job(ws.db, ctx.job_id)["progress"])
    ctx.progress(0.1, phase="training")  # a late, lower report does not pull the bar back
    seen.append(jobs.get_job(ws.db, ctx.job_id)["progress"])
    assert seen == sorted(seen) and seen[-1] == 3 / 8
    assert "training" in job_view.summary_md(jobs.get_job(ws.db, ctx.job_id))


def test_ended_jobs_say_how_they_ended_not_a_stale_percent_or_step(ws):
    failed = _running(ws)
    failed.progress(step=7, total=7, message="tokenized a.wav", phase="tokenizing")
    jobs.finish(ws.db, failed.job_id, failed.run_token, "failed", error="boom")
    text = job_view.summary_md(jobs.get_job(ws.db, failed.job_id))
    assert "**failed**" in text and "100%" not in text and "7/7" not in text
    assert "stopped while tokenizing" in text

    sweep = _running(ws)
    sweep.progress(step=2, total=4, message="generating outputs 3-4 of 4", phase="generating")
    jobs.finish(ws.db, sweep.job_id, sweep.run_token, "succeeded", result={})
    row = jobs.get_job(ws.db, sweep.job_id)
    text = job_view.summary_md(row)
    assert "**succeeded**" in text and "step 2/4" not in text and row["step"] == 4
    assert "generating outputs" not in text and "_finished in " in text  # its end state, not a stale note


def test_the_loudness_histogram_reads_plain_numbers():
    from matplotlib.figure import Figure

    from studio.datasets.report import histogram_figure

    fig = histogram_figure(Figure, "Loudness (LUFS)", [-20.0, -20.0, -20.0001])  # normalised: all alike
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ax.xaxis.get_offset_text().get_text() == "", ax.xaxis.get_offset_text().get_text()
    assert labels and all("e" not in t for t in labels) and any(t.replace("\u2212", "-") == "-20.0" for t in labels), labels


def test_the_learning_rate_axis_reads_small_rates_with_si_prefixes(ws):
    """Vega-Lite's default axis labels printed 2e-4 as 0.000000; d3's SI format writes it as 200µ."""
    import gradio as gr

    from studio.ui import train_tab

    with gr.Blocks() as page:
        train_tab.build(ws)
    (lr_plot,) = [b for b in page.blocks.values() if getattr(b, "elem_id", None) == "train-lr-plot"]
    assert lr_plot.y_axis_format == "~s" and "µ = 1e-6" in lr_plot.title
