"""Initial schema: studies, trials, metrics, logs, notes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(512), nullable=False, unique=True),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(256)),
        sa.Column("space_json", sa.Text),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("next_number", sa.Integer, nullable=False),
        sa.Column("n_charged", sa.Integer, nullable=False),
        sa.Column("n_waiting", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sqlite_autoincrement=True,  # never reuse a deleted study's id (caches key on it)
    )
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "study_id", sa.Integer, sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("params_json", sa.Text, nullable=False),
        sa.Column("distributions_json", sa.Text),
        sa.Column("value", sa.Float),
        sa.Column("metrics_json", sa.Text, nullable=False),
        sa.Column("user_attrs_json", sa.Text, nullable=False),
        sa.Column("failure_reason", sa.String(32)),
        sa.Column("failure_detail", sa.Text),
        sa.Column("parent_number", sa.Integer),
        sa.Column("charged", sa.Boolean, nullable=False),
        sa.Column("owner", sa.String(256)),
        sa.Column("lease_epoch", sa.Integer, nullable=False),
        sa.Column("lease_expiry", sa.Float),
        sa.Column("host", sa.String(256)),
        sa.Column("worker", sa.String(256)),
        sa.Column("gpus", sa.String(256)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.UniqueConstraint("study_id", "number", name="uq_trials_study_number"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_trials_study_state", "trials", ["study_id", "state"])
    op.create_index("ix_trials_owner_state", "trials", ["owner", "state"])
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "trial_id", sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("step", sa.Integer),
        sa.Column("value", sa.Float),  # NULL is NaN: SQLite stores NaN as NULL
        sa.Column("ts", sa.Float, nullable=False),
    )
    op.create_index("ix_metrics_trial_name_step", "metrics", ["trial_id", "name", "step"])
    op.create_table(
        "logs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "trial_id", sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("stream", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_logs_trial_stream_seq", "logs", ["trial_id", "stream", "seq"])
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "study_id", sa.Integer, sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("trial_number", sa.Integer),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("notes", "logs", "metrics", "trials", "studies"):
        op.drop_table(table)
