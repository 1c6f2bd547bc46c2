"""Tables as SQLAlchemy Core objects (the migrations in migrations/versions create them)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

studies = sa.Table(
    "studies",
    metadata,
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

trials = sa.Table(
    "trials",
    metadata,
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
    sa.Column("lineage_json", sa.Text),  # PBT: the donor and what was explored (0003)
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
    sa.Index("ix_trials_study_state", "study_id", "state"),
    sa.Index("ix_trials_owner_state", "owner", "state"),
    sa.Index("ix_trials_study_value", "study_id", "value"),  # 0004: the dashboard's reads
    sa.Index("ix_trials_study_state_number_value", "study_id", "state", "number", "value"),
    sa.Index("ix_trials_study_started", "study_id", "started_at"),
    sa.Index("ix_trials_study_finished", "study_id", "finished_at"),
    sqlite_autoincrement=True,
)

# 0005: a trial's parameters and final metrics, one row each, so a large study sorts and
# filters by one in SQL (an index read) instead of parsing every trial's JSON
trial_fields = sa.Table(
    "trial_fields",
    metadata,
    sa.Column(
        "trial_id", sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("study_id", sa.Integer, nullable=False),
    sa.Column("field", sa.String(300), nullable=False),  # "params.lr", "metrics.accuracy"
    sa.Column("value_num", sa.Float),  # a number (bools are not; inf is)
    sa.Column("value_text", sa.Text),  # anything else, as Python's str() writes it
    sa.PrimaryKeyConstraint("trial_id", "field"),
    # walked in order to sort a page by a field (SQLStorage._walk_field)
    sa.Index("ix_trial_fields_study_field_num", "study_id", "field", "value_num", "trial_id"),
    sqlite_with_rowid=False,  # rows clustered by (trial_id, field): one lookup per trial
)


def field_rows(prefix: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The trial_fields rows of a trial's parameters (`prefix` "params.") or final metrics
    ("metrics."): a missing (None or NaN) value has none, so it sorts last, as in
    storage/queries.py's reference."""
    rows = []
    for name, value in values.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        rows.append({"field": prefix + name, "value_num": float(value) if number else None,
                     "value_text": None if number else str(value)})
    return rows


metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "trial_id", sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("step", sa.Integer),
    sa.Column("value", sa.Float),  # NULL is NaN: SQLite stores NaN as NULL
    sa.Column("ts", sa.Float, nullable=False),
    sa.Index("ix_metrics_trial_name_step", "trial_id", "name", "step"),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "trial_id", sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("stream", sa.String(16), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Index("ix_logs_trial_stream_seq", "trial_id", "stream", "seq"),
)

# what a sampler keeps warm, by study and sampler name (migration 0006): a cache, never a result
study_caches = sa.Table(
    "study_caches",
    metadata,
    sa.Column(
        "study_id", sa.Integer, sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("data_json", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("study_id", "name"),
)

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "study_id", sa.Integer, sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("trial_number", sa.Integer),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
