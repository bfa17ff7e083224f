"""clips carry labels beyond the speaker (accent=0.3, emotion=angry); datasets declare their own tags

Revision ID: 0009_clip_labels
Revises: 0008_worker_gpus
"""
from alembic import op
import sqlalchemy as sa

revision = "0009_clip_labels"
down_revision = "0008_worker_gpus"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch copy: rebuilding `clips` would drop it, and with foreign keys
    # on, dropping it deletes every transcript and segment by cascade.
    op.add_column("clips", sa.Column("labels", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
    op.add_column("datasets", sa.Column("tags", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("tags")
    with op.batch_alter_table("clips") as batch:
        batch.drop_column("labels")
