"""voices (saved voice prompts) and generations (history)

Revision ID: 0003_voices
Revises: 0002_datasets
"""
from alembic import op
import sqlalchemy as sa

revision = "0003_voices"
down_revision = "0002_datasets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(80), nullable=False, unique=True),
        sa.Column("npz_path", sa.String(300), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("source_path", sa.String(500), nullable=False),
        sa.Column("source_clip_id", sa.Integer()),
        sa.Column("span_start", sa.Float(), nullable=False),
        sa.Column("span_end", sa.Float(), nullable=False),
        sa.Column("semantic_len", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "generations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("voice", sa.String(80)),
        sa.Column("adapters", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("audio_path", sa.String(300), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("starred", sa.Boolean(), nullable=False),
        sa.Column("job_id", sa.Integer()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_generations_job_id", "generations", ["job_id"])
    op.create_index("ix_generations_created_at", "generations", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_generations_created_at", "generations")
    op.drop_index("ix_generations_job_id", "generations")
    op.drop_table("generations")
    op.drop_table("voices")
