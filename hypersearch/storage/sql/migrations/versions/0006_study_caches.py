"""What a sampler keeps warm between suggestions, stored with its study (study_caches), so a
worker that joins a study late, or a resumed driver, starts as warm as one that was there all
along (a GP's fitted hyperparameters: hypersearch.samplers.gp.fitting).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "study_caches",
        sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("data_json", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("study_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("study_caches")
