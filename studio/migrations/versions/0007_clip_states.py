"""clips can be excluded or (softly) deleted, each undoable

Revision ID: 0007_clip_states
Revises: 0006_experiments
"""
from alembic import op
import sqlalchemy as sa

revision = "0007_clip_states"
down_revision = "0006_experiments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clips", sa.Column("excluded_at", sa.DateTime()))
    op.add_column("clips", sa.Column("deleted_at", sa.DateTime()))


def downgrade() -> None:
    with op.batch_alter_table("clips") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("excluded_at")
