"""hyperopt's `Trials`, its constants and trial-document helpers, backed by a hypersearch study.

`Trials` keeps hyperopt-shaped trial documents in memory (``trials.trials``, ``results``,
``losses()``, ``argmin``...), so results may hold anything (a fitted ``model``); each trial also
goes to a hypersearch study, which is what the samplers learn from. ``Trials()`` keeps that study
in memory; ``Trials(storage="sqlite:///hpo.db", name="mnist")`` keeps it in a database (SQLite,
PostgreSQL) in place of MongoTrials: a later ``Trials`` with the same storage and name, in any
process, reloads the finished trials and ``fmin`` continues the search. From storage come the
JSON-safe keys of each result; the rest lived in the process that ran it.
"""

from __future__ import annotations

import datetime
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hypersearch.errors import HypersearchError
from hypersearch.integrations.hyperopt.exceptions import AllTrialsFailed, InvalidTrial

if TYPE_CHECKING:
    from hypersearch.study import Study

STATUS_NEW = "new"
STATUS_RUNNING = "running"
STATUS_SUSPENDED = "suspended"
STATUS_OK = "ok"
STATUS_FAIL = "fail"
STATUS_STRINGS = (STATUS_NEW, STATUS_RUNNING, STATUS_SUSPENDED, STATUS_OK, STATUS_FAIL)

JOB_STATE_NEW = 0
JOB_STATE_RUNNING = 1
JOB_STATE_DONE = 2
JOB_STATE_ERROR = 3
JOB_STATE_CANCEL = 4
JOB_STATES = [JOB_STATE_NEW, JOB_STATE_RUNNING, JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_CANCEL]
JOB_VALID_STATES = {JOB_STATE_NEW, JOB_STATE_RUNNING, JOB_STATE_DONE}

TRIAL_KEYS = ["tid", "spec", "result", "misc", "state", "owner", "book_time", "refresh_time", "exp_key"]
TRIAL_MISC_KEYS = ["tid", "cmd", "idxs", "vals"]
CMD = ("domain_attachment", "FMinIter_Domain")

RESULT_ATTR = "hyperopt_result"  # the study's user attribute holding a result's JSON-safe keys


def new_doc(tid: Any, vals: Mapping[str, Any], labels: Sequence[str], exp_key: str | None) -> dict[str, Any]:
    """A trial document as hyperopt's fmin writes it: every label in misc, ``[]`` when inactive."""
    return {
        "state": JOB_STATE_NEW,
        "tid": tid,
        "spec": None,
        "result": {"status": STATUS_NEW},
        "misc": {
            "tid": tid,
            "cmd": CMD,
            "workdir": None,
            "idxs": {label: [tid] if label in vals else [] for label in labels},
            "vals": {label: [vals[label]] if label in vals else [] for label in labels},
        },
        "exp_key": exp_key,
        "owner": None,
        "version": 0,
        "book_time": None,
        "refresh_time": None,
    }


def miscs_to_idxs_vals(miscs: Sequence[Mapping[str, Any]], keys: Sequence[str] | None = None) -> tuple[dict, dict]:
    """``({label: [tid, ...]}, {label: [value, ...]})`` over the given trials' misc."""
    if keys is None:
        keys = list(miscs[0]["idxs"]) if miscs else []
    idxs: dict[str, list[Any]] = {k: [] for k in keys}
    vals: dict[str, list[Any]] = {k: [] for k in keys}
    for misc in miscs:
        for key in keys:
            idxs[key].extend(misc["idxs"].get(key, []))
            vals[key].extend(misc["vals"].get(key, []))
    return idxs, vals


def spec_from_misc(misc: Mapping[str, Any]) -> dict[str, Any]:
    """``{label: value}`` of the active labels of one trial."""
    return {k: v[0] for k, v in misc["vals"].items() if v}


def validate_timeout(timeout: Any) -> None:
    if timeout is not None and (
        not isinstance(timeout, numbers.Number) or isinstance(timeout, bool) or timeout <= 0  # type: ignore[operator]
    ):
        raise HypersearchError(
            f"The timeout argument should be None or a positive value. Given value: {timeout}"
        )


def validate_loss_threshold(loss_threshold: Any) -> None:
    if loss_threshold is not None and (
        not isinstance(loss_threshold, numbers.Number) or isinstance(loss_threshold, bool)
    ):
        raise HypersearchError(
            "The loss_threshold argument should be None or a numeric value. "
            f"Given value: {loss_threshold}"
        )


