"""Growing a study's space on resume: ranges widen, choices gain options, parameters arrive
with the value old trials had; the strategy keeps every old trial. Anything that would change
what old trials mean is refused, naming the parameter (Optuna cannot: its #2328)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hypersearch as hs
from hypersearch.settings import SettingError


def loss(p: dict) -> float:
    return (p["x"] - 0.3) ** 2 + (0.0 if p["opt"] == "adam" else 0.5)


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/hs.db"
    hs.minimize(loss, {"x": hs.uniform(0, 1), "opt": hs.choice(["adam", "sgd"])},
                max_trials=12, seed=0, storage=url, name="grow", verbose=False)
    return url


def test_a_wider_range_an_appended_option_and_a_new_parameter_keep_the_history(url: str) -> None:
    wider = {"x": hs.uniform(-1, 2), "opt": hs.choice(["adam", "sgd", "rmsprop"]),
             "dropout": hs.uniform(0, 0.5)}
    seen: list[dict] = []

    def objective(p: dict) -> float:
        seen.append(p)
        return loss(p) + p["dropout"]

    study = hs.minimize(objective, wider, max_trials=20, storage=url, name="grow",
                        space_defaults={"dropout": 0.0}, verbose=False)
    assert len(study.trials) == 20 and len(seen) == 8  # the 12 old ones stay and count
    old = study.trial(0)
    assert old.params["dropout"] == 0.0 and old.flat_params["dropout"] == 0.0
    assert {"x", "opt", "dropout"} <= set(study.trials[-1].params)
    again = hs.load_study("grow", url)  # any process reads the grown space and the defaults
    assert again.space == hs.Space(wider)
    assert again.definition.space_defaults == {"dropout": 0.0}
    assert again.trial(3).params["dropout"] == 0.0
    assert [r for r in again.definition.revisions if "space" in r.changes]
    from hypersearch.study import read  # what the CLI and the dashboard show: the same

    page = read.trial_page(url, "grow", limit=5)
    assert page.trials[0].params["dropout"] == 0.0
    # the sampler sees every trial, old ones filled in: TPE proposes from all 20
    history = again._filled(again.storage.get_trials(again.id))
    assert all("dropout" in t.flat_params for t in history)


def test_a_choice_default_is_given_as_the_option(url: str) -> None:
    grown = {"x": hs.uniform(0, 1), "opt": hs.choice(["adam", "sgd"]),
             "act": hs.choice(["relu", "gelu"])}
    study = hs.create_study(grown, storage=url, name="grow", space_defaults={"act": "gelu"})
    assert study.trial(0).params["act"] == "gelu" and study.trial(0).flat_params["act"] == 1


def test_an_option_appended_needs_no_default_for_what_it_holds(url: str) -> None:
    grown = {"x": hs.uniform(0, 1),
             "opt": hs.choice(["adam", "sgd", {"name": "sgdm", "momentum": hs.uniform(0, 1)}])}
    study = hs.create_study(grown, storage=url, name="grow")  # no old trial took option 2
    assert study.trial(0).params["opt"] in ("adam", "sgd")


@pytest.mark.parametrize("space, problem", [
    ({"x": hs.uniform(0.1, 1), "opt": hs.choice(["adam", "sgd"])},
     "parameter 'x': stored uniform(0.0, 1.0), given uniform(0.1, 1.0): the range is narrower"),
    ({"x": hs.loguniform(0.01, 1), "opt": hs.choice(["adam", "sgd"])}, "the scale changed"),
    ({"x": hs.integer(0, 1), "opt": hs.choice(["adam", "sgd"])}, "the type changed"),
    ({"x": hs.uniform(0, 1), "opt": hs.choice(["adam"])}, "parameter 'opt'"),
    ({"x": hs.uniform(0, 1), "opt": hs.choice(["sgd", "adam"])},
     "constant 'opt[0]' changed: stored 'adam', given 'sgd'"),
    ({"x": hs.uniform(0, 1)}, "parameter 'opt' (choice(<2 options>)) is gone"),
])
def test_shrinking_or_retyping_is_refused_naming_the_parameter(url: str, space: dict,
                                                               problem: str) -> None:
    with pytest.raises(hs.StudyConflictError) as caught:
        hs.create_study(space, storage=url, name="grow")
    assert problem in str(caught.value) and "may only grow" in str(caught.value)


def test_a_new_parameter_without_a_default_says_how_to_give_one(url: str) -> None:
    grown = {"x": hs.uniform(0, 1), "opt": hs.choice(["adam", "sgd"]), "wd": hs.uniform(0, 1)}
    with pytest.raises(SettingError, match=r"the space adds 'wd': say what value old trials "
                       r"had, e.g. space_defaults=\{'wd': ...\}"):
        hs.create_study(grown, storage=url, name="grow")
    with pytest.raises(SettingError, match=r"space_defaults\['wd'\]: 3 is not in uniform"):
        hs.create_study(grown, storage=url, name="grow", space_defaults={"wd": 3})
    assert hs.load_study("grow", url).space != hs.Space(grown)  # nothing was stored


def test_a_lattice_widens_by_whole_steps_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    hs.create_study({"n": hs.integer(10, 50, step=10)}, storage=url, name="lat")
    hs.create_study({"n": hs.integer(0, 70, step=10)}, storage=url, name="lat")
    with pytest.raises(hs.StudyConflictError, match="moves the lattice"):
        hs.create_study({"n": hs.integer(-5, 70, step=10)}, storage=url, name="lat")


def test_a_command_study_takes_the_command_that_passes_the_added_parameter(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    old = ["python", "train.py", "--x", ":x:"]
    hs.create_study({"x": hs.uniform(0, 1)}, storage=url, name="cmd", command=old)
    new = [*old, "--y", ":y:"]
    grown = hs.create_study({"x": hs.uniform(0, 1), "y": hs.integer(1, 4)}, storage=url,
                            name="cmd", command=new, space_defaults={"y": 1})
    assert grown.definition.command == tuple(new)
    assert hs.load_study("cmd", url).definition.command == tuple(new)
    changes = [r.changes for r in grown.definition.revisions if "command" in r.changes]
    assert changes and changes[0]["command"] == [old, new]
    with pytest.raises(hs.StudyConflictError, match="command: stored"):  # same space: fixed
        hs.create_study({"x": hs.uniform(0, 1), "y": hs.integer(1, 4)}, storage=url,
                        name="cmd", command=[*new, "--z"])
