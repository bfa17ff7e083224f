"""jobs, job metrics and workers

Revision ID: 0001_jobs
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "0001_jobs"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("step", sa.Integer()),
        sa.Column("total_steps", sa.Integer()),
        sa.Column("epoch", sa.Float()),
        sa.Column("eta_seconds", sa.Float()),
        sa.Column("message", sa.String(500), nullable=False),
        sa.Column("log_tail", sa.Text(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("error_detail", sa.Text()),
        sa.Column("failure_reason", sa.String(40)),
        sa.Column("result", sa.JSON()),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_token", sa.String(32)),
        sa.Column("worker_id", sa.String(120)),
        sa.Column("queue_task_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("heartbeat_at", sa.DateTime()),
        sa.Column("finished_at", sa.DateTime()),
    )
    op.create_index("ix_jobs_kind", "jobs", ["kind"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_table(
        "job_metrics",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_job_metrics_job_name_step", "job_metrics", ["job_id", "name", "step"])
    op.create_table(
        "workers",
        sa.Column("id", sa.String(120), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime()),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_index("ix_job_metrics_job_name_step", "job_metrics")
    op.drop_table("job_metrics")
    op.drop_index("ix_jobs_status", "jobs")
    op.drop_index("ix_jobs_kind", "jobs")
    op.drop_table("jobs")
