"""experiments, sweeps, sweep outputs, emergent-behaviour log

Revision ID: 0006_experiments
Revises: 0005_listening
"""
from alembic import op
import sqlalchemy as sa

revision = "0006_experiments"
down_revision = "0005_listening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("hypothesis", sa.Text(), nullable=False),
        sa.Column("dataset", sa.String(200)),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column("prompts", sa.JSON(), nullable=False),
        sa.Column("listening_sessions", sa.JSON(), nullable=False),
        sa.Column("conclusion", sa.Text()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("concluded_at", sa.DateTime()),
    )
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.id", ondelete="SET NULL")),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="SET NULL")),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("space", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.JSON()),
        sa.Column("plots", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
    )
    op.create_index("ix_sweeps_experiment_id", "sweeps", ["experiment_id"])
    op.create_index("ix_sweeps_job_id", "sweeps", ["job_id"])
    op.create_table(
        "sweep_outputs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sweep_id", sa.Integer(), sa.ForeignKey("sweeps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("audio_path", sa.String(500)),
        sa.Column("audio_sha256", sa.String(64)),
        sa.Column("duration_s", sa.Float()),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("descriptors", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("sweep_id", "index", name="uq_sweep_outputs_sweep_index"),
    )
    op.create_index("ix_sweep_outputs_sweep_id", "sweep_outputs", ["sweep_id"])
    op.create_table(
        "emergent_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("output_id", sa.Integer(), sa.ForeignKey("sweep_outputs.id", ondelete="SET NULL")),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.id", ondelete="SET NULL")),
        sa.Column("generation_id", sa.Integer()),
        sa.Column("audio_path", sa.String(500)),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("flag_reason", sa.Text()),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_emergent_entries_output_id", "emergent_entries", ["output_id"])
    op.create_index("ix_emergent_entries_experiment_id", "emergent_entries", ["experiment_id"])


def downgrade() -> None:
    op.drop_index("ix_emergent_entries_experiment_id", "emergent_entries")
    op.drop_index("ix_emergent_entries_output_id", "emergent_entries")
    op.drop_table("emergent_entries")
    op.drop_index("ix_sweep_outputs_sweep_id", "sweep_outputs")
    op.drop_table("sweep_outputs")
    op.drop_index("ix_sweeps_job_id", "sweeps")
    op.drop_index("ix_sweeps_experiment_id", "sweeps")
    op.drop_table("sweeps")
    op.drop_table("experiments")
