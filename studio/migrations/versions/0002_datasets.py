"""datasets, clips, transcripts and their edits, prepared versions and segments

Revision ID: 0002_datasets
Revises: 0001_jobs
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_datasets"
down_revision = "0001_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("allow_free_tags", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "clips",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blob", sa.String(300), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("licence", sa.String(500), nullable=False),
        sa.Column("speaker", sa.String(100), nullable=False),
        sa.Column("provenance", sa.String(8), nullable=False),
        sa.Column("trim_start", sa.Float()),
        sa.Column("trim_end", sa.Float()),
        sa.Column("trim_history", sa.JSON(), nullable=False),
        sa.Column("peaks", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("dataset_id", "sha256", name="uq_clips_dataset_sha256"),
    )
    op.create_index("ix_clips_dataset_id", "clips", ["dataset_id"])
    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("clip_id", sa.Integer(), sa.ForeignKey("clips.id", ondelete="CASCADE"), nullable=False, unique=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("asr_text", sa.Text()),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("asr_model", sa.String(60)),
        sa.Column("language", sa.String(16)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "transcript_edits",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("clip_id", sa.Integer(), sa.ForeignKey("clips.id", ondelete="CASCADE"), nullable=False),
        sa.Column("before", sa.Text()),
        sa.Column("after", sa.Text(), nullable=False),
        sa.Column("source_before", sa.String(8)),
        sa.Column("source_after", sa.String(8), nullable=False),
        sa.Column("by", sa.String(20), nullable=False),
        sa.Column("undone", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_transcript_edits_clip_id", "transcript_edits", ["clip_id"])
    op.create_table(
        "prepared_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("settings_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="SET NULL")),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.UniqueConstraint("dataset_id", "version", name="uq_prepared_dataset_version"),
    )
    op.create_index("ix_prepared_versions_dataset_id", "prepared_versions", ["dataset_id"])
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("prepared_versions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("clip_id", sa.Integer(), sa.ForeignKey("clips.id", ondelete="CASCADE"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("parent_sha256", sa.String(64), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blob", sa.String(300), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("lufs", sa.Float()),
        sa.Column("peak_db", sa.Float()),
        sa.Column("snr_db", sa.Float()),
        sa.Column("clipped_fraction", sa.Float(), nullable=False),
        sa.Column("kept", sa.Boolean(), nullable=False),
        sa.Column("reject_reason", sa.String(200)),
    )
    op.create_index("ix_segments_version_clip", "segments", ["version_id", "clip_id"])


def downgrade() -> None:
    op.drop_index("ix_segments_version_clip", "segments")
    op.drop_table("segments")
    op.drop_index("ix_prepared_versions_dataset_id", "prepared_versions")
    op.drop_table("prepared_versions")
    op.drop_index("ix_transcript_edits_clip_id", "transcript_edits")
    op.drop_table("transcript_edits")
    op.drop_table("transcripts")
    op.drop_index("ix_clips_dataset_id", "clips")
    op.drop_table("clips")
    op.drop_table("datasets")
