"""The storage contract: tests every backend must pass (memory, SQLite, PostgreSQL).

Subclass `StorageContract` in a test module that provides a `storage` fixture (an empty,
opened `Storage`); tests/test_storage.py runs it against every backend of tests/conftest.py.
Tests that wait for a lease to expire use short leases and explicit sleeps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import pytest

from hypersearch.storage.base import Storage, StudyRecord
from hypersearch.trial import FrozenTrial, Outcome, TrialState

OWNER = "owner-a"
OTHER = "owner-b"
LONG_LEASE = 3600.0
SHORT_LEASE = 0.1
EXPIRE_WAIT = 0.25  # comfortably past SHORT_LEASE
# For "not expired yet" checks: long enough that a loaded CI machine gets to the check first.
CHECKED_LEASE = 2.0
CHECKED_EXPIRE_WAIT = 2.2


# -- helpers ----------------------------------------------------------------------------------


def new_study(storage: Storage, name: str = "study", direction: str = "minimize") -> StudyRecord:
    record, created = storage.create_study(name, direction, "loss", None, {})
    assert created
    return record


def by_number(history: Sequence[FrozenTrial], number: int) -> dict[str, Any]:
    """A propose function's answer: parameters naming the trial number."""
    return {"x": number}


def claim(
    storage: Storage,
    study: StudyRecord,
    owner: str = OWNER,
    *,
    max_trials: int | None = None,
    lease_seconds: float = LONG_LEASE,
    propose: Any = by_number,
    uses_history: bool = False,
    worker: str | None = None,
    max_running: int | None = None,
) -> FrozenTrial | None:
    return storage.claim(
        study.id,
        owner,
        propose=propose,
        uses_history=uses_history,
        max_trials=max_trials,
        lease_seconds=lease_seconds,
        worker=worker,
        max_running=max_running,
    )


def claimed(storage: Storage, study: StudyRecord, owner: str = OWNER, **kwargs: Any) -> FrozenTrial:
    trial = claim(storage, study, owner, **kwargs)
    assert trial is not None, "claim returned None where a trial was expected"
    return trial


def complete(storage: Storage, trial: FrozenTrial, value: float, owner: str = OWNER) -> None:
    assert trial.id is not None
    ok = storage.finish(trial.id, owner, trial.lease_epoch, Outcome(TrialState.COMPLETE, value))
    assert ok


def trial_by_number(storage: Storage, study: StudyRecord, number: int) -> FrozenTrial:
    (trial,) = [t for t in storage.get_trials(study.id) if t.number == number]
    return trial


def n_charged(storage: Storage, study: StudyRecord) -> int:
    record = storage.get_study(study.name)
    assert record is not None
    return record.n_trials


class Recorder:
    """A propose function that records what it was given."""

    def __init__(self, answer: Any = by_number) -> None:
        self.calls: list[tuple[list[FrozenTrial], int]] = []
        self.answer = answer

    def __call__(self, history: Sequence[FrozenTrial], number: int) -> dict[str, Any] | None:
        self.calls.append((list(history), number))
        return self.answer(history, number)


# -- the contract -----------------------------------------------------------------------------


