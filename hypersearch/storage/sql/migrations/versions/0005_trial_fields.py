"""A trial's parameters and final metrics, one row each (trial_fields), so the dashboard
sorts and filters a large study by one in the database (an index read) instead of parsing
every trial's JSON (which PostgreSQL also refuses for NaN and infinite values).

Revision ID: 0005
Revises: 0004

Existing trials are copied over in batches; the row rule (numbers in ``value_num``, anything
else as text, missing values without a row) is schema.field_rows, the one the writes use.
"""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from alembic import op

from hypersearch.storage.sql.schema import field_rows

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "trial_fields",
        sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("study_id", sa.Integer, nullable=False),
        sa.Column("field", sa.String(300), nullable=False),
        sa.Column("value_num", sa.Float),
        sa.Column("value_text", sa.Text),
        sa.PrimaryKeyConstraint("trial_id", "field"),
        sqlite_with_rowid=False,  # rows clustered by (trial_id, field): one lookup per trial
    )
    op.create_index("ix_trial_fields_study_field_num", "trial_fields",
                    ["study_id", "field", "value_num", "trial_id"])
    conn = op.get_bind()
    trials = sa.table("trials", *(sa.column(c) for c in
                                  ("id", "study_id", "params_json", "metrics_json")))
    target = sa.table("trial_fields", *(sa.column(c) for c in
                                        ("trial_id", "study_id", "field", "value_num",
                                         "value_text")))
    total = conn.execute(sa.select(sa.func.count()).select_from(trials)).scalar_one()
    if total > 10 * _BATCH:
        logging.getLogger("hypersearch.storage").warning(
            "indexing the parameters and metrics of %d stored trials (once, for this version)",
            total)
    last = 0
    while True:
        rows = conn.execute(sa.select(trials).where(trials.c.id > last)
                            .order_by(trials.c.id).limit(_BATCH)).all()
        if not rows:
            break
        values = [
            {"trial_id": r.id, "study_id": r.study_id, **row}
            for r in rows
            for prefix, text in (("params.", r.params_json), ("metrics.", r.metrics_json))
            for row in field_rows(prefix, json.loads(text))
        ]
        if values:
            conn.execute(target.insert(), values)
        last = rows[-1].id


def downgrade() -> None:
    op.drop_table("trial_fields")
