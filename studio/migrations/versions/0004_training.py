"""adapters (trained, named) and checkpoints (per training job)

Revision ID: 0004_training
Revises: 0003_voices
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_training"
down_revision = "0003_voices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adapters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(80), nullable=False, unique=True),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("dataset", sa.String(120)),
        sa.Column("dataset_hash", sa.String(64)),
        sa.Column("job_id", sa.Integer()),
        sa.Column("checkpoint", sa.String(300)),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_adapters_job_id", "adapters", ["job_id"])
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(300), nullable=False, unique=True),
        sa.Column("val_loss", sa.Float()),
        sa.Column("is_best", sa.Boolean(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_checkpoints_job_step", "checkpoints", ["job_id", "step"])


def downgrade() -> None:
    op.drop_index("ix_checkpoints_job_step", "checkpoints")
    op.drop_table("checkpoints")
    op.drop_index("ix_adapters_job_id", "adapters")
    op.drop_table("adapters")
