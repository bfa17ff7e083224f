"""workers: the GPUs each drives and the processes running its jobs (for `bark-studio workers`)

Revision ID: 0008_worker_gpus
Revises: 0007_clip_states
"""
from alembic import op
import sqlalchemy as sa

revision = "0008_worker_gpus"
down_revision = "0007_clip_states"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("gpus", sa.String(200)))
        batch.add_column(sa.Column("processes", sa.String(2000)))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("processes")
        batch.drop_column("gpus")
