"""Study definitions: the loose config of 0.1 becomes a versioned definition document.

Revision ID: 0002
Revises: 0001

Studies written by hypersearch 0.1 stored ``{"seed", "strategy", "kind", "command", "run",
"message", "stop_requested"}``; this rewrites each into the schema-1 document that
hypersearch/study/definition.py reads. The mapping is spelled out here, in plain dicts, so the
migration stays correct however the study layer changes later.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_STRATEGY_ALIASES = {"bayes": "gp", "bayesian": "gp"}
_COMMAND_KEYS = {  # 0.1's Command.to_config() key -> setting
    "command": "command",
    "shell": "shell",
    "metric_agg": "metric_agg",
    "stop_conditions": "stop_conditions",
    "timeout": "trial_timeout",
    "grace": "grace",
    "gpus": "gpus",
    "gpus_per_trial": "gpus_per_trial",
    "output_dir": "output_dir",
    "cwd": "cwd",
    "env": "env",
}
_RUN_KEYS = {"max_trials": "max_trials", "parallel": "n_jobs", "max_time": "max_time",
             "target": "target"}  # fmt: skip


def definition_from_v01(config: dict[str, Any], metric: str | None, direction: str) -> dict:
    """The schema-1 document for a 0.1 config (exposed for the migration test)."""
    strategy = str(config.get("strategy") or "tpe").lower()
    settings: dict[str, Any] = {
        "direction": direction,
        "metric": metric,
        "seed": config.get("seed"),
        "strategy": _STRATEGY_ALIASES.get(strategy, strategy),
    }
    if config.get("message"):
        settings["message"] = config["message"]
    for old, new in _RUN_KEYS.items():
        value = (config.get("run") or {}).get(old)
        if value is not None:
            settings[new] = value
    in_process = None
    kind = config.get("kind")
    if kind == "command":
        command = config.get("command") or {}
        for old, new in _COMMAND_KEYS.items():
            if command.get(old) is not None:
                settings[new] = command[old]
        if command.get("metric") and metric is None:
            settings["metric"] = command["metric"]
    elif kind == "python" and config.get("objective"):
        settings["objective"] = config["objective"]
    else:  # a Python callable, never recorded by 0.1
        in_process = "an objective not recorded by hypersearch 0.1"
    return {
        "schema_version": 1,
        "settings": settings,
        "in_process": in_process,
        "revisions": [],
        "control": {"stop": bool(config.get("stop_requested"))},
    }


def upgrade() -> None:
    studies = sa.table(
        "studies",
        sa.column("id", sa.Integer),
        sa.column("direction", sa.String),
        sa.column("metric", sa.String),
        sa.column("config_json", sa.Text),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(studies.c.id, studies.c.direction, studies.c.metric, studies.c.config_json)
    ).all()
    for row in rows:
        config = json.loads(row.config_json or "{}")
        if "schema_version" in config:
            continue
        document = definition_from_v01(config, row.metric, row.direction)
        conn.execute(
            studies.update()
            .where(studies.c.id == row.id)
            .values(config_json=json.dumps(document))
        )


def downgrade() -> None:
    raise NotImplementedError("studies written by this version cannot be read by 0.1")
