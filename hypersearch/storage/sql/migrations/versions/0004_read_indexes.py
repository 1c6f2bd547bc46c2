"""Indexes for the dashboard's reads of large studies.

Revision ID: 0004
Revises: 0003

Sorting a study's trials by value, its optimisation history (number and value of the
completed trials, read from the index alone) and its first start / last finish become index
reads instead of scans of every trial row (bench/dashboard.py, 100,000 trials).
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_trials_study_value": ["study_id", "value"],
    "ix_trials_study_state_number_value": ["study_id", "state", "number", "value"],
    "ix_trials_study_started": ["study_id", "started_at"],
    "ix_trials_study_finished": ["study_id", "finished_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "trials", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "trials")