def _loss_is_nan(loss: Any) -> bool:
    try:
        return math.isnan(float(loss))
    except (TypeError, ValueError):
        return True


class Trials:
    """The trials of a search, as hyperopt documents; see the module docstring.

    `storage`: None (in memory) or a database URL such as ``"sqlite:///hpo.db"``; `name`: the
    study's name there (default ``exp_key`` or ``"hyperopt"``). `study` is the hypersearch
    study behind it (None until the first ``fmin`` of an in-memory Trials).
    """

    asynchronous = False

    def __init__(
        self,
        exp_key: str | None = None,
        refresh: bool = True,
        *,
        storage: Any = None,
        name: str | None = None,
    ) -> None:
        self._ids: set[Any] = set()
        self._dynamic_trials: list[dict[str, Any]] = []
        self._exp_key = exp_key
        self.attachments: dict[str, Any] = {}
        self._storage_url = storage
        self._name = name or exp_key or ("hyperopt" if storage is not None else None)
        self._storage: Any = None
        self.study: Study | None = None
        self._told: set[Any] = set()  # tids of the documents that are trials of the study
        if storage is not None:
            self._reload()
        if refresh:
            self.refresh()

    # -- the study behind it ---------------------------------------------------------------------

    def _open_storage(self) -> Any:
        if self._storage is None:
            from hypersearch.storage import get_storage

            self._storage = get_storage(self._storage_url or "memory")
            if self._name is None:
                self._name = f"hyperopt-{id(self):x}"
        return self._storage

    def _reload(self) -> None:
        """Read the finished trials of the stored study not known here yet (those of other
        processes sharing it too), if there is one."""
        from hypersearch.integrations.hyperopt.space import label_of
        from hypersearch.study import load_study

        storage = self._open_storage()
        if storage.get_study(self._name) is None:
            return
        self.study = load_study(self._name, storage)
        labels = sorted(label_of(path) for path in (self.study.space.names if self.study.space else []))
        for record in self.study.trials:
            if record.number in self._ids:
                continue  # known here already (run by this process, or read before)
            doc = _doc_of_record(record, labels, self._exp_key)
            if doc is not None:
                self._dynamic_trials.append(doc)
                self._told.add(doc["tid"])
                self._ids.add(doc["tid"])

    # -- hyperopt's Trials API -------------------------------------------------------------------

    def aname(self, trial: Mapping[str, Any], name: str) -> str:
        return f"ATTACH::{trial['tid']}::{name}"

    def trial_attachments(self, trial: Mapping[str, Any]) -> _Attachments:
        """``trials.trial_attachments(doc)[name]``: what the objective returned under 'attachments'."""
        return _Attachments(self, trial)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._trials)

    def __len__(self) -> int:
        return len(self._trials)

    def __getitem__(self, item: Any) -> Any:
        raise NotImplementedError("index trials.trials instead (by position)")

    def refresh(self) -> None:
        self._trials = [
            t for t in self._dynamic_trials
            if t["state"] in JOB_VALID_STATES and (self._exp_key is None or t["exp_key"] == self._exp_key)
        ]
        self._ids.update(t["tid"] for t in self._trials)

    @property
    def trials(self) -> list[dict[str, Any]]:
        return self._trials

    @property
    def tids(self) -> list[Any]:
        return [t["tid"] for t in self._trials]

    @property
    def specs(self) -> list[Any]:
        return [t["spec"] for t in self._trials]

    @property
    def results(self) -> list[dict[str, Any]]:
        return [t["result"] for t in self._trials]

    @property
    def miscs(self) -> list[dict[str, Any]]:
        return [t["misc"] for t in self._trials]

    @property
    def idxs_vals(self) -> tuple[dict, dict]:
        return miscs_to_idxs_vals(self.miscs)

    @property
    def idxs(self) -> dict[str, list[Any]]:
        return self.idxs_vals[0]

    @property
    def vals(self) -> dict[str, list[Any]]:
        return self.idxs_vals[1]

    def assert_valid_trial(self, trial: Any) -> Any:
        if not (hasattr(trial, "keys") and hasattr(trial, "values")):
            raise InvalidTrial(f"trial should be dict-like, got {trial!r}")
        missing = [key for key in TRIAL_KEYS if key not in trial]
        if missing:
            raise InvalidTrial(f"trial missing key {missing[0]!r}")
        missing = [key for key in TRIAL_MISC_KEYS if key not in trial["misc"]]
        if missing:
            raise InvalidTrial(f"trial['misc'] missing key {missing[0]!r}")
        if trial["tid"] != trial["misc"]["tid"]:
            raise InvalidTrial(f"tid mismatch between root and misc: {trial['tid']!r}")
        if trial["exp_key"] != self._exp_key:
            raise InvalidTrial(f"wrong exp_key: {trial['exp_key']!r}, not {self._exp_key!r}")
        return trial

    def _insert_trial_docs(self, docs: Sequence[dict[str, Any]]) -> list[Any]:
        self._dynamic_trials.extend(docs)
        return [doc["tid"] for doc in docs]

    def insert_trial_doc(self, doc: dict[str, Any]) -> Any:
        """Add a document (call `refresh` to see it in `trials`). A NEW one is evaluated first by
        the next `fmin`; a DONE one is told to the study there, so the search learns from it."""
        return self._insert_trial_docs([self.assert_valid_trial(doc)])[0]

    def insert_trial_docs(self, docs: Sequence[dict[str, Any]]) -> list[Any]:
        return self._insert_trial_docs([self.assert_valid_trial(doc) for doc in docs])

    def new_trial_ids(self, n: int) -> list[int]:
        start = len(self._ids)
        ids = list(range(start, start + n))
        self._ids.update(ids)
        return ids

    def new_trial_docs(self, tids: Sequence[Any], specs: Sequence[Any], results: Sequence[Any], miscs: Sequence[Any]) -> list[dict[str, Any]]:
        if not len(tids) == len(specs) == len(results) == len(miscs):
            raise InvalidTrial("new_trial_docs: tids, specs, results and miscs differ in length")
        docs = []
        for tid, spec, result, misc in zip(tids, specs, results, miscs, strict=True):
            doc = new_doc(tid, {}, [], self._exp_key)
            doc.update(spec=spec, result=result, misc=misc)
            docs.append(doc)
        return docs

    def delete_all(self) -> None:
        """Forget every trial. An in-memory Trials starts a fresh study on the next fmin; a stored
        study is left as it is (delete it with hypersearch's tools), and refused here."""
        if self._storage_url is not None:
            raise HypersearchError(
                f"delete_all() on a Trials stored in {self._storage_url!r}: the stored study "
                f"{self._name!r} is kept; delete it with `hypersearch delete` or use another name"
            )
        self._dynamic_trials = []
        self.attachments = {}
        self._told = set()
        self.study = None
        self._storage = None
        self._name = None
        self.refresh()

    def count_by_state_synced(self, arg: Any, trials: Sequence[dict[str, Any]] | None = None) -> int:
        trials = self._trials if trials is None else trials
        states = {arg} if arg in JOB_STATES else set(arg)
        return sum(1 for t in trials if t["state"] in states)

    def count_by_state_unsynced(self, arg: Any) -> int:
        docs = [t for t in self._dynamic_trials if self._exp_key is None or t["exp_key"] == self._exp_key]
        return self.count_by_state_synced(arg, trials=docs)

    def losses(self, bandit: Any = None) -> list[Any]:
        return [r.get("loss") for r in self.results]

    def statuses(self, bandit: Any = None) -> list[Any]:
        return [r.get("status") for r in self.results]

    def average_best_error(self, bandit: Any = None) -> float:
        """The true loss (``true_loss``, else ``loss``) of the best ok trial. hyperopt weighs
        several trials by ``loss_variance`` when given; here the lowest loss wins."""
        ok = [r for r in self.results if r.get("status") == STATUS_OK and not _loss_is_nan(r.get("loss"))]
        if not ok:
            raise ValueError("Empty loss vector")
        best = min(ok, key=lambda r: float(r["loss"]))
        return float(best.get("true_loss", best["loss"]))

    @property
    def best_trial(self) -> dict[str, Any]:
        """The trial with the lowest non-NaN loss and status 'ok'; AllTrialsFailed if none."""
        candidates = [
            t for t in self._trials
            if t["result"].get("status") == STATUS_OK and not _loss_is_nan(t["result"].get("loss"))
        ]
        if not candidates:
            raise AllTrialsFailed("no trial finished with status 'ok' and a loss that is not NaN")
        return min(candidates, key=lambda t: float(t["result"]["loss"]))

    @property
    def argmin(self) -> dict[str, Any]:
        """``{label: value}`` of the best trial (a choice's value is its option index)."""
        return spec_from_misc(self.best_trial["misc"])

    def fmin(self, fn: Any, space: Any, algo: Any = None, max_evals: Any = None, timeout: Any = None,
             loss_threshold: Any = None, max_queue_len: int = 1, rstate: Any = None,
             verbose: bool = False, pass_expr_memo_ctrl: Any = None,
             catch_eval_exceptions: bool = False, return_argmin: bool = True,
             show_progressbar: bool = True, early_stop_fn: Any = None,
             trials_save_file: str = "", points_to_evaluate: Any = None) -> Any:
        """``fmin(..., trials=self)``; see `hypersearch.hyperopt.fmin`."""
        from hypersearch.integrations.hyperopt.fmin import fmin

        return fmin(
            fn, space, algo=algo, max_evals=max_evals, timeout=timeout,
            loss_threshold=loss_threshold, trials=self, rstate=rstate, verbose=verbose,
            max_queue_len=max_queue_len, allow_trials_fmin=False,  # no recursion
            pass_expr_memo_ctrl=pass_expr_memo_ctrl, catch_eval_exceptions=catch_eval_exceptions,
            return_argmin=return_argmin, show_progressbar=show_progressbar,
            early_stop_fn=early_stop_fn, trials_save_file=trials_save_file,
            points_to_evaluate=points_to_evaluate,
        )


