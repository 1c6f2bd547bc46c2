"""Gradient's `hyper_tune`: its documented example runs with only the import changed, its
results stored in the configured storage, and a configuration it cannot use is a ConfigError
that says why."""

from __future__ import annotations

from pathlib import Path

import pytest

import hypersearch as hs
from hypersearch.gradient import ConfigError, hyper_tune
from hypersearch.hyperopt import hp, tpe

# Paperspace's docs (projects/hyperparameters.md): the space of the hyper_tune example.
HPARAM_DEF = {
    "dense_len": 8 + hp.randint("dense_len", 120),
    "dropout": hp.uniform("dropout", 0.0, 0.8),
    "activation": hp.choice("activation", ["relu", "tanh", "sigmoid"]),
}


def train_model(params: dict) -> float:
    assert isinstance(params["dense_len"], int) and 8 <= params["dense_len"] < 128
    assert params["activation"] in ("relu", "tanh", "sigmoid")
    penalty = {"relu": 0.0, "tanh": 0.1, "sigmoid": 0.3}[params["activation"]]
    return abs(params["dense_len"] - 64) / 64 + (params["dropout"] - 0.2) ** 2 + penalty


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/hs.db"
    monkeypatch.setenv("HYPERSEARCH_STORAGE", url)
    monkeypatch.setenv("EXPERIMENT_NAME", "gradient-example")
    for name in ("MONGO_DB_HOST", "MONGO_DB_PORT"):
        monkeypatch.delenv(name, raising=False)
    return url


def test_the_documented_example_runs_and_stores_its_trials(storage: str) -> None:
    best = hyper_tune(train_model, HPARAM_DEF, algo=tpe.suggest, max_evals=25)
    assert set(best) == {"dense_len", "dropout", "activation"}  # fmin's argmin: labels
    assert best["activation"] in (0, 1, 2)  # a choice as its index, as hyperopt returns it
    study = hs.load_study("gradient-example", storage)
    assert len(study.trials) == 25 and study.best_value < 1.0
    again = hyper_tune(train_model, HPARAM_DEF, max_evals=30)  # a rerun continues the study
    assert len(hs.load_study("gradient-example", storage).trials) == 30
    assert set(again) == set(best)


def test_it_is_importable_from_the_package_too() -> None:
    assert hs.hyper_tune is hyper_tune


def test_gradient_mongodb_variables_are_named_and_explained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HYPERSEARCH_STORAGE", raising=False)
    monkeypatch.setenv("MONGO_DB_HOST", "mongo.internal")
    monkeypatch.setenv("MONGO_DB_PORT", "27017")
    with pytest.raises(ConfigError) as caught:
        hyper_tune(train_model, HPARAM_DEF, max_evals=1)
    message = str(caught.value)
    assert "MONGO_DB_HOST and MONGO_DB_PORT are set" in message
    assert "does not store to MongoDB" in message and "HYPERSEARCH_STORAGE" in message


@pytest.mark.parametrize("url, problem", [
    ("mongodb://localhost:27017/jobs", "mongodb"),
    ("postgresql://postgres@127.0.0.1:9/none", "127.0.0.1"),
])
def test_a_storage_it_cannot_use_is_a_config_error(
    url: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPERSEARCH_STORAGE", url)
    monkeypatch.setenv("HYPERSEARCH_STORAGE_PATIENCE", "0.5")  # don't wait out an outage
    with pytest.raises(ConfigError) as caught:
        hyper_tune(train_model, HPARAM_DEF, max_evals=1)
    assert f"hyper_tune cannot use the storage {url}" in str(caught.value)
    assert problem in str(caught.value).lower()
