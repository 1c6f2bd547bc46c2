"""The in-script client: validation, the tagged line, the fd channel, round trips."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import threading
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypersearch import client
from hypersearch.client import format_line, in_trial, report
from hypersearch.execution.metric_lines import MetricEvent, MetricParser, parse_client_line


@pytest.fixture(autouse=True)
def _no_fd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(client.REPORT_FD_ENV, raising=False)
    monkeypatch.delenv(client.TRIAL_ENV, raising=False)


def read_pipe(fd: int) -> str:
    chunks = []
    while data := os.read(fd, 65536):
        chunks.append(data)
    return b"".join(chunks).decode()


def same_values(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


# -- format and validation ----------------------------------------------------------------------


def test_documented_line_format() -> None:
    assert (
        format_line(step=3, val_acc=0.91)
        == '@hypersearch {"step": 3, "metrics": {"val_acc": 0.91}}'
    )
    assert format_line(loss=1) == '@hypersearch {"step": null, "metrics": {"loss": 1.0}}'
    line = format_line(0, a=math.nan, b=math.inf, c=-math.inf)
    assert line == '@hypersearch {"step": 0, "metrics": {"a": "nan", "b": "inf", "c": "-inf"}}'
    assert "\n" not in format_line(**{"x" * 1000: 1.0})


def test_module_docstring_documents_the_format() -> None:
    doc = client.__doc__ or ""
    assert '@hypersearch {"step": 3, "metrics": {"val_acc": 0.91' in doc
    assert '"nan"' in doc and '"inf"' in doc and '"-inf"' in doc
    assert client.REPORT_FD_ENV in doc


def test_accepts_real_numbers_of_many_kinds() -> None:
    line = format_line(
        step=np.int64(2),
        a=np.float32(0.5),
        b=np.int32(3),
        c=Fraction(1, 4),
        d=Decimal("0.125"),
        e=np.array(1.5),
        f=np.float64(2.5),
    )
    event = parse_client_line(line)
    assert event == MetricEvent(
        2, {"a": 0.5, "b": 3.0, "c": 0.25, "d": 0.125, "e": 1.5, "f": 2.5}, "client"
    )


def test_names_with_punctuation() -> None:
    event = parse_client_line(format_line(**{"train/loss": 1.0, "top-1": 2.0, "a.b": 3.0, "_x": 4}))
    assert event is not None
    assert event.values == {"train/loss": 1.0, "top-1": 2.0, "a.b": 3.0, "_x": 4.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one metric"),
        ({"acc": True}, "bool"),
        ({"acc": np.bool_(True)}, "bool"),
        ({"acc": "0.5"}, "text"),
        ({"acc": b"1"}, "text"),
        ({"acc": None}, "real number"),
        ({"acc": [1.0]}, "real number"),
        ({"acc": np.array([1.0, 2.0])}, "real number"),
        ({"acc": 1 + 2j}, "complex"),
        ({"acc": 10**400}, "too large"),
        ({"": 1.0}, "non-empty"),
        ({"1acc": 1.0}, "'1acc' is invalid"),
        ({"val acc": 1.0}, "'val acc' is invalid"),
        ({"acc!": 1.0}, "invalid"),
        ({"step": -1, "acc": 1.0}, "step must be >= 0"),
        ({"step": 1.0, "acc": 1.0}, "step must be an int"),
        ({"step": "3", "acc": 1.0}, "step must be an int"),
        ({"step": True, "acc": 1.0}, "bool"),
    ],
)
def test_validation_errors(
    kwargs: dict[str, object], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=message):
        report(**kwargs)  # type: ignore[arg-type]
    assert capsys.readouterr().out == ""  # nothing written on error


# -- stdout path --------------------------------------------------------------------------------


def test_report_prints_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    report(step=3, val_acc=0.91)
    assert capsys.readouterr().out == '@hypersearch {"step": 3, "metrics": {"val_acc": 0.91}}\n'


def test_stdout_round_trip_with_special_values(capsys: pytest.CaptureFixture[str]) -> None:
    values = {"val_acc": 0.91, "loss": math.nan, "up": math.inf, "down": -math.inf, "tiny": 5e-324}
    report(step=7, **values)
    report(**{"x": 1.0})
    out = capsys.readouterr().out
    parser = MetricParser(["val_acc"])  # declared or not, client lines give every metric
    events = [e for line in out.splitlines() for e in parser.feed(line)]
    assert len(events) == 2
    assert events[0].step == 7 and events[0].source == "client"
    assert same_values(events[0].values, values)
    assert events[1] == MetricEvent(None, {"x": 1.0}, "client")


def test_stdout_none_is_tolerated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", None)
    report(step=1, loss=0.5)  # no exception


def test_threads_never_interleave_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    class ChunkyStream(io.StringIO):
        def write(self, s: str) -> int:  # writes in two halves, like an unlocked stream might
            half = len(s) // 2
            super().write(s[:half])
            threading.Event().wait(0.0001)
            return super().write(s[half:])

    stream = ChunkyStream()
    monkeypatch.setattr(sys, "stdout", stream)

    def work(k: int) -> None:
        for i in range(50):
            report(step=i, **{f"m{k}": float(i)})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 200
    assert all(parse_client_line(line) is not None for line in lines)


# -- fd path ------------------------------------------------------------------------------------


def test_fd_round_trip(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    read_fd, write_fd = os.pipe()
    try:
        monkeypatch.setenv(client.REPORT_FD_ENV, str(write_fd))
        values = {"val_acc": 0.91, "loss": math.nan, "up": math.inf, "down": -math.inf}
        report(step=3, **values)
        report(epoch_time=12)
    finally:
        os.close(write_fd)
    try:
        data = read_pipe(read_fd)
    finally:
        os.close(read_fd)
    assert capsys.readouterr().out == ""  # the fd channel replaces stdout
    lines = data.splitlines()
    assert len(lines) == 2 and data.endswith("\n")
    first = parse_client_line(lines[0])
    assert first is not None and first.step == 3 and same_values(first.values, values)
    assert parse_client_line(lines[1]) == MetricEvent(None, {"epoch_time": 12.0}, "client")
    # the same line read through the general parser
    assert MetricParser([]).feed(lines[1]) == [MetricEvent(None, {"epoch_time": 12.0}, "client")]


def test_fd_line_is_one_json_line(monkeypatch: pytest.MonkeyPatch) -> None:
    read_fd, write_fd = os.pipe()
    monkeypatch.setenv(client.REPORT_FD_ENV, str(write_fd))
    report(step=1, a=0.5)
    os.close(write_fd)
    data = read_pipe(read_fd)
    os.close(read_fd)
    assert data.count("\n") == 1
    tag, payload = data.split(" ", 1)
    assert tag == "@hypersearch" and json.loads(payload) == {"step": 1, "metrics": {"a": 0.5}}


@pytest.mark.parametrize("value", ["999999", "not-a-number", "", "-1"])
def test_bad_fd_falls_back_to_stdout(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(client.REPORT_FD_ENV, value)
    report(step=2, loss=0.25)
    assert parse_client_line(capsys.readouterr().out) == MetricEvent(2, {"loss": 0.25}, "client")


def test_closed_pipe_falls_back_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # writing now fails with EPIPE (SIGPIPE is ignored by Python)
    try:
        monkeypatch.setenv(client.REPORT_FD_ENV, str(write_fd))
        report(loss=1.5)
    finally:
        os.close(write_fd)
    assert parse_client_line(capsys.readouterr().out) == MetricEvent(None, {"loss": 1.5}, "client")


@settings(max_examples=200)
@given(
    st.one_of(st.none(), st.integers(0, 2**62)),
    st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-/]{0,20}", fullmatch=True),
        st.floats(allow_nan=True, allow_infinity=True),
        min_size=1,
        max_size=6,
    ),
)
def test_fuzz_round_trip(step: int | None, values: dict[str, float]) -> None:
    line = format_line(step, **values)
    events = MetricParser(list(values)).feed(line)
    assert len(events) == 1 and events[0].source == "client" and events[0].step == step
    assert same_values(events[0].values, values)


# -- environment --------------------------------------------------------------------------------


def test_in_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not in_trial()
    monkeypatch.setenv(client.TRIAL_ENV, "")
    assert not in_trial()
    monkeypatch.setenv(client.TRIAL_ENV, "17")
    assert in_trial()


def test_import_does_not_load_numpy() -> None:
    code = (
        "import sys, hypersearch.client\n"
        "hypersearch.client.report(step=1, loss=0.5)\n"
        "bad = sorted(m for m in sys.modules if m == 'numpy' or "
        "(m.startswith('hypersearch.') and m != 'hypersearch.client'))\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if k != client.REPORT_FD_ENV}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == '@hypersearch {"step": 1, "metrics": {"loss": 0.5}}\n'


# -- inside a Python objective: report() is trial.report ---------------------------------------


class _FakeTrial:
    def __init__(self) -> None:
        self.reports: list[tuple[int | None, dict[str, float]]] = []

    def report(self, step: int | None = None, **metrics: float) -> str:
        self.reports.append((step, metrics))
        return "STOP"


def test_report_inside_a_trial_goes_to_it_and_returns_its_decision(
    capsys: pytest.CaptureFixture[str],
) -> None:
    trial = _FakeTrial()
    assert client.current_trial() is None and not in_trial()
    with client.trial_context(trial):
        assert client.current_trial() is trial and in_trial()
        assert (
            report(step=np.int64(2), loss=np.float32(0.5), **{"train/acc": Decimal("0.25")})
            == "STOP"
        )
        with pytest.raises(ValueError, match="bool"):
            report(step=3, loss=True)
        with pytest.raises(ValueError, match="at least one metric"):
            report(step=3)
        with pytest.raises(ValueError, match="step must be >= 0"):
            report(step=-1, loss=1.0)
    assert client.current_trial() is None
    assert trial.reports == [(2, {"loss": 0.5, "train/acc": 0.25})]
    assert type(trial.reports[0][1]["loss"]) is float
    assert capsys.readouterr().out == "", "nothing printed inside a trial"


def test_a_thread_finds_the_one_running_trial_but_not_one_of_two() -> None:
    first, second = _FakeTrial(), _FakeTrial()

    def in_thread() -> object:
        found: list[object] = []
        thread = threading.Thread(target=lambda: found.append(client.current_trial()))
        thread.start()
        thread.join()
        return found[0]

    with client.trial_context(first):
        assert in_thread() is first, "a thread has a fresh context: the one active trial"
        with client.trial_context(second):
            assert client.current_trial() is second
            assert in_thread() is None, "two trials run here: a thread cannot tell which"
        assert client.current_trial() is first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_does_not_report_on_its_parents_trial() -> None:
    trial = _FakeTrial()
    read_fd, write_fd = os.pipe()
    with client.trial_context(trial):
        pid = os.fork()
        if pid == 0:  # the child: a data loader worker, say
            os.write(write_fd, b"none" if client.current_trial() is None else b"found")
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    assert os.read(read_fd, 10) == b"none"
    os.close(read_fd)
