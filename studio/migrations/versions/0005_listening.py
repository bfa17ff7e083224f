"""listening sessions, systems, items, stimuli, raters, assignments and votes

Revision ID: 0005_listening
Revises: 0004_training
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_listening"
down_revision = "0004_training"
branch_labels = None
depends_on = None


def _fk(target: str):
    return sa.ForeignKey(target, ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "listen_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("test_type", sa.String(8), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("question_preset", sa.String(20), nullable=False),
        sa.Column("voice_label", sa.String(200)),
        sa.Column("allow_no_preference", sa.Boolean(), nullable=False),
        sa.Column("trials_per_rater", sa.Integer(), nullable=False),
        sa.Column("n_gold", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("target_lufs", sa.Float(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("job_id", sa.Integer()),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime()),
    )
    op.create_index("ix_listen_sessions_status", "listen_sessions", ["status"])
    op.create_table(
        "listen_systems",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.Integer(), _fk("listen_sessions.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_index("ix_listen_systems_session_id", "listen_systems", ["session_id"])
    op.create_table(
        "listen_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.Integer(), _fk("listen_sessions.id"), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("text", sa.Text()),
        sa.Column("seed", sa.Integer()),
    )
    op.create_index("ix_listen_items_session_id", "listen_items", ["session_id"])
    op.create_table(
        "listen_stimuli",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.Integer(), _fk("listen_sessions.id"), nullable=False),
        sa.Column("system_id", sa.Integer(), _fk("listen_systems.id")),
        sa.Column("item_id", sa.Integer(), _fk("listen_items.id")),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("opaque_id", sa.String(32), nullable=False, unique=True),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("source_lufs", sa.Float()),
        sa.Column("gain_db", sa.Float(), nullable=False),
        sa.Column("seed", sa.Integer()),
    )
    op.create_index("ix_listen_stimuli_session_id", "listen_stimuli", ["session_id"])
    op.create_table(
        "listen_raters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.Integer(), _fk("listen_sessions.id"), nullable=False),
        sa.Column("label", sa.String(60), nullable=False),
        sa.Column("selector", sa.String(16), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("assignment_seed", sa.Integer(), nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("consented_at", sa.DateTime()),
        sa.Column("finished_at", sa.DateTime()),
    )
    op.create_index("ix_listen_raters_session_id", "listen_raters", ["session_id"])
    op.create_table(
        "listen_assignments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.Integer(), _fk("listen_sessions.id"), nullable=False),
        sa.Column("rater_id", sa.Integer(), _fk("listen_raters.id"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("opaque_id", sa.String(32), nullable=False, unique=True),
        sa.Column("item_id", sa.Integer(), _fk("listen_items.id"), nullable=False),
        sa.Column("stimulus_a_id", sa.Integer(), _fk("listen_stimuli.id"), nullable=False),
        sa.Column("stimulus_b_id", sa.Integer(), _fk("listen_stimuli.id")),
        sa.Column("swapped", sa.Boolean(), nullable=False),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("expected", sa.String(8)),
        sa.Column("presented_at", sa.DateTime()),
        sa.UniqueConstraint("rater_id", "position", name="uq_listen_assignments_rater_position"),
    )
    op.create_index("ix_listen_assignments_session_id", "listen_assignments", ["session_id"])
    op.create_table(
        "listen_votes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.Integer(), _fk("listen_sessions.id"), nullable=False),
        sa.Column("rater_id", sa.Integer(), _fk("listen_raters.id"), nullable=False),
        sa.Column("assignment_id", sa.Integer(), _fk("listen_assignments.id"), nullable=False),
        sa.Column("item_id", sa.Integer(), _fk("listen_items.id"), nullable=False),
        sa.Column("system_a_id", sa.Integer(), _fk("listen_systems.id"), nullable=False),
        sa.Column("system_b_id", sa.Integer(), _fk("listen_systems.id")),
        sa.Column("stimulus_a_id", sa.Integer(), nullable=False),
        sa.Column("stimulus_b_id", sa.Integer()),
        sa.Column("swapped", sa.Boolean(), nullable=False),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("seed", sa.Integer()),
        sa.Column("plays_a", sa.Integer(), nullable=False),
        sa.Column("plays_b", sa.Integer(), nullable=False),
        sa.Column("listened_a_s", sa.Float(), nullable=False),
        sa.Column("listened_b_s", sa.Float(), nullable=False),
        sa.Column("response", sa.String(8), nullable=False),
        sa.Column("score", sa.Integer()),
        sa.Column("chosen_system_id", sa.Integer()),
        sa.Column("response_time_ms", sa.Integer()),
        sa.Column("server_elapsed_ms", sa.Integer(), nullable=False),
        sa.Column("presented_at", sa.DateTime(), nullable=False),
        sa.Column("client_submitted_at", sa.String(40)),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("rater_id", "assignment_id", name="uq_listen_votes_rater_trial"),
    )
    op.create_index("ix_listen_votes_session_id", "listen_votes", ["session_id"])


def downgrade() -> None:
    for table in ("listen_votes", "listen_assignments", "listen_raters", "listen_stimuli", "listen_items",
                  "listen_systems", "listen_sessions"):
        op.drop_index(f"ix_{table}_session_id" if table != "listen_sessions" else "ix_listen_sessions_status",
                      table)
        op.drop_table(table)
