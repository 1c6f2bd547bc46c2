"""Trial lineage: where a Population Based Training trial came from.

Revision ID: 0003
Revises: 0002

A trial that continues another's checkpoint with explored parameters records its lineage as a
JSON object ``{"parent": donor number, "step": ..., "replaces": ..., "changed": {...}}``;
NULL for every other trial (all trials written before this revision).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("lineage_json", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("lineage_json")
