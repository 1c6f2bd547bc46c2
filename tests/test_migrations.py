"""Studies written by hypersearch 0.1 are brought forward by migration 0002 and run as stored;
migration 0005 indexes the parameters of trials stored before it."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import hypersearch as hs
from hypersearch.storage.sql import storage as sql_storage

V01_COMMAND_CONFIG = {
    "seed": 7,
    "strategy": "bayes",
    "kind": "command",
    "command": {
        "command": ["python", "train.py", "--lr", ":lr:"],
        "shell": False,
        "metric": "val_acc",
        "metric_agg": "max",
        "stop_conditions": ["val_loss > 5.0"],
        "timeout": 30.0,
        "grace": 3.0,
        "gpus": None,
        "gpus_per_trial": 1,
        "output_dir": "runs",
        "cwd": None,
    },
    "run": {"max_trials": 12, "parallel": 2, "max_time": None, "target": 0.99},
    "message": "from 0.1",
    "stop_requested": True,
}


def _migrate(url: str, revision: str, *, down: bool = False) -> list[str]:
    """Bring the database at `url` up (or `down`) to `revision`; the tables it then has."""
    engine = sa.create_engine(url)
    config = Config()
    config.set_main_option(
        "script_location", os.path.join(os.path.dirname(sql_storage.__file__), "migrations")
    )
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
            return sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()


def _database_at_0001(path: str) -> str:
    url = f"sqlite:///{path}"
    _migrate(url, "0001")
    return url


def _insert_study(url: str, name: str, metric: str | None, config: dict[str, Any]) -> None:
    space = hs.Space({"lr": hs.loguniform(1e-4, 1e-1)}).to_json_str()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO studies (name, direction, metric, space_json, config_json, "
                "next_number, n_charged, n_waiting, version, created_at) VALUES "
                "(:name, 'maximize', :metric, :space, :config, 0, 0, 0, 0, 0)"
            ),
            {"name": name, "metric": metric, "space": space, "config": json.dumps(config)},
        )
    engine.dispose()


def test_v01_command_study_is_migrated_to_a_complete_definition(tmp_path: Any) -> None:
    url = _database_at_0001(str(tmp_path / "old.db"))
    _insert_study(url, "old-cli", "val_acc", V01_COMMAND_CONFIG)
    study = hs.load_study("old-cli", url)  # opening migrates to head
    d = study.definition
    assert (d.strategy, d.seed, d.metric, d.metric_agg, d.direction) == (
        "gp", 7, "val_acc", "max", "maximize"
    )
    assert d.command == ("python", "train.py", "--lr", ":lr:")
    assert (d.trial_timeout, d.grace, d.output_dir, d.stop_conditions) == (
        30.0, 3.0, "runs", ("val_loss > 5.0",)
    )
    assert (d.max_trials, d.n_jobs, d.target, d.message) == (12, 2, 0.99, "from 0.1")
    assert d.objective_kind == "command"
    assert study.stop_requested()  # a pending stop request survives the migration


def test_v01_python_study_says_its_objective_was_not_recorded(tmp_path: Any) -> None:
    url = _database_at_0001(str(tmp_path / "old.db"))
    _insert_study(url, "old-py", None, {"seed": 3, "strategy": "tpe"})
    study = hs.load_study("old-py", url)
    assert study.definition.objective_kind == "in_process"
    with pytest.raises(hs.HypersearchError, match=r"not recorded by hypersearch 0\.1"):
        study.optimize(verbose=False)
    study.optimize(lambda p: p["lr"], max_trials=2, verbose=False)  # a function runs it
    assert len(study.trials) == 2


def test_0005_indexes_the_fields_of_trials_stored_before_it(sql_storage_handle: Any) -> None:
    """Trials written before trial_fields existed are backfilled on opening and sort by a
    parameter or a final metric in SQL exactly as the reference does."""
    from hypersearch.storage.queries import TrialQuery, select_trials
    from hypersearch.storage.sql import SQLStorage
    from hypersearch.trial import Outcome, TrialState

    url = sql_storage_handle.url
    storage = sql_storage_handle.storage
    record, _ = storage.create_study("old", "minimize", "loss", None, {})
    for i, value in enumerate([0.5, "adam", None, True, -2, "Sgd", 7.25]):
        storage.enqueue(record.id, {"opt": value, "i": i})
    for metric in (float("nan"), 0.25, float("inf")):
        trial = storage.claim(record.id, "o", propose=lambda h, n: {}, uses_history=False,
                              max_trials=None, lease_seconds=60)
        assert trial is not None and trial.id is not None
        storage.finish(trial.id, "o", trial.lease_epoch,
                       Outcome(TrialState.COMPLETE, 1.0, {"acc": metric}))
    storage.close()
    assert "trial_fields" not in _migrate(url, "0004", down=True)

    reopened = SQLStorage(url)  # opening migrates to head, filling trial_params
    try:
        trials = reopened.get_trials(record.id)
        for sort in ("params.opt", "metrics.acc"):
            for descending in (False, True):
                query = TrialQuery(sort=sort, descending=descending)
                page, total = reopened.query_trials(record.id, query)
                assert [t.number for t in page] == [
                    t.number for t in select_trials(trials, query)[0]
                ]
                assert total == 7
        page, total = reopened.query_trials(
            record.id, TrialQuery(ranges=(("params.opt", -5.0, 1.0),)))
        assert ([t.number for t in page], total) == ([0, 4], 2), "a bool is not a number"
    finally:
        reopened.close()