class StorageContract:
    """Behaviour every Storage backend must show. Needs a `storage` fixture."""

    # studies ------------------------------------------------------------------------------

    def test_create_and_get_study(self, storage: Storage) -> None:
        record, created = storage.create_study(
            "s1", "maximize", "acc", '{"type": "const", "value": 1}', {"seed": 7, "tags": ["a"]}
        )
        assert created
        assert (record.name, record.direction, record.metric) == ("s1", "maximize", "acc")
        assert record.space_json == '{"type": "const", "value": 1}'
        assert record.config == {"seed": 7, "tags": ["a"]}
        assert record.n_trials == 0
        fetched = storage.get_study("s1")
        assert fetched is not None
        assert fetched.id == record.id
        assert fetched.config == {"seed": 7, "tags": ["a"]}
        assert fetched.created_at is not None
        assert storage.get_study("missing") is None

    def test_create_twice_returns_existing(self, storage: Storage) -> None:
        first, created = storage.create_study("s", "minimize", None, None, {"a": 1})
        assert created
        second, created_again = storage.create_study("s", "maximize", "other", "{}", {"a": 2})
        assert not created_again
        assert second.id == first.id
        assert (second.direction, second.metric, second.config) == ("minimize", None, {"a": 1})

    def test_define_by_run_study_has_no_space(self, storage: Storage) -> None:
        record, _ = storage.create_study("dbr", "minimize", None, None, {})
        fetched = storage.get_study("dbr")
        assert record.space_json is None and fetched is not None and fetched.space_json is None

    @pytest.mark.parametrize(
        ("name", "problem"),
        [
            ("", "empty"),
            ("   ", "only whitespace"),
            ("x" * 513, "513 characters"),  # over the column limit: a raw DataError once
            ("x" * 201, "201 characters"),
            ("é" * 130, "260 bytes"),
            ("a/b", "'/'"),
            ("a\\b", "path separator"),
            ("..", "parent directory"),
            (".", "parent directory"),
            ("a\x00b", "U+0000"),  # NUL once escaped into a charged trial
            ("line\nbreak", "U+000A"),
            ("tab\there", "U+0009"),
            ("bell\x7f", "U+007F"),
            (" padded", "whitespace"),
        ],
    )
    def test_defect_invalid_study_names_are_refused_in_one_line(
        self, storage: Storage, name: str, problem: str
    ) -> None:
        from hypersearch.storage.base import StudyNameError

        with pytest.raises(StudyNameError) as raised:
            storage.create_study(name, "minimize", None, None, {})
        message = str(raised.value)
        assert "\n" not in message and problem in message and "a study name is" in message
        with pytest.raises(StudyNameError):
            storage.get_study(name)
        with pytest.raises(StudyNameError):
            storage.delete_study(name)
        assert storage.list_studies() == []

    def test_defect_non_string_study_name_is_refused(self, storage: Storage) -> None:
        from hypersearch.storage.base import StudyNameError

        with pytest.raises(StudyNameError, match="must be a string, got int"):
            storage.create_study(7, "minimize", None, None, {})  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "name", ["a..b", "x" * 200, "studie-ünïcødé ✓", "with inner spaces", "v1.2_lr=0.1", "-"]
    )
    def test_valid_unusual_study_names_round_trip(self, storage: Storage, name: str) -> None:
        record, created = storage.create_study(name, "minimize", None, None, {})
        assert created and record.name == name
        fetched = storage.get_study(name)
        assert fetched is not None and fetched.id == record.id and fetched.name == name
        assert storage.delete_study(name)

    def test_list_and_delete_studies(self, storage: Storage) -> None:
        a = new_study(storage, "a")
        new_study(storage, "b")
        assert sorted(s.name for s in storage.list_studies()) == ["a", "b"]
        trial = claimed(storage, a)
        assert trial.id is not None
        assert storage.report(trial.id, OWNER, trial.lease_epoch, 0, {"loss": 1.0})
        assert storage.delete_study("a")
        assert storage.get_study("a") is None
        assert not storage.delete_study("a")
        assert [s.name for s in storage.list_studies()] == ["b"]
        again = new_study(storage, "a")  # the name is free again, and the new study is empty
        assert storage.get_trials(again.id) == []
        assert claimed(storage, again).number == 0

    def test_update_study_config_bumps_version(self, storage: Storage) -> None:
        record = new_study(storage)
        storage.update_study_config(record.id, {"max_trials": 10})
        fetched = storage.get_study(record.name)
        assert fetched is not None
        assert fetched.config == {"max_trials": 10}
        assert fetched.version > record.version
        assert fetched.space_json == record.space_json  # untouched unless given
        storage.update_study_config(record.id, {"max_trials": 11}, space_json='{"type": "x"}')
        grown = storage.get_study(record.name)
        assert grown is not None and grown.space_json == '{"type": "x"}'
        assert grown.config == {"max_trials": 11}

    def test_a_study_cache_round_trips_is_replaced_and_goes_with_its_study(
        self, storage: Storage
    ) -> None:
        record = new_study(storage)
        assert storage.get_cache(record.id, "gp") is None
        storage.put_cache(record.id, "gp", {"path": {"12": [0.5, -1.25]}, "n": 3})
        assert storage.get_cache(record.id, "gp") == {"path": {"12": [0.5, -1.25]}, "n": 3}
        storage.put_cache(record.id, "gp", {"n": 4})  # replaced whole
        assert storage.get_cache(record.id, "gp") == {"n": 4}
        assert storage.get_cache(record.id, "tpe") is None
        fetched = storage.get_study(record.name)
        assert fetched is not None and fetched.version == record.version, "not a revision"
        storage.delete_study(record.name)
        again = new_study(storage)
        assert storage.get_cache(again.id, "gp") is None

    def test_returned_config_is_a_copy(self, storage: Storage) -> None:
        record, _ = storage.create_study("s", "minimize", None, None, {"nested": {"a": 1}})
        record.config["nested"]["a"] = 99
        fetched = storage.get_study("s")
        assert fetched is not None and fetched.config == {"nested": {"a": 1}}

    # claim --------------------------------------------------------------------------------

    def test_claim_numbers_are_dense(self, storage: Storage) -> None:
        study = new_study(storage)
        trials = [claimed(storage, study, worker="w1") for _ in range(5)]
        assert [t.number for t in trials] == [0, 1, 2, 3, 4]
        assert [t.flat_params for t in trials] == [{"x": n} for n in range(5)]
        assert len({t.id for t in trials}) == 5
        for trial in trials:
            assert trial.state is TrialState.RUNNING
            assert trial.owner == OWNER
            assert trial.lease_epoch == 1
            assert trial.started_at is not None
            assert trial.worker == "w1"
        stored = storage.get_trials(study.id)
        assert [t.number for t in stored] == [0, 1, 2, 3, 4]
        assert [t.id for t in stored] == [t.id for t in trials]
        assert all(t.state is TrialState.RUNNING and t.owner == OWNER for t in stored)

    def test_finish_records_where_a_trial_ran_when_only_the_end_says(
        self, storage: Storage
    ) -> None:
        from hypersearch.storage.base import RanOn

        study = new_study(storage)
        kept, moved = (claimed(storage, study, worker="ray") for _ in range(2))
        complete(storage, kept, 1.0)
        assert storage.finish(moved.id, OWNER, moved.lease_epoch,  # type: ignore[arg-type]
                              Outcome(TrialState.COMPLETE, 2.0),
                              ran_on=RanOn("node-b/1234", "node-b:77", "1"))
        first, second = storage.get_trials(study.id)
        assert (first.host, first.worker, first.gpus) == (kept.host, "ray", None)
        assert (second.host, second.worker, second.gpus) == ("node-b/1234", "node-b:77", "1")

    @pytest.mark.parametrize("history", [False, True], ids=["history-free", "history"])
    def test_max_running_refuses_a_claim_while_that_many_run(
        self, storage: Storage, history: bool
    ) -> None:
        from hypersearch.errors import StudyFull

        study = new_study(storage)
        first = claimed(storage, study, max_running=1, uses_history=history)
        with pytest.raises(StudyFull):
            claim(storage, study, OTHER, max_running=1, uses_history=history)
        storage.enqueue(study.id, {"x": 9})  # a queued trial waits the same way
        with pytest.raises(StudyFull):
            claim(storage, study, OTHER, max_running=1, uses_history=history)
        assert n_charged(storage, study) == 2, "a refused claim charges nothing"
        complete(storage, first, 1.0)
        queued = claimed(storage, study, OTHER, max_running=1, uses_history=history)
        assert queued.flat_params == {"x": 9}
        assert claimed(storage, study, max_running=2, uses_history=history).number == 2

    def test_studies_number_independently(self, storage: Storage) -> None:
        a, b = new_study(storage, "a"), new_study(storage, "b")
        assert [claimed(storage, a).number for _ in range(3)] == [0, 1, 2]
        assert claimed(storage, b).number == 0
        assert [t.number for t in storage.get_trials(b.id)] == [0]
        assert n_charged(storage, a) == 3 and n_charged(storage, b) == 1

    def test_max_trials_is_exact(self, storage: Storage) -> None:
        study = new_study(storage)
        recorder = Recorder()
        numbers = [claimed(storage, study, max_trials=3, propose=recorder).number for _ in range(3)]
        assert numbers == [0, 1, 2]
        assert claim(storage, study, max_trials=3, propose=recorder) is None
        assert len(recorder.calls) == 3, "propose must not be asked once the budget is spent"
        assert n_charged(storage, study) == 3
        assert storage.summary(study.id, "minimize").n_trials == 3
        assert claimed(storage, study, max_trials=4).number == 3  # a bigger budget goes on

    def test_max_trials_zero(self, storage: Storage) -> None:
        study = new_study(storage)
        assert claim(storage, study, max_trials=0) is None
        assert storage.get_trials(study.id) == []

    def test_propose_none_ends_without_a_trial(self, storage: Storage) -> None:
        study = new_study(storage)
        assert claim(storage, study, propose=lambda history, number: None) is None
        assert storage.get_trials(study.id) == []
        assert n_charged(storage, study) == 0
        assert claimed(storage, study).number == 0, "a refused proposal must not use a number"

    def test_propose_error_leaves_nothing(self, storage: Storage) -> None:
        study = new_study(storage)

        def broken(history: Sequence[FrozenTrial], number: int) -> dict[str, Any]:
            raise RuntimeError("sampler bug")

        with pytest.raises(RuntimeError, match="sampler bug"):
            claim(storage, study, propose=broken)
        assert storage.get_trials(study.id) == []
        assert claimed(storage, study).number == 0

    def test_propose_gets_the_next_number(self, storage: Storage) -> None:
        study = new_study(storage)
        recorder = Recorder()
        for _ in range(3):
            claimed(storage, study, propose=recorder)
        assert [number for _, number in recorder.calls] == [0, 1, 2]

    def test_history_holds_every_trial(self, storage: Storage) -> None:
        study = new_study(storage)
        done = claimed(storage, study)
        complete(storage, done, 1.5)
        failed = claimed(storage, study)
        assert failed.id is not None
        storage.finish(
            failed.id,
            OWNER,
            failed.lease_epoch,
            Outcome(TrialState.FAILED, failure_reason="error", failure_detail="boom"),
        )
        claimed(storage, study)  # stays RUNNING
        recorder = Recorder()
        claimed(storage, study, propose=recorder, uses_history=True)
        ((history, number),) = recorder.calls
        assert number == 3
        assert [t.number for t in history] == [0, 1, 2]
        assert [t.state for t in history] == [
            TrialState.COMPLETE,
            TrialState.FAILED,
            TrialState.RUNNING,
        ]
        assert history[0].value == 1.5
        assert history[1].failure_reason == "error"
        assert [t.flat_params for t in history] == [{"x": 0}, {"x": 1}, {"x": 2}]

    def test_history_is_current_on_every_claim(self, storage: Storage) -> None:
        study = new_study(storage)
        recorder = Recorder()
        first = claimed(storage, study, propose=recorder, uses_history=True)
        claimed(storage, study, propose=recorder, uses_history=True)
        complete(storage, first, 0.25)
        claimed(storage, study, propose=recorder, uses_history=True)
        histories = [[(t.number, t.state) for t in h] for h, _ in recorder.calls]
        assert histories == [
            [],
            [(0, TrialState.RUNNING)],
            [(0, TrialState.COMPLETE), (1, TrialState.RUNNING)],
        ]
        assert recorder.calls[2][0][0].value == 0.25

    def test_without_history_propose_sees_nothing(self, storage: Storage) -> None:
        study = new_study(storage)
        claimed(storage, study)
        recorder = Recorder()
        claimed(storage, study, propose=recorder, uses_history=False)
        assert recorder.calls == [([], 1)]

    def test_params_round_trip(self, storage: Storage) -> None:
        study = new_study(storage)
        params = {
            "lr": 1e-4,
            "opt": 1,
            "opt[1]/momentum": 0.9,
            "layers": 3,
            "name": "x/y ü",
            "flag": True,
            "none": None,
        }
        trial = claimed(storage, study, propose=lambda history, number: dict(params))
        assert trial.flat_params == params
        stored = storage.get_trials(study.id)[0].flat_params
        assert stored == params
        assert type(stored["layers"]) is int and type(stored["lr"]) is float

    # enqueue / WAITING --------------------------------------------------------------------

    def test_enqueue_is_claimed_first_oldest_first(self, storage: Storage) -> None:
        study = new_study(storage)
        claimed(storage, study)
        assert storage.enqueue(study.id, {"x": "first"}) == 1
        assert storage.enqueue(study.id, {"x": "second"}) == 2
        waiting = storage.get_trials(study.id, states=[TrialState.WAITING])
        assert [(t.number, t.lease_epoch, t.owner) for t in waiting] == [(1, 0, None), (2, 0, None)]
        recorder = Recorder()
        a = claimed(storage, study, OTHER, propose=recorder, worker="w2")
        b = claimed(storage, study, OTHER, propose=recorder)
        assert recorder.calls == [], "propose must not be asked while trials are WAITING"
        assert (a.number, a.flat_params) == (1, {"x": "first"})
        assert (b.number, b.flat_params) == (2, {"x": "second"})
        assert (a.state, a.owner, a.lease_epoch, a.worker) == (TrialState.RUNNING, OTHER, 1, "w2")
        assert trial_by_number(storage, study, 1).state is TrialState.RUNNING
        assert claimed(storage, study, propose=recorder).number == 3

    def test_lineage_is_stored_with_an_enqueued_trial_and_kept_by_its_retries(
        self, storage: Storage
    ) -> None:
        study = new_study(storage)
        lineage = {"parent": 0, "step": 5, "replaces": 1, "changed": {"lr": [0.1, 0.08]}}
        number = storage.enqueue(study.id, {"x": "pbt"}, lineage)
        assert trial_by_number(storage, study, number).lineage == lineage
        trial = claimed(storage, study, lease_seconds=SHORT_LEASE)
        assert (trial.number, trial.lineage) == (number, lineage)
        time.sleep(EXPIRE_WAIT)
        assert storage.sweep_stale(study.id, retry=True) == [number]
        (again,) = storage.get_trials(study.id, states=[TrialState.WAITING])
        assert (again.parent_number, again.lineage) == (number, lineage)
        assert claimed(storage, study).lineage == lineage
        assert claimed(storage, study, propose=lambda h, n: {"x": "new"}).lineage is None

    def test_a_retry_is_claimed_at_the_place_of_the_trial_it_reruns(
        self, storage: Storage
    ) -> None:
        study = new_study(storage)
        for x in ("a", "b", "c"):
            storage.enqueue(study.id, {"x": x})
        first = claimed(storage, study)
        assert first.flat_params == {"x": "a"}
        assert storage.finish(first.id, OWNER, 1, Outcome(TrialState.FAILED))  # type: ignore[arg-type]
        again = storage.retry(study.id, first.number)
        assert again == 3
        order = [claimed(storage, study).flat_params["x"] for _ in range(3)]
        assert order == ["a", "b", "c"], "the re-run of 'a' goes before 'b' and 'c'"

    def test_enqueued_trials_count_against_the_budget(self, storage: Storage) -> None:
        study = new_study(storage)
        storage.enqueue(study.id, {"x": "q0"})
        storage.enqueue(study.id, {"x": "q1"})
        assert n_charged(storage, study) == 2
        got = [claim(storage, study, max_trials=3) for _ in range(4)]
        assert [t.number if t else None for t in got] == [0, 1, 2, None]
        assert [t.flat_params for t in got if t] == [{"x": "q0"}, {"x": "q1"}, {"x": 2}]

    def test_waiting_is_claimed_even_when_budget_is_spent(self, storage: Storage) -> None:
        study = new_study(storage)
        claimed(storage, study, max_trials=1)
        storage.enqueue(study.id, {"x": "late"})
        trial = claim(storage, study, max_trials=1)
        assert trial is not None and trial.flat_params == {"x": "late"}
        assert claim(storage, study, max_trials=1) is None

    def test_waiting_is_claimed_even_when_propose_has_nothing(self, storage: Storage) -> None:
        study = new_study(storage)
        storage.enqueue(study.id, {"x": "q"})
        trial = claim(storage, study, propose=lambda history, number: None)
        assert trial is not None and trial.flat_params == {"x": "q"}
        assert claim(storage, study, propose=lambda history, number: None) is None

    # finish / report fencing --------------------------------------------------------------

    def test_finish_writes_the_outcome(self, storage: Storage) -> None:
        study = new_study(storage)
        trial = claimed(storage, study)
        assert trial.id is not None
        outcome = Outcome(TrialState.COMPLETE, 0.125, {"loss": 0.125, "acc": 0.9})
        assert storage.finish(trial.id, OWNER, trial.lease_epoch, outcome)
        (stored,) = storage.get_trials(study.id)
        assert stored.state is TrialState.COMPLETE
        assert stored.value == 0.125
        assert stored.metrics == {"loss": 0.125, "acc": 0.9}
        assert stored.failure_reason is None
        assert stored.finished_at is not None and stored.started_at is not None
        assert stored.finished_at >= stored.started_at
        assert stored.flat_params == {"x": 0}

    def test_finish_failed_and_pruned(self, storage: Storage) -> None:
        study = new_study(storage)
        failed, pruned = claimed(storage, study), claimed(storage, study)
        assert failed.id is not None and pruned.id is not None
        assert storage.finish(
            failed.id,
            OWNER,
            1,
            Outcome(TrialState.FAILED, failure_reason="invalid_value", failure_detail="NaN"),
        )
        assert storage.finish(pruned.id, OWNER, 1, Outcome(TrialState.PRUNED, None, {"loss": 3.0}))
        a, b = storage.get_trials(study.id)
        assert (a.state, a.value, a.failure_reason, a.failure_detail) == (
            TrialState.FAILED,
            None,
            "invalid_value",
            "NaN",
        )
        assert (b.state, b.value, b.metrics) == (TrialState.PRUNED, None, {"loss": 3.0})

    def test_finish_writes_params_distributions_and_user_attrs(self, storage: Storage) -> None:
        study = new_study(storage)
        trial = claim(storage, study, propose=lambda history, number: {})
        assert trial is not None and trial.id is not None
        distributions = {
            "lr": {"type": "float", "low": 1e-05, "high": 0.1, "log": True, "q": None},
            "opt": {
                "type": "choice",
                "options": [
                    {"type": "const", "value": "adam"},
                    {"type": "const", "value": "sgd"},
                ],
                "weights": None,
            },
        }
        user_attrs = {"note": "hello", "list": [1, 2], "nested": {"a": None}}
        assert storage.finish(
            trial.id,
            OWNER,
            trial.lease_epoch,
            Outcome(TrialState.COMPLETE, 1.0),
            flat_params={"lr": 0.001, "opt": 1},
            distributions=distributions,
            user_attrs=user_attrs,
        )
        (stored,) = storage.get_trials(study.id)
        assert stored.flat_params == {"lr": 0.001, "opt": 1}
        assert stored.distributions == distributions
        assert stored.user_attrs == user_attrs
        assert stored.params == {"lr": 0.001, "opt": "sgd"}

    def test_finish_is_fenced_by_owner_and_epoch(self, storage: Storage) -> None:
        study = new_study(storage)
        trial = claimed(storage, study)
        assert trial.id is not None
        outcome = Outcome(TrialState.COMPLETE, 1.0, {"loss": 1.0})
        assert not storage.finish(trial.id, OTHER, trial.lease_epoch, outcome)
        assert not storage.finish(trial.id, OWNER, trial.lease_epoch + 1, outcome)
        assert not storage.finish(trial.id, OWNER, trial.lease_epoch - 1, outcome)
        (stored,) = storage.get_trials(study.id)
        assert (stored.state, stored.value, stored.metrics) == (TrialState.RUNNING, None, {})
        assert storage.finish(trial.id, OWNER, trial.lease_epoch, outcome)

    def test_finishing_twice_is_refused(self, storage: Storage) -> None:
        study = new_study(storage)
        trial = claimed(storage, study)
        assert trial.id is not None
        assert storage.finish(trial.id, OWNER, 1, Outcome(TrialState.COMPLETE, 1.0))
        assert not storage.finish(trial.id, OWNER, 1, Outcome(TrialState.COMPLETE, 2.0))
        assert not storage.finish(
            trial.id, OWNER, 1, Outcome(TrialState.FAILED, failure_reason="error")
        )
        (stored,) = storage.get_trials(study.id)
        assert (stored.state, stored.value, stored.failure_reason) == (
            TrialState.COMPLETE,
            1.0,
            None,
        )

    def test_unknown_trial_is_refused(self, storage: Storage) -> None:
        new_study(storage)
        assert not storage.finish(987654, OWNER, 1, Outcome(TrialState.COMPLETE, 1.0))
        assert not storage.report(987654, OWNER, 1, 0, {"loss": 1.0})

    def test_report_and_get_metrics_in_order(self, storage: Storage) -> None:
        study = new_study(storage)
        trial = claimed(storage, study)
        assert trial.id is not None
        before = time.time()
        assert storage.report(trial.id, OWNER, 1, 0, {"loss": 1.0, "acc": 0.5})
        assert storage.report(trial.id, OWNER, 1, 1, {"loss": 0.5})
        assert storage.report(trial.id, OWNER, 1, 2, {"loss": -math.inf})
        assert storage.report(trial.id, OWNER, 1, None, {"final": 0.25})
        points = storage.get_metrics(trial.id)
        assert [(p.name, p.step, p.value) for p in points] == [
            ("loss", 0, 1.0),
            ("acc", 0, 0.5),
            ("loss", 1, 0.5),
            ("loss", 2, -math.inf),
            ("final", None, 0.25),
        ]
        stamps = [p.ts for p in points]
        assert stamps == sorted(stamps)
        assert all(abs(ts - before) < 60 for ts in stamps), "timestamps are epoch seconds"

    def test_metrics_belong_to_their_trial(self, storage: Storage) -> None:
        study = new_study(storage)
        a, b = claimed(storage, study), claimed(storage, study)
        assert a.id is not None and b.id is not None
        storage.report(a.id, OWNER, 1, 0, {"loss": 1.0})
        storage.report(b.id, OWNER, 1, 0, {"loss": 2.0})
        assert [p.value for p in storage.get_metrics(a.id)] == [1.0]
        assert [p.value for p in storage.get_metrics(b.id)] == [2.0]

    def test_get_metrics_many_reads_many_trials_at_once(self, storage: Storage) -> None:
        study = new_study(storage)
        a, b, c = claimed(storage, study), claimed(storage, study), claimed(storage, study)
        assert a.id is not None and b.id is not None and c.id is not None
        storage.report(a.id, OWNER, 1, 0, {"loss": 1.0, "acc": 0.1})
        storage.report(a.id, OWNER, 1, 1, {"loss": 0.5})
        storage.report(b.id, OWNER, 1, 0, {"acc": 0.2})
        many = storage.get_metrics_many([a.id, b.id, c.id, a.id])
        assert many == {a.id: storage.get_metrics(a.id), b.id: storage.get_metrics(b.id)}
        losses = storage.get_metrics_many([a.id, b.id], "loss")
        assert [(p.step, p.value) for p in losses[a.id]] == [(0, 1.0), (1, 0.5)]
        assert b.id not in losses, "a trial without points of that metric is absent"
        assert storage.get_metrics_many([]) == {}
        assert storage.get_metrics_many([987654]) == {}

    def test_metric_at_step_is_one_query_for_all_trials(self, storage: Storage) -> None:
        study = new_study(storage)
        curves = {  # trial -> reports (step, loss), in order
            0: [(1, 0.9), (2, 0.8), (3, 0.7)],
            1: [(1, 0.5), (3, 0.4), (3, 0.35), (6, 0.3)],  # step 3 reported twice: last wins
            2: [(5, 0.2)],
        }
        made = []
        for number, points in curves.items():
            trial = claimed(storage, study)
            assert trial.id is not None and trial.number == number
            for step, loss in points:
                assert storage.report(trial.id, OWNER, trial.lease_epoch, step, {"loss": loss,
                                                                                  "acc": -loss})
            made.append(trial)
        assert storage.report(made[0].id, OWNER, 1, None, {"loss": 0.0})  # no step: never picked
        complete(storage, made[0], 0.7)
        sid = study.id
        assert storage.metric_at_step(sid, "loss", 3) == {0: 0.7, 1: 0.35}
        assert storage.metric_at_step(sid, "acc", 3) == {0: -0.7, 1: -0.35}
        assert storage.metric_at_step(sid, "loss", 2, at="after") == {0: 0.8, 1: 0.35, 2: 0.2}
        assert storage.metric_at_step(sid, "loss", 4, at="after") == {1: 0.3, 2: 0.2}
        assert storage.metric_at_step(sid, "loss", 4, at="before") == {0: 0.7, 1: 0.35}
        assert storage.metric_at_step(sid, "loss", 0, at="before") == {}
        assert storage.metric_at_step(sid, "missing", 3) == {}
        assert storage.metric_at_step(sid, "loss", 3, states=[TrialState.COMPLETE]) == {0: 0.7}
        assert storage.metric_at_step(
            sid, "loss", 1, at="after", states=[TrialState.RUNNING]
        ) == {1: 0.5, 2: 0.2}
        other = new_study(storage, "other")
        assert storage.metric_at_step(other.id, "loss", 3) == {}
        # compute used, in steps: per trial last - first + 1 (steps 1-3, 1-6, 5 alone)
        assert storage.resource_used(sid) == 3 + 6 + 1
        assert storage.resource_used(other.id) == 0
        assert storage.report(made[2].id, OWNER, 1, 8, {"loss": 0.1})  # type: ignore[arg-type]
        assert storage.resource_used(sid) == 3 + 6 + 4

    def test_report_is_fenced(self, storage: Storage) -> None:
        study = new_study(storage)
        trial = claimed(storage, study)
        assert trial.id is not None
        assert not storage.report(trial.id, OTHER, 1, 0, {"loss": 1.0})
        assert not storage.report(trial.id, OWNER, 2, 0, {"loss": 1.0})
        assert storage.get_metrics(trial.id) == []
        assert storage.finish(trial.id, OWNER, 1, Outcome(TrialState.COMPLETE, 1.0))
        assert not storage.report(trial.id, OWNER, 1, 1, {"loss": 1.0}), "finished trial"
        assert storage.get_metrics(trial.id) == []

    def test_logs_are_fenced_and_ordered(self, storage: Storage) -> None:
        study = new_study(storage)
        trial = claimed(storage, study)
        assert trial.id is not None
        assert storage.append_logs(trial.id, OWNER, 1, "stdout", [(0, "a"), (1, "b")])
        assert storage.append_logs(trial.id, OWNER, 1, "stderr", [(0, "oops")])
        assert storage.append_logs(trial.id, OWNER, 1, "stdout", [(5, "f ü")])  # 2-4 omitted
        assert storage.append_logs(trial.id, OWNER, 1, "stdout", [])
        assert not storage.append_logs(trial.id, OTHER, 1, "stdout", [(6, "x")])
        assert not storage.append_logs(trial.id, OWNER, 2, "stdout", [(6, "x")])

        def lines(stream: str | None = None, after: int = -1) -> list[tuple[str, int, str]]:
            return [(x.stream, x.seq, x.text) for x in storage.get_logs(trial.id, stream, after)]

        assert lines("stdout") == [("stdout", 0, "a"), ("stdout", 1, "b"), ("stdout", 5, "f ü")]
        assert lines("stderr") == [("stderr", 0, "oops")]
        assert lines("stdout", 1) == [("stdout", 5, "f ü")]
        assert sorted(lines()) == sorted(lines("stdout") + lines("stderr"))
        complete(storage, trial, 1.0)
        assert not storage.append_logs(trial.id, OWNER, 1, "stdout", [(6, "late")])
        assert len(lines()) == 4
        assert storage.get_logs(987654) == []

    def test_get_trial_by_number(self, storage: Storage) -> None:
        a, b = new_study(storage, "a"), new_study(storage, "b")
        claimed(storage, a)
        second = claimed(storage, a)
        complete(storage, second, 2.0)
        only = claimed(storage, b)
        got = storage.get_trial(a.id, 1)
        assert got is not None
        assert (got.number, got.state, got.value, got.id) == (
            1,
            TrialState.COMPLETE,
            2.0,
            second.id,
        )
        assert got.flat_params == {"x": 1}
        other = storage.get_trial(b.id, 0)
        assert other is not None and other.id == only.id
        assert storage.get_trial(a.id, 2) is None
        assert storage.get_trial(a.id, -1) is None
        assert storage.get_trial(987654, 0) is None

    # leases: heartbeat and sweep ----------------------------------------------------------

    def test_heartbeat_keeps_a_short_lease_alive(self, storage: Storage) -> None:
        study = new_study(storage)
        kept = claimed(storage, study, OWNER, lease_seconds=1.0)
        lost = claimed(storage, study, OTHER, lease_seconds=1.0)
        deadline = time.monotonic() + 1.6
        while time.monotonic() < deadline:
            assert storage.heartbeat(OWNER, 1.0) == 1
            swept = storage.sweep_stale(study.id)
            assert kept.number not in swept
            time.sleep(0.1)
        states = {t.number: t.state for t in storage.get_trials(study.id)}
        assert states == {kept.number: TrialState.RUNNING, lost.number: TrialState.FAILED}
        complete(storage, kept, 1.0)
        assert storage.heartbeat(OWNER, 0.5) == 0, "finished trials hold no lease"

    def test_heartbeat_counts_only_the_owners_running_trials(self, storage: Storage) -> None:
        a, b = new_study(storage, "a"), new_study(storage, "b")
        claimed(storage, a, OWNER)
        claimed(storage, b, OWNER)
        done = claimed(storage, b, OWNER)
        claimed(storage, b, OTHER)
        complete(storage, done, 1.0)
        assert storage.heartbeat(OWNER, 60) == 2
        assert storage.heartbeat("nobody", 60) == 0

    def test_sweep_fails_expired_leases_only(self, storage: Storage) -> None:
        study = new_study(storage)
        stale = claimed(storage, study, OWNER, lease_seconds=CHECKED_LEASE)
        live = claimed(storage, study, OTHER, lease_seconds=LONG_LEASE)
        finished = claimed(storage, study, OWNER, lease_seconds=SHORT_LEASE)
        complete(storage, finished, 3.0)
        storage.enqueue(study.id, {"x": "queued"})
        assert storage.sweep_stale(study.id) == []  # nothing expired yet
        time.sleep(CHECKED_EXPIRE_WAIT)
        assert storage.sweep_stale(study.id) == [stale.number]
        trials = {t.number: t for t in storage.get_trials(study.id)}
        assert trials[stale.number].state is TrialState.FAILED
        assert trials[stale.number].failure_reason == "stale"
        assert OWNER in (trials[stale.number].failure_detail or "")
        assert trials[stale.number].finished_at is not None
        assert trials[live.number].state is TrialState.RUNNING
        assert trials[finished.number].state is TrialState.COMPLETE
        assert trials[finished.number].value == 3.0
        assert trials[3].state is TrialState.WAITING
        assert storage.sweep_stale(study.id) == [], "a swept trial is not swept again"
        assert storage.running_owners(study.id) == {OTHER}

    def test_swept_trial_is_fenced(self, storage: Storage) -> None:
        study = new_study(storage)
        trial = claimed(storage, study, lease_seconds=SHORT_LEASE)
        assert trial.id is not None
        time.sleep(EXPIRE_WAIT)
        assert storage.sweep_stale(study.id) == [0]
        assert not storage.report(trial.id, OWNER, trial.lease_epoch, 0, {"loss": 1.0})
        assert not storage.finish(
            trial.id, OWNER, trial.lease_epoch, Outcome(TrialState.COMPLETE, 1)
        )
        (stored,) = storage.get_trials(study.id)
        assert (stored.state, stored.failure_reason, stored.value) == (
            TrialState.FAILED,
            "stale",
            None,
        )

    def test_sweep_is_per_study(self, storage: Storage) -> None:
        a, b = new_study(storage, "a"), new_study(storage, "b")
        claimed(storage, a, lease_seconds=SHORT_LEASE)
        claimed(storage, b, lease_seconds=SHORT_LEASE)
        time.sleep(EXPIRE_WAIT)
        assert storage.sweep_stale(a.id) == [0]
        assert storage.get_trials(b.id)[0].state is TrialState.RUNNING

    def test_sweep_with_retry_requeues_once(self, storage: Storage) -> None:
        study = new_study(storage)
        params = {"lr": 0.01, "opt": 1, "opt[1]/momentum": 0.5}
        original = claimed(
            storage, study, lease_seconds=SHORT_LEASE, propose=lambda h, n: dict(params)
        )
        claimed(storage, study, OTHER)  # a live trial, untouched
        assert n_charged(storage, study) == 2
        time.sleep(EXPIRE_WAIT)
        assert storage.sweep_stale(study.id, retry=True) == [original.number]
        assert n_charged(storage, study) == 2, "a retried trial must not use up the budget"
        (copy,) = storage.get_trials(study.id, states=[TrialState.WAITING])
        assert copy.number == 2
        assert copy.flat_params == params
        assert copy.parent_number == original.number
        assert trial_by_number(storage, study, original.number).failure_reason == "stale"

        # the copy is claimed first, even with the budget spent
        retry = claim(storage, study, max_trials=2, lease_seconds=SHORT_LEASE)
        assert retry is not None
        assert (retry.number, retry.flat_params, retry.parent_number) == (2, params, 0)
        assert claim(storage, study, max_trials=2) is None
        assert storage.summary(study.id, "minimize").n_trials == 2

        # a retry of a retry is not re-queued again
        time.sleep(EXPIRE_WAIT)
        assert storage.sweep_stale(study.id, retry=True) == [2]
        assert storage.get_trials(study.id, states=[TrialState.WAITING]) == []
        assert n_charged(storage, study) == 2
        assert [t.number for t in storage.get_trials(study.id)] == [0, 1, 2]
        assert claim(storage, study, max_trials=2) is None

    def test_sweep_without_retry_keeps_the_charge(self, storage: Storage) -> None:
        study = new_study(storage)
        claimed(storage, study, lease_seconds=SHORT_LEASE)
        time.sleep(EXPIRE_WAIT)
        assert storage.sweep_stale(study.id) == [0]
        assert n_charged(storage, study) == 1
        assert storage.get_trials(study.id, states=[TrialState.WAITING]) == []
        assert claim(storage, study, max_trials=1) is None

    def test_dead_owners_are_swept_immediately(self, storage: Storage) -> None:
        study = new_study(storage)
        dead = claimed(storage, study, OWNER)
        alive = claimed(storage, study, OTHER)
        assert storage.running_owners(study.id) == {OWNER, OTHER}
        assert storage.sweep_stale(study.id, dead_owners=["someone-else"]) == []
        assert storage.sweep_stale(study.id, dead_owners=iter([OWNER])) == [dead.number]
        trials = {t.number: t for t in storage.get_trials(study.id)}
        assert trials[dead.number].state is TrialState.FAILED
        assert trials[dead.number].failure_reason == "stale"
        assert trials[alive.number].state is TrialState.RUNNING
        assert storage.running_owners(study.id) == {OTHER}

    def test_dead_owner_retry(self, storage: Storage) -> None:
        study = new_study(storage)
        claimed(storage, study, OWNER, max_trials=1)
        assert storage.sweep_stale(study.id, retry=True, dead_owners={OWNER}) == [0]
        retry = claim(storage, study, OTHER, max_trials=1)
        assert retry is not None and (retry.number, retry.parent_number) == (1, 0)
        assert retry.owner == OTHER

    # reading ------------------------------------------------------------------------------

    def test_get_trials_filters_by_state(self, storage: Storage) -> None:
        study = new_study(storage)
        done, failed, _running = (claimed(storage, study) for _ in range(3))
        complete(storage, done, 1.0)
        assert failed.id is not None
        storage.finish(failed.id, OWNER, 1, Outcome(TrialState.FAILED, failure_reason="error"))
        storage.enqueue(study.id, {"x": "w"})

        def numbers(states: Sequence[TrialState] | None) -> list[int]:
            return [t.number for t in storage.get_trials(study.id, states=states)]

        assert numbers(None) == [0, 1, 2, 3]
        assert numbers([TrialState.COMPLETE]) == [0]
        assert numbers([TrialState.RUNNING]) == [2]
        assert numbers([TrialState.WAITING]) == [3]
        assert numbers([TrialState.FAILED, TrialState.COMPLETE]) == [0, 1]
        assert numbers([TrialState.PRUNED]) == []
        assert numbers([]) == []

    def test_summary_of_an_empty_study(self, storage: Storage) -> None:
        study = new_study(storage)
        summary = storage.summary(study.id, "minimize")
        assert (summary.n_trials, summary.counts) == (0, {})
        assert (summary.best_number, summary.best_value, summary.complete_since_best) == (
            None,
            None,
            0,
        )

    @pytest.mark.parametrize(
        ("direction", "values", "best_number", "since"),
        [
            ("minimize", [3.0, 1.0, 2.0, 5.0], 1, 2),
            ("maximize", [3.0, 1.0, 2.0, 5.0], 3, 0),
            ("maximize", [3.0, 7.0, 2.0, 5.0], 1, 2),
            ("minimize", [5.0, -math.inf, math.inf, 0.0], 1, 2),
            ("maximize", [5.0, -math.inf, math.inf, 0.0], 2, 1),
            ("minimize", [math.inf, 1e308, -1e308, 2.0], 2, 1),
            ("maximize", [-math.inf, -1e308, -5.0, -math.inf], 2, 1),
            ("minimize", [2.0, 2.0, 2.0], 0, 2),  # ties: the earliest is best
        ],
    )
    def test_summary_best_and_since(
        self,
        storage: Storage,
        direction: str,
        values: list[float],
        best_number: int,
        since: int,
    ) -> None:
        study = new_study(storage, direction=direction)
        for value in values:
            complete(storage, claimed(storage, study), value)
            time.sleep(0.003)  # distinct finish times even on a millisecond clock
        summary = storage.summary(study.id, direction)
        assert summary.best_number == best_number
        assert summary.best_value == values[best_number]
        assert summary.complete_since_best == since
        assert summary.counts == {"COMPLETE": len(values)}
        assert summary.n_trials == len(values)

    def test_summary_counts_every_state(self, storage: Storage) -> None:
        study = new_study(storage)
        trials = [claimed(storage, study, lease_seconds=SHORT_LEASE) for _ in range(3)]
        trials += [claimed(storage, study) for _ in range(4)]
        complete(storage, trials[3], 4.0)
        time.sleep(0.003)
        complete(storage, trials[4], 2.0)
        assert trials[5].id is not None and trials[6].id is not None
        storage.finish(trials[5].id, OWNER, 1, Outcome(TrialState.PRUNED, None))
        storage.finish(trials[6].id, OWNER, 1, Outcome(TrialState.FAILED, failure_reason="error"))
        storage.enqueue(study.id, {"x": "w"})
        time.sleep(EXPIRE_WAIT)
        storage.sweep_stale(study.id, dead_owners=())  # 0, 1, 2 go stale
        claimed(storage, study)  # takes the WAITING one
        storage.enqueue(study.id, {"x": "w2"})
        summary = storage.summary(study.id, "minimize")
        assert summary.counts == {
            "COMPLETE": 2,
            "PRUNED": 1,
            "FAILED": 4,
            "RUNNING": 1,
            "WAITING": 1,
        }
        assert (summary.best_number, summary.best_value, summary.complete_since_best) == (4, 2.0, 0)
        assert summary.n_trials == 9

    def test_summary_ignores_unfinished_and_failed_values(self, storage: Storage) -> None:
        study = new_study(storage)
        pruned = claimed(storage, study)
        assert pruned.id is not None
        storage.finish(pruned.id, OWNER, 1, Outcome(TrialState.PRUNED, -100.0))
        claimed(storage, study)
        complete(storage, claimed(storage, study), 7.0)
        summary = storage.summary(study.id, "minimize")
        assert (summary.best_number, summary.best_value) == (2, 7.0)

    # reads for the dashboard (storage/queries.py is the reference) ------------------------

    def _mixed_study(self, storage: Storage) -> tuple[StudyRecord, list[FrozenTrial]]:
        """Ten finished trials with params x (number), mixed text/number `t`, values with a
        NaN and a missing one, final metric `acc`; one RUNNING."""
        study = new_study(storage)
        made = []
        for i in range(10):
            params = {"x": float(i), "t": (i % 3) if i % 2 else f"s{i % 4}"}
            made.append(claimed(storage, study, propose=lambda h, n, p=params: p))
        for i, trial in enumerate(made):
            assert trial.id is not None
            value = math.nan if i == 4 else None if i == 7 else float((i * 7) % 10)
            state = TrialState.PRUNED if i == 7 else TrialState.COMPLETE
            assert storage.finish(trial.id, OWNER, trial.lease_epoch,
                                  Outcome(state, value, {"acc": i / 10}))
        made.append(claimed(storage, study, propose=lambda h, n: {"x": 99.0, "t": 1}))
        return study, made

    @pytest.mark.parametrize("sort", ["number", "value", "state", "params.x", "params.t",
                                      "metrics.acc", "duration"])
    @pytest.mark.parametrize("descending", [False, True])
    def test_query_trials_sorts_as_the_reference(
        self, storage: Storage, sort: str, descending: bool
    ) -> None:
        from hypersearch.storage.queries import TrialQuery, select_trials

        study, _ = self._mixed_study(storage)
        query = TrialQuery(sort=sort, descending=descending, limit=4, offset=2)
        page, total = storage.query_trials(study.id, query)
        expected, expected_total = select_trials(storage.get_trials(study.id), query)
        if sort == "duration":  # durations tie within a clock tick: compare the values
            assert [t.duration for t in page] == [t.duration for t in expected]
        else:
            assert [t.number for t in page] == [t.number for t in expected]
        assert total == expected_total == 11

    @pytest.mark.parametrize("descending", [False, True])
    def test_query_trials_sorts_params_of_every_kind_as_the_reference(
        self, storage: Storage, descending: bool
    ) -> None:
        """Bools, None, NaN, case and non-ASCII text, a quoted key, enqueued trials and
        parameters first known at finish (define-by-run) sort and filter as the reference;
        so do final metrics with NaN and infinite values."""
        from hypersearch.storage.queries import TrialQuery, select_trials

        study = new_study(storage)
        key = 'we"ird\\key'
        kinds: list[Any] = [3, True, None, math.nan, "b", "B", "é", -1.5, False, "a", 2, "10"]
        for i, v in sorted(enumerate(kinds), key=lambda pair: pair[0] % 3 == 0):
            params = {"v": v, key: i % 4}
            if i % 3 == 0:  # last: a claim would take a waiting trial
                storage.enqueue(study.id, params)
            elif i % 3 == 1:
                claimed(storage, study, propose=lambda h, n, p=params: p)
            else:  # define-by-run: nothing known at claim, everything at finish
                trial = claimed(storage, study, propose=lambda h, n: {})
                assert trial.id is not None
                metric = [math.nan, math.inf, -math.inf, 0.5][i % 4]
                assert storage.finish(trial.id, OWNER, trial.lease_epoch,
                                      Outcome(TrialState.COMPLETE, float(i), {"m": metric}),
                                      flat_params=params)
        for claimed_trial in storage.get_trials(study.id, [TrialState.RUNNING]):
            assert claimed_trial.id is not None
            assert storage.finish(claimed_trial.id, OWNER, claimed_trial.lease_epoch,
                                  Outcome(TrialState.PRUNED, 1.0, {"m": claimed_trial.number}))
        trials = storage.get_trials(study.id)
        for sort in ("params.v", f"params.{key}", "metrics.m"):
            query = TrialQuery(sort=sort, descending=descending)
            page, total = storage.query_trials(study.id, query)
            expected, _ = select_trials(trials, query)
            assert [t.number for t in page] == [t.number for t in expected], sort
            assert total == len(kinds)
            for limit in (1, 3):  # every window, across numbers, text and missing values
                for offset in range(len(kinds) + 1):
                    window = TrialQuery(sort=sort, descending=descending, limit=limit,
                                        offset=offset, states=(TrialState.COMPLETE,
                                                               TrialState.PRUNED))
                    page, total = storage.query_trials(study.id, window)
                    expected, expected_total = select_trials(trials, window)
                    assert [t.number for t in page] == [t.number for t in expected], window
                    assert total == expected_total
        for ranges in (((f"params.{key}", 1.0, 2.0), ("params.v", -2.0, 2.5)),
                       (("metrics.m", -math.inf, 4.0),), (("metrics.m", 1.0, None),)):
            query = TrialQuery(ranges=ranges, sort="params.v", descending=descending)
            page, total = storage.query_trials(study.id, query)
            expected, expected_total = select_trials(trials, query)
            assert [t.number for t in page] == [t.number for t in expected], ranges
            assert total == expected_total > 0, ranges

    def test_query_trials_filters_states_ranges_numbers(self, storage: Storage) -> None:
        from hypersearch.storage.queries import TrialQuery

        study, _ = self._mixed_study(storage)

        def numbers(**kwargs: Any) -> tuple[list[int], int]:
            page, total = storage.query_trials(study.id, TrialQuery(**kwargs))
            return [t.number for t in page], total

        assert numbers(states=(TrialState.PRUNED, TrialState.RUNNING)) == ([7, 10], 2)
        assert numbers(ranges=(("params.x", 2.0, 5.0),)) == ([2, 3, 4, 5], 4)
        assert numbers(ranges=(("value", None, 3.0),)) == ([0, 3, 6, 9], 4), "NaN, None out"
        assert numbers(ranges=(("metrics.acc", 0.75, None),)) == ([8, 9], 2)
        assert numbers(ranges=(("params.t", 1.0, 2.0),)) == ([1, 5, 7, 10], 4), "text: no number"
        assert numbers(numbers=(8, 3, 42), sort="value") == ([3, 8], 2)
        assert numbers(limit=3, offset=9) == ([9, 10], 11)

    def test_trial_outlines_and_activity(self, storage: Storage) -> None:
        study, made = self._mixed_study(storage)
        values = storage.completed_values(study.id)
        assert [n for n, _ in values] == [0, 1, 2, 3, 4, 5, 6, 8, 9] and values[1] == (1, 7.0)
        outlines = storage.trial_outlines(study.id, [TrialState.COMPLETE])
        assert [o.number for o in outlines] == [0, 1, 2, 3, 4, 5, 6, 8, 9]
        assert outlines[1].value == 7.0 and outlines[1].finished_at is not None
        latest = storage.trial_outlines(study.id, latest=3)
        assert [o.number for o in latest] == [8, 9, 10] and latest[-1].finished_at is None
        version, reports, n_running = storage.activity(study.id)
        assert n_running == 1
        first, last = storage.time_span(study.id)
        assert first is not None and last is not None and first <= last
        assert first == min(t.started_at for t in storage.get_trials(study.id))
        running = made[-1]
        assert running.id is not None
        assert storage.report(running.id, OWNER, running.lease_epoch, 0, {"loss": 1.0})
        version2, reports2, _ = storage.activity(study.id)
        assert version2 == version and reports2 > reports, "a report moves `reports` only"
        storage.finish(running.id, OWNER, running.lease_epoch, Outcome(TrialState.COMPLETE, 1.0))
        assert storage.activity(study.id)[0] > version, "a finish moves the version"
        assert storage.activity(study.id)[2] == 0

    def test_notes(self, storage: Storage) -> None:
        study = new_study(storage)
        storage.add_note(study.id, 3, "first <b>")
        storage.add_note(study.id, 3, "second")
        storage.add_note(study.id, None, "on the study")
        assert [n.text for n in storage.get_notes(study.id, 3)] == ["first <b>", "second"]
        assert [n.text for n in storage.get_notes(study.id)] == ["on the study"]
        assert storage.get_notes(study.id, 4) == []
        assert storage.latest_notes(study.id, [3, 4]) == {3: "second"}
