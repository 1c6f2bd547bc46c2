"""Tables as SQLAlchemy Core objects (the migrations in migrations/versions create them)."""

from __future__ import annotations

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