class _Attachments:
    def __init__(self, trials: Trials, trial: Mapping[str, Any]) -> None:
        self._trials, self._trial = trials, trial

    def _key(self, name: str) -> str:
        return self._trials.aname(self._trial, name)

    def __contains__(self, name: str) -> bool:
        return self._key(name) in self._trials.attachments

    def __getitem__(self, name: str) -> Any:
        return self._trials.attachments[self._key(name)]

    def __setitem__(self, name: str, value: Any) -> None:
        self._trials.attachments[self._key(name)] = value

    def __delitem__(self, name: str) -> None:
        del self._trials.attachments[self._key(name)]


def trials_from_docs(docs: Sequence[dict[str, Any]], validate: bool = True, **kwargs: Any) -> Trials:
    """A Trials holding the given documents."""
    trials = Trials(**kwargs)
    if validate:
        trials.insert_trial_docs(docs)
    else:
        trials._insert_trial_docs(docs)
    trials.refresh()
    return trials


def _when(timestamp: float | None) -> datetime.datetime | None:
    # hyperopt's times are naive UTC datetimes rounded to the millisecond
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _doc_of_record(record: Any, labels: Sequence[str], exp_key: str | None) -> dict[str, Any] | None:
    """The hyperopt document of a finished study trial (None for one not finished)."""
    from hypersearch.integrations.hyperopt.space import label_of
    from hypersearch.trial import FailureReason, TrialState

    if record.state not in (TrialState.COMPLETE, TrialState.FAILED):
        return None
    doc = new_doc(record.number, {label_of(p): v for p, v in record.flat_params.items()}, labels, exp_key)
    stored = record.user_attrs.get(RESULT_ATTR)
    doc.update(book_time=_when(record.started_at), refresh_time=_when(record.finished_at))
    error = record.failure_detail or ""
    if record.failure_reason == FailureReason.ERROR.value:  # the objective raised
        doc["state"] = JOB_STATE_ERROR
        doc["misc"]["error"] = tuple(error.split(": ", 1)) if ": " in error else ("", error)
    elif record.state is TrialState.COMPLETE:
        doc.update(state=JOB_STATE_DONE, result=stored or {"loss": record.value, "status": STATUS_OK})
    elif record.failure_reason == FailureReason.STATUS_FAIL.value:
        doc.update(state=JOB_STATE_DONE, result=stored or {"status": STATUS_FAIL})
    else:
        doc["state"] = JOB_STATE_ERROR
        detail = (record.failure_detail or record.failure_reason or "").splitlines()
        doc["misc"]["error"] = (str(record.failure_reason), detail[0] if detail else "")
    return doc


__all__ = [
    "JOB_STATES",
    "JOB_STATE_CANCEL",
    "JOB_STATE_DONE",
    "JOB_STATE_ERROR",
    "JOB_STATE_NEW",
    "JOB_STATE_RUNNING",
    "JOB_VALID_STATES",
    "STATUS_FAIL",
    "STATUS_NEW",
    "STATUS_OK",
    "STATUS_RUNNING",
    "STATUS_STRINGS",
    "STATUS_SUSPENDED",
    "TRIAL_KEYS",
    "TRIAL_MISC_KEYS",
    "Trials",
    "miscs_to_idxs_vals",
    "spec_from_misc",
    "trials_from_docs",
    "validate_loss_threshold",
    "validate_timeout",
]
