"""Parsing trial output into metric events (R18), aggregation and stop conditions."""

from __future__ import annotations

import math
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypersearch.execution.metric_lines import (
    LINE_CAP,
    SEGMENT_CAP,
    LineSplitter,
    MetricEvent,
    MetricParser,
    StopCondition,
    aggregate,
    parse_client_line,
    parse_stop_condition,
    terminal_line,
)

KERAS_HEADER = "Epoch 3/10"
KERAS_LINE = (
    "1875/1875 [==============================] - 3s 2ms/step - loss: 0.2345 - accuracy: 0.9312"
    " - val_loss: 0.2011 - val_accuracy: 0.9400"
)


def one(events: list[MetricEvent]) -> MetricEvent:
    assert len(events) == 1, events
    return events[0]


# -- client lines -------------------------------------------------------------------------------


def test_client_line_tagged() -> None:
    event = one(MetricParser([]).feed('@hypersearch {"step": 3, "metrics": {"val_acc": 0.91}}'))
    assert event == MetricEvent(3, {"val_acc": 0.91}, "client")


def test_client_line_special_values_and_null_step() -> None:
    line = '@hypersearch {"step": null, "metrics": {"a": "nan", "b": "inf", "c": "-inf", "d": 1}}'
    event = one(MetricParser([]).feed(line))
    assert event.step is None and event.source == "client"
    assert math.isnan(event.values["a"])
    assert event.values["b"] == math.inf and event.values["c"] == -math.inf
    assert event.values["d"] == 1.0 and isinstance(event.values["d"], float)


def test_client_line_wins_over_plain_and_tolerates_prefix() -> None:
    parser = MetricParser(["loss"])
    event = one(parser.feed('[rank 0] @hypersearch {"step": 1, "metrics": {"loss": 0.5}} loss=9'))
    # trailing text after the JSON makes the payload invalid, so this one is read as plain
    assert event.source == "plain" and event.values == {"loss": 9.0}
    event = one(parser.feed('[rank 0] @hypersearch {"step": 1, "metrics": {"loss": 0.5}}'))
    assert event == MetricEvent(1, {"loss": 0.5}, "client")


def test_parse_client_line_bare_json_and_bytes() -> None:
    assert parse_client_line(b'{"step": 2, "metrics": {"x": 1.5}}\n') == MetricEvent(
        2, {"x": 1.5}, "client"
    )
    assert parse_client_line('{"val_acc": 0.9}') is None  # no "metrics" object
    assert parse_client_line("hello") is None
    assert parse_client_line("@hypersearch not json") is None
    assert parse_client_line('@hypersearch {"metrics": {}}') is None


def test_client_line_skips_bad_entries_and_bad_steps() -> None:
    line = '@hypersearch {"step": -1, "metrics": {"ok": 1, "1bad": 2, "s": "x", "b": true}}'
    assert parse_client_line(line) == MetricEvent(None, {"ok": 1.0}, "client")
    assert parse_client_line('@hypersearch {"step": 2.0, "metrics": {"ok": 1}}').step == 2
    assert parse_client_line('@hypersearch {"step": 2.5, "metrics": {"ok": 1}}').step is None


def test_tag_inside_an_email_is_not_a_client_line() -> None:
    event = one(MetricParser(["loss"]).feed("mail me@hypersearch.dev loss=0.25"))
    assert event == MetricEvent(None, {"loss": 0.25}, "plain")


# -- JSON lines ---------------------------------------------------------------------------------


def test_json_metric_value_form() -> None:
    event = one(MetricParser([]).feed('{"metric": "val_acc", "value": 0.91, "step": 3}'))
    assert event == MetricEvent(3, {"val_acc": 0.91}, "json")


def test_json_dict_form_with_step_or_epoch() -> None:
    parser = MetricParser([])
    assert one(parser.feed('{"val_acc": 0.91, "loss": 0.2, "step": 3}')) == MetricEvent(
        3, {"val_acc": 0.91, "loss": 0.2}, "json"
    )
    assert one(parser.feed('  {"loss": 0.2, "epoch": 4, "name": "x", "ok": true}  ')) == (
        MetricEvent(4, {"loss": 0.2}, "json")
    )
    assert one(parser.feed('{"loss": 1}')) == MetricEvent(None, {"loss": 1.0}, "json")


def test_json_nested_metrics_and_nan_literals() -> None:
    event = one(MetricParser([]).feed('{"step": 1, "metrics": {"a": NaN, "b": -Infinity}}'))
    assert event.step == 1 and event.source == "json"
    assert math.isnan(event.values["a"]) and event.values["b"] == -math.inf


def test_json_without_numeric_metric_yields_nothing() -> None:
    parser = MetricParser(["loss"])
    assert parser.feed('{"msg": "loss=0.3"}') == []
    assert parser.feed('{"metric": "loss", "value": "high"}') == []
    assert parser.feed('{"step": 3}') == []
    assert parser.feed("{}") == []


def test_broken_json_falls_back_to_plain() -> None:
    event = one(MetricParser(["loss"]).feed("{'loss': 0.5, 'learning_rate': 5e-05, 'epoch': 0.5}"))
    assert event == MetricEvent(None, {"loss": 0.5}, "plain")


def test_json_huge_integer_and_deep_nesting_do_not_raise() -> None:
    parser = MetricParser([])
    assert one(parser.feed('{"big": ' + "9" * 400 + "}")).values == {"big": math.inf}
    assert parser.feed('{"big": ' + "9" * 5000 + "}") == []  # past int digit limit: not JSON
    assert parser.feed('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}") == []


# -- plain lines --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "val_acc=0.91",
        "val_acc: 0.91",
        "val_acc = 0.91",
        "val_acc:0.91",
        "  val_acc=0.91,",
        "x val_acc=0.91%",
    ],
)
def test_plain_forms(line: str) -> None:
    assert one(MetricParser(["val_acc"]).feed(line)) == MetricEvent(
        None, {"val_acc": 0.91}, "plain"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3.0),
        ("-2", -2.0),
        ("+0.5", 0.5),
        (".5", 0.5),
        ("1.", 1.0),
        ("1e-3", 1e-3),
        ("2.5E+4", 2.5e4),
        ("inf", math.inf),
        ("-inf", -math.inf),
        ("Infinity", math.inf),
    ],
)
def test_plain_numbers(text: str, expected: float) -> None:
    assert one(MetricParser(["loss"]).feed(f"loss={text}")).values == {"loss": expected}


def test_plain_nan_is_kept() -> None:
    for text in ("nan", "NaN", "-nan"):
        assert math.isnan(one(MetricParser(["loss"]).feed(f"loss={text}")).values["loss"])


def test_plain_only_declared_and_word_boundaries() -> None:
    parser = MetricParser(["loss"])
    assert parser.feed("val_loss=0.3") == []
    assert parser.feed("train/loss=0.3 my.loss=1 loss2=3 --loss=4") == []
    assert parser.feed("accuracy=0.9") == []
    assert one(parser.feed("val_loss=0.3 loss=0.4")).values == {"loss": 0.4}


@pytest.mark.parametrize(
    "line", ["loss=", "loss: ", "loss=abc", "loss=0.5x", "loss=1.2.3", "loss==3", "loss", ""]
)
def test_plain_garbage_yields_nothing(line: str) -> None:
    assert MetricParser(["loss"]).feed(line) == []


def test_plain_last_occurrence_wins() -> None:
    assert one(MetricParser(["loss"]).feed("loss=1 loss=2")).values == {"loss": 2.0}


def test_plain_step_from_same_line() -> None:
    parser = MetricParser(["loss"])
    assert one(parser.feed("epoch 2 loss=0.5")).step == 2
    assert one(parser.feed("Epoch 4/10: loss=0.5")).step == 4
    assert one(parser.feed("step 120 loss=0.5")).step == 120
    assert one(parser.feed("epoch=2, step: 300, loss=0.5")).step == 300  # step is finer
    assert one(parser.feed("loss=0.5 (epoch 2.5)")).step is None
    assert one(parser.feed("global_step 7 loss=0.5")).step is None
    assert one(parser.feed("loss=0.5")).step is None


def test_keras_epoch_lines() -> None:
    parser = MetricParser(["loss", "val_loss", "accuracy", "val_accuracy"])
    assert parser.feed(KERAS_HEADER) == []
    event = one(parser.feed(KERAS_LINE))
    assert event == MetricEvent(
        3,
        {"loss": 0.2345, "accuracy": 0.9312, "val_loss": 0.2011, "val_accuracy": 0.94},
        "plain",
    )
    # '2ms/step' is not a step number
    assert one(MetricParser(["loss"]).feed(KERAS_LINE)).step is None


def test_keras_declared_subset_and_progress_updates() -> None:
    parser = MetricParser(["val_accuracy"])
    parser.feed("Epoch 1/2")
    updates = (
        " 100/1875 [>....] - ETA: 3s - loss: 0.90 - accuracy: 0.70\r"
        "1875/1875 [=====] - 3s 2ms/step - loss: 0.23 - accuracy: 0.93 - val_accuracy: 0.94"
    )
    assert parser.feed(updates) == [MetricEvent(1, {"val_accuracy": 0.94}, "plain")]
    parser.feed("Epoch 2/2")
    assert one(parser.feed("1875/1875 - 3s - val_accuracy: 0.95")).step == 2


# Keras redraws its progress bar with \r while an epoch runs; only the final state of the line
# (what a terminal shows) is the epoch's value.
KERAS_PROGRESS = (
    b"1/10 [==>...] - loss: 0.9\r2/10 [====>..] - loss: 0.5\r"
    b"10/10 [======] - loss: 0.3 - val_loss: 0.4\n"
)


def test_defect_keras_carriage_return_segments_count_once() -> None:
    """Defect: each \r-segment of a progress line was one more value (a min/avg over mid-epoch
    values; a stop condition met by a value the terminal overwrote)."""
    parser = MetricParser(["loss", "val_loss"])
    assert parser.feed(KERAS_PROGRESS.decode()) == [
        MetricEvent(None, {"loss": 0.3, "val_loss": 0.4}, "plain")
    ]
    splitter = LineSplitter()
    lines = splitter.feed(KERAS_PROGRESS) + splitter.flush()
    assert lines == ["10/10 [======] - loss: 0.3 - val_loss: 0.4"]
    # byte by byte, as a pipe may deliver it: the same single line
    splitter = LineSplitter()
    lines = [
        line
        for i in range(len(KERAS_PROGRESS))
        for line in splitter.feed(KERAS_PROGRESS[i : i + 1])
    ]
    assert lines + splitter.flush() == ["10/10 [======] - loss: 0.3 - val_loss: 0.4"]
    # tqdm ends a bar with \r (or \r\n): that trailing \r overwrites nothing
    tqdm = "train: 10%|#| loss=0.9\rtrain: 50%|##| loss=0.5\rtrain: 100%|###| loss=0.3\r"
    assert [e.values for e in parser.feed(tqdm)] == [{"loss": 0.3}]
    assert [e.values for e in parser.feed(tqdm + "\n")] == [{"loss": 0.3}]


def test_terminal_line() -> None:
    assert terminal_line("a\rb\rc") == "c"
    assert terminal_line("abc\r") == "abc"
    assert terminal_line("abc\r\r") == "abc"
    assert terminal_line("a\rbc\r\r") == "bc"
    assert terminal_line("\r\r") == ""
    assert terminal_line("plain") == "plain"


def test_lines_fed_at_once_are_each_parsed() -> None:
    events = MetricParser(["loss"]).feed("loss=0.9\nloss=0.5\r\nloss=0.3")
    assert [e.values["loss"] for e in events] == [0.9, 0.5, 0.3]


def test_defect_spell_keras_prefixed_names_match_keras_lines() -> None:
    """Defect: a declared `keras/val_accuracy` (Spell's name) matched nothing Keras prints."""
    parser = MetricParser(["keras/val_accuracy", "loss"])
    assert parser.feed(KERAS_HEADER) == []
    assert one(parser.feed(KERAS_LINE)) == MetricEvent(
        3, {"loss": 0.2345, "keras/val_accuracy": 0.94}, "plain"
    )
    assert one(parser.feed("keras/val_accuracy=0.91")).values == {"keras/val_accuracy": 0.91}
    assert one(parser.feed("val_accuracy=0.92")).values == {"keras/val_accuracy": 0.92}
    assert one(parser.feed("'val_accuracy': 0.93")).values == {"keras/val_accuracy": 0.93}
    # the full name wins over the short one, wherever each stands on the line
    for line in (
        "val_accuracy: 0.1 keras/val_accuracy: 0.9",
        "keras/val_accuracy=0.9 val_accuracy=0.1",
    ):
        assert one(parser.feed(line)).values == {"keras/val_accuracy": 0.9}
    # JSON and client lines: the short name is recorded under the declared one
    assert one(parser.feed('{"val_accuracy": 0.5, "step": 1}')) == MetricEvent(
        1, {"keras/val_accuracy": 0.5}, "json"
    )
    assert one(parser.feed('{"metric": "keras/val_accuracy", "value": 0.6}')).values == {
        "keras/val_accuracy": 0.6
    }
    client = '@hypersearch {"step": 2, "metrics": {"val_accuracy": 0.7, "acc": 1}}'
    assert one(parser.feed(client)) == MetricEvent(
        2, {"acc": 1.0, "keras/val_accuracy": 0.7}, "client"
    )
    assert parser.feed_report(client.split(" ", 1)[1]) == [
        MetricEvent(2, {"acc": 1.0, "keras/val_accuracy": 0.7}, "client")
    ]
    both = '{"val_accuracy": 0.1, "keras/val_accuracy": 0.2}'
    assert one(parser.feed(both)).values == {"val_accuracy": 0.1, "keras/val_accuracy": 0.2}


def test_spell_names_only_for_framework_prefixes_and_not_glued() -> None:
    parser = MetricParser(["keras/val_accuracy"])
    assert parser.feed("torch/val_accuracy=0.5") == []  # glued to another prefix
    assert parser.feed("xval_accuracy=0.5 val_accuracy_top5: 0.9") == []
    # an ordinary path name is not shortened: train/loss and loss are different metrics
    parser = MetricParser(["train/loss"])
    assert parser.feed("loss=0.3") == [] and parser.feed('{"loss": 0.3}')[0].values == {"loss": 0.3}
    assert one(parser.feed("train/loss=0.3")).values == {"train/loss": 0.3}
    # declared in both spellings: a Keras line feeds both
    parser = MetricParser(["keras/val_accuracy", "val_accuracy"])
    assert one(parser.feed("val_accuracy: 0.8")).values == {
        "keras/val_accuracy": 0.8,
        "val_accuracy": 0.8,
    }
    assert one(parser.feed('{"val_accuracy": 0.8}')).values == {
        "keras/val_accuracy": 0.8,
        "val_accuracy": 0.8,
    }


def test_metric_names_with_slashes_work_everywhere() -> None:
    parser = MetricParser(["a/b/c", "keras/val_loss"])
    assert one(parser.feed("epoch 2 a/b/c=1.5")) == MetricEvent(2, {"a/b/c": 1.5}, "plain")
    assert one(parser.feed("a/b/c: 2 - val_loss: 3")).values == {
        "a/b/c": 2.0,
        "keras/val_loss": 3.0,
    }
    assert one(parser.feed('{"a/b/c": 4}')).values == {"a/b/c": 4.0}
    assert parse_client_line('{"metrics": {"a/b/c": 5}}') == MetricEvent(
        None, {"a/b/c": 5.0}, "client"
    )
    assert parse_stop_condition("keras/val_loss > 5") == StopCondition("keras/val_loss", ">", 5.0)
    assert parse_stop_condition("a/b/c<=1").holds(0.5)


def test_defect_huge_numbers_in_metric_lines_read_as_inf() -> None:
    """The sibling of `float(10**400)`: numbers beyond a float in output read as +-inf, never
    raise, and stay fast up to the line cap."""
    parser = MetricParser(["loss"])
    assert one(parser.feed("loss=1e999")).values == {"loss": math.inf}
    assert one(parser.feed("loss=" + "9" * 400)).values == {"loss": math.inf}
    assert one(parser.feed("loss=-" + "9" * 400)).values == {"loss": -math.inf}
    assert one(parser.feed('{"loss": -' + "9" * 400 + "}")).values == {"loss": -math.inf}
    assert one(parser.feed('{"loss": 1e999}')).values == {"loss": math.inf}
    line = '@hypersearch {"metrics": {"loss": ' + "9" * 400 + "}}"
    assert one(parser.feed(line)).values == {"loss": math.inf}
    assert parse_stop_condition("loss > " + "9" * 400).value == math.inf
    start = time.perf_counter()
    assert one(parser.feed("loss=" + "9" * (LINE_CAP - 10))).values == {"loss": math.inf}
    assert time.perf_counter() - start < 0.5
    assert aggregate([math.inf, 1.0], "avg") == math.inf


def test_ansi_colours_are_ignored() -> None:
    event = one(MetricParser(["loss"]).feed("\x1b[32mloss\x1b[0m: \x1b[1m0.25\x1b[0m"))
    assert event.values == {"loss": 0.25}


def test_python_dict_log_reads_declared_metrics() -> None:
    line = "{'loss': 0.6931, 'grad_norm': 1.2, 'learning_rate': 5e-05, 'epoch': 0.5}"
    assert one(MetricParser(["loss", "learning_rate"]).feed(line)).values == {
        "loss": 0.6931,
        "learning_rate": 5e-05,
    }


def test_no_declared_metrics_reads_no_plain_lines() -> None:
    assert MetricParser().feed("loss=0.5") == []


def test_parser_rejects_bad_declared_names() -> None:
    with pytest.raises(ValueError, match="invalid"):
        MetricParser(["val acc"])
    with pytest.raises(ValueError, match="invalid"):
        MetricParser([""])
    assert MetricParser("loss").metrics == ("loss",)
    assert MetricParser(["a", "a", "b"]).metrics == ("a", "b")


def test_feed_rejects_non_text_types() -> None:
    with pytest.raises(TypeError):
        MetricParser(["loss"]).feed(3)  # type: ignore[arg-type]


# -- robustness (R18) ---------------------------------------------------------------------------


def test_giant_line_is_fast_and_truncated() -> None:
    parser = MetricParser(["loss", "val_loss"])
    giant = "x" * 1_000_000
    cases = [
        giant,
        "loss=" * 200_000,
        "loss" + " " * 1_000_000 + ":",
        "loss:" + " " * 1_000_000,
        "{" + '"a": ' * 200_000 + "}",
        "[" * 1_000_000,
        " " * 1_000_000,
        "\r" * 1_000_000,
        "{\r" * 500_000,
        "loss=1\r" * 150_000,
        "@hypersearch\r" * 80_000,
        '{"loss": 1}\n' * 100_000,
        "\x1b[" * 500_000,
        "loss=0.5 " + giant,
        giant + " loss=0.5",
    ]
    for text in cases:
        for line in (text, text.encode()):
            # best of three, so a busy test machine can't fail a fast parser
            elapsed = []
            for _ in range(3):
                start = time.perf_counter()
                parser.feed(line)
                elapsed.append(time.perf_counter() - start)
            assert min(elapsed) < 0.5, (text[:20], min(elapsed))  # quadratic takes seconds
    assert one(parser.feed("loss=0.5 " + giant)).values == {"loss": 0.5}
    assert parser.feed(giant + " loss=0.5") == []  # beyond the cap
    assert parser.feed("x" * (LINE_CAP - 9) + " loss=0.5") != []


def test_many_lines_keep_the_newest() -> None:
    text = "".join(f"loss={i}\n" for i in range(SEGMENT_CAP + 500))
    events = MetricParser(["loss"]).feed(text)
    assert len(events) == SEGMENT_CAP - 1  # the split leaves one empty tail segment
    assert events[-1].values == {"loss": float(SEGMENT_CAP + 499)}
    # a bar redrawn thousands of times is one line: its last state
    text = "".join(f"loss={i}\r" for i in range(SEGMENT_CAP + 500))
    assert MetricParser(["loss"]).feed(text) == [
        MetricEvent(None, {"loss": float(SEGMENT_CAP + 499)}, "plain")
    ]


@pytest.mark.parametrize("text", ["ınf", "İnf", "nan٣", "١", "１.5", "1e٣", "ｉｎｆ"])
def test_unicode_lookalike_numbers_are_not_numbers(text: str) -> None:
    # re's (?i) and \d accept these, float() does not (or reads them differently)
    assert MetricParser(["loss"]).feed(f"loss={text}") == []
    with pytest.raises(ValueError, match="not a number"):
        parse_stop_condition(f"loss > {text}")


def test_random_binary_bytes() -> None:
    parser = MetricParser(["loss"])
    for seed in range(50):
        data = os.urandom(4096) if seed else bytes(range(256)) * 16
        assert isinstance(parser.feed(data), list)
    event = one(parser.feed(b"\xff\xfe\x00 loss=0.125 \xc3"))
    assert event.values == {"loss": 0.125}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(), st.binary()), max_size=5))
def test_fuzz_feed_never_raises(lines: list[str | bytes]) -> None:
    parser = MetricParser(["loss", "val_acc", "a.b/c-d"])
    for line in lines:
        for event in parser.feed(line):
            assert event.values and event.source in ("client", "json", "plain")
            assert event.step is None or event.step >= 0
            assert all(isinstance(v, float) for v in event.values.values())


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(
            [
                "loss",
                "=",
                ":",
                " ",
                "0.5",
                "nan",
                "-",
                "inf",
                "e",
                "epoch",
                "3",
                "/",
                "{",
                "}",
                '"',
                "'",
                "\r",
                "\n",
                "@hypersearch",
                "metrics",
                "step",
                "val_acc",
                ".",
                "1e5",
                "ınf",
                "İNF",
                "ſtep",
                "٣",
                "１",
                "\x1b[",
            ]
        ),
        max_size=30,
    )
)
def test_fuzz_feed_near_misses(tokens: list[str]) -> None:
    text = "".join(tokens)
    for event in MetricParser(["loss", "val_acc"]).feed(text):
        assert event.values


_LINE_TOKENS = [
    "loss", "val_loss", "keras/acc", "acc", "step", "Step", "epoch", "Epoch", "steps", "a.b",
    "=", ":", " = ", " ", "\t", "\x0c", "'", '"', "0.5", "-1e-3", "1e400", "7", "nan", "-inf",
    "Infinity", "ınf", "5x", "1.2.3", "/", "-", "3/10", "{", "}", '{"loss": 0.5}',
    '{"step": 2, "acc": 1}', '{"metric": "loss", "value": 2}', '{"metrics": {"acc": "nan"}}',
    "[1, 2]", "@hypersearch", '@hypersearch {"metrics": {"loss": 1}}', "\r", "\n", "\x1b[31m",
    "\x1b[0m", "ſtep", "１",
]  # fmt: skip
_DECLARED = [
    ["loss"],
    ["loss", "val_loss"],
    ["keras/acc"],
    ["keras/acc", "acc", "loss"],
    ["step_rate"],
    ["Epochs"],
    ["a.b", "loss"],
    [],
]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(st.sampled_from(_LINE_TOKENS), max_size=8).map("".join), max_size=12),
    st.sampled_from(_DECLARED),
)
def test_fuzz_feed_lines_is_feed_of_each_line(lines: list[str], declared: list[str]) -> None:
    """The executor's batch path (fast paths included) gives exactly what feed gives."""
    one_by_one, batched = MetricParser(declared), MetricParser(declared)
    expected = [event for line in lines for event in one_by_one.feed(line)]
    assert repr(batched.feed_lines(lines)) == repr(expected)  # repr: NaN != NaN
    assert batched._epoch == one_by_one._epoch  # the Keras header state too


_FAST_SHAPED = [
    "loss=0.5",
    " loss : 1e-3\t",
    "loss=nan",
    "acc=1",
    "keras/acc=2",
    "val_loss=3",
    "loss=5x",
    "loss=",
    "Epoch 2/3",
    "loss=1\r",
    "loss=1\nloss=2",
    "loss=\n1",
    "",
    " ",
    "x" * LINE_CAP + "loss=4",
    "loss=" + "9" * LINE_CAP,
    b"loss=3",
    '{"loss": 1}',
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(_FAST_SHAPED), min_size=3, max_size=12),
    st.sampled_from(_DECLARED),
)
def test_fuzz_scan_bulk_path_is_feed_of_each_line(
    lines: list[str | bytes], declared: list[str]
) -> None:
    """Chunks of (mostly) lone name=value lines: the one-findall path for a whole chunk."""
    one_by_one, batched = MetricParser(declared), MetricParser(declared)
    expected = [event for line in lines for event in one_by_one.feed(line)]
    assert repr(batched.feed_lines(lines)) == repr(expected)  # repr: NaN != NaN
    again = [e for _ in range(5) for e in one_by_one.feed(lines[0])]
    assert repr(batched.feed_lines(lines[:1] * 5)) == repr(again)


_JSON_PARTS = ['{"', "step", "epoch", "loss", "keras/acc", "acc", "metric", "metrics", '": ']
_JSON_PARTS += ["0", "01", "7", "-1", "1e400", "1" * 30, "0.5", "2.0", "-0.0", "1E-3", "NaN"]
_JSON_PARTS += ["Infinity", ", ", ",", "}", " }", '"x"', "true", "\\u006c", "{}", "[]"]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.sampled_from(["step", "epoch", "steps"]),
                st.sampled_from(["0", "3", "01", "-1", "2.0", "1" * 19]),
                st.sampled_from(["loss", "acc", "step", "epoch", "metric", "a.b/c-d", "1x"]),
                st.sampled_from(["0.5", "-1", "1e400", "1" * 30, "NaN", "-0.0", "1.", ".5"]),
            ).map(lambda t: f'{{"{t[0]}": {t[1]}, "{t[2]}": {t[3]}}}'),
            st.lists(st.sampled_from(_JSON_PARTS), max_size=10).map("".join),
        ),
        max_size=8,
    ),
    st.sampled_from(_DECLARED),
)
def test_fuzz_json_fast_path_is_feed_of_each_line(lines: list[str], declared: list[str]) -> None:
    one_by_one, batched = MetricParser(declared), MetricParser(declared)
    expected = [event for line in lines for event in one_by_one.feed(line)]
    assert repr(batched.feed_lines(lines)) == repr(expected)  # repr: NaN != NaN


def test_feed_lines_fast_path_shapes() -> None:
    parser = MetricParser(["loss", "keras/acc", "acc"])
    lines = ["loss=0.5", "  loss : 1e-3 ", "'loss': 2", "acc=0.9", "loss=5x", "loss=1\r"]
    lines += [b"loss=0.25", "x" * (LINE_CAP + 1) + " loss=3", "Epoch 4/9", "loss=0.125"]
    expected = [e for line in lines for e in MetricParser(["loss", "keras/acc", "acc"]).feed(line)]
    got = parser.feed_lines(lines)
    assert [(e.step, e.values) for e in got] == [
        (None, {"loss": 0.5}),
        (None, {"loss": 0.001}),
        (None, {"loss": 2.0}),
        (None, {"acc": 0.9, "keras/acc": 0.9}),
        (None, {"loss": 1.0}),  # what the terminal shows of "loss=1\r"
        (None, {"loss": 0.25}),
        (4, {"loss": 0.125}),  # the header before it counts
    ]
    assert got[:-1] == expected[:-1] and expected[-1].step is None  # fed alone: no header
    # a name that starts like a step key takes the general path: "step2=0.5" gives step 2
    assert MetricParser(["step2"]).feed_lines(["step2=0.5"]) == [
        MetricEvent(2, {"step2": 0.5}, "plain")
    ]


# -- LineSplitter -------------------------------------------------------------------------------


def test_splitter_lines_and_partials() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a=1\nb=") == ["a=1"]
    assert splitter.feed(b"2\r\nc=3\rd") == ["b=2"]  # "d" overwrites "c=3" (same line)
    assert splitter.feed(b"") == []
    assert splitter.flush() == ["d"]
    assert splitter.flush() == []
    # a \r at the end of one chunk: the next chunk decides whether it overwrites
    assert splitter.feed(b"x=1\r") == []
    assert splitter.feed(b"\n") == ["x=1"]
    assert splitter.feed(b"x=1\r") == []
    assert splitter.feed(b"x=2\n") == ["x=2"]


def test_splitter_multibyte_across_chunks_and_bad_bytes() -> None:
    splitter = LineSplitter()
    data = "λ=1\n".encode()
    assert splitter.feed(data[:1]) == []
    assert splitter.feed(data[1:]) == ["λ=1"]
    assert splitter.feed(b"\xff\xfeok\n") == ["\ufffd\ufffdok"]


def test_splitter_caps_long_lines() -> None:
    splitter = LineSplitter(cap=10)
    assert splitter.feed(b"0123456789") == []  # exactly the cap: still held
    assert splitter.feed(b"\n") == ["0123456789"]
    assert splitter.feed(b"abcdefghijklmnop") == []  # held, cut at the cap: a \r may follow
    assert splitter.feed(b"qrstuv") == []  # rest of the long line is dropped
    assert splitter.feed(b"wxyz\nnext\n") == ["abcdefghij", "next"]
    assert splitter.feed(b"0123456789ABC\nz\n") == ["0123456789", "z"]
    assert splitter.feed(b"a very long progress bar\rshort\n") == ["short"]
    assert splitter.flush() == []
    with pytest.raises(ValueError):
        LineSplitter(cap=0)


def test_splitter_gigabyte_stream_without_newlines_stays_bounded() -> None:
    splitter = LineSplitter()
    chunk = b"x" * (1 << 20)
    emitted = 0
    for _ in range(1024):  # 1 GiB
        emitted += len(splitter.feed(chunk))
        assert len(splitter._buffer) <= LINE_CAP
    assert emitted == 0  # one line, still open
    assert splitter.feed(b"\nloss=1\n") == ["x" * LINE_CAP, "loss=1"]
    # a progress bar redrawn for a gigabyte without a line end holds only its latest state
    update = b"\r" + b"=" * 1000 + b" loss: 0.5"
    chunk = update * ((1 << 20) // len(update))
    for _ in range(1024):
        assert splitter.feed(chunk) == []
        assert len(splitter._buffer) <= LINE_CAP
    assert splitter.feed(b"\n") == [update[1:].decode()]


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=64), max_size=10), st.integers(1, 40))
def test_fuzz_splitter(chunks: list[bytes], cap: int) -> None:
    splitter = LineSplitter(cap=cap)
    lines = [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.flush()
    for line in lines:
        assert line and "\n" not in line and "\r" not in line
        assert len(line.encode("utf-8", errors="surrogatepass")) <= cap * 3
        assert len(splitter._buffer) <= cap
    # with a big cap the splitter is the same as splitting the whole stream
    whole = b"".join(chunks)
    splitter = LineSplitter(cap=1 << 20)
    got = [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.flush()
    expected = [terminal_line(p.decode("utf-8", errors="replace")) for p in whole.split(b"\n")]
    assert got == [line for line in expected if line]


def _reference_split(chunks: list[bytes], cap: int) -> list[str]:
    """LineSplitter as it was before its fast path: part by part."""
    buffer, after_cr, out = bytearray(), False, []
    for chunk in chunks:
        parts = chunk.split(b"\n")
        for i, part in enumerate(parts):
            if part:
                body = part.rstrip(b"\r")
                if body:
                    cut = body.rfind(b"\r")
                    if cut >= 0 or after_cr:
                        buffer = bytearray()
                    room = cap - len(buffer)
                    if room > 0:
                        buffer += body[cut + 1 : cut + 1 + room]
                after_cr = len(body) < len(part) or (after_cr and not body)
            if i < len(parts) - 1:
                if buffer:
                    out.append(buffer.decode("utf-8", errors="replace"))
                buffer, after_cr = bytearray(), False
    if buffer:
        out.append(buffer.decode("utf-8", errors="replace"))
    return out


_SPLIT_TOKENS = [
    b"loss=0.5",
    b"\n",
    b"\n\n",
    b"\r",
    b"\r\n",
    b"\xff",
    b"\xce",
    b"\xbb",
    b"\xe2\x82",
]
_SPLIT_TOKENS += [b"\xf0\x9f\x98", b"\xf0\x9f\x98\x80", "λ".encode(), b"x" * 30, b" "]


@settings(max_examples=400)
@given(
    st.lists(st.lists(st.sampled_from(_SPLIT_TOKENS), max_size=12).map(b"".join), max_size=8),
    st.sampled_from([1, 3, 8, 40, 64, LINE_CAP]),
)
def test_fuzz_splitter_matches_part_by_part_reference(chunks: list[bytes], cap: int) -> None:
    """The whole-chunk fast path gives what splitting part by part gave, bad UTF-8 included."""
    splitter = LineSplitter(cap=cap)
    got = [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.flush()
    assert got == _reference_split(chunks, cap)


# -- aggregate ----------------------------------------------------------------------------------


def test_aggregate_basic() -> None:
    series = [3.0, 1.0, 2.0]
    assert aggregate(series, "last") == 2.0
    assert aggregate(series, "min") == 1.0
    assert aggregate(series, "max") == 3.0
    assert aggregate(series, "avg") == 2.0
    assert aggregate(series, "mean") == 2.0
    assert aggregate(series, " MAX ") == 3.0
    for how in ("last", "min", "max", "avg", "mean"):
        assert aggregate([], how) is None


def test_aggregate_nan_rules() -> None:
    nan = math.nan
    assert math.isnan(aggregate([1.0, nan], "last"))  # type: ignore[arg-type]
    assert aggregate([nan, 1.0], "last") == 1.0
    assert aggregate([nan, 3.0, 1.0], "min") == 1.0
    assert aggregate([nan, 3.0, 1.0], "max") == 3.0
    assert aggregate([nan, 3.0, 1.0], "avg") == 2.0
    for how in ("min", "max", "avg"):
        assert math.isnan(aggregate([nan, nan], how))  # type: ignore[arg-type]


def test_aggregate_infinities_and_overflow() -> None:
    assert aggregate([1e308, 1e308], "avg") == 1e308
    assert aggregate([1.0, math.inf], "avg") == math.inf
    assert math.isnan(aggregate([math.inf, -math.inf], "avg"))  # type: ignore[arg-type]
    assert aggregate([1, 2], "avg") == 1.5  # ints welcome


def test_aggregate_unknown() -> None:
    with pytest.raises(ValueError, match="last, min, max, avg, mean"):
        aggregate([1.0], "median")


# -- stop conditions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric", "op", "value"),
    [
        ("loss > 10", "loss", ">", 10.0),
        ("val_acc>=0.99", "val_acc", ">=", 0.99),
        ("  loss <  -1e-3 ", "loss", "<", -1e-3),
        ("train/loss<=5", "train/loss", "<=", 5.0),
        ("acc == 1", "acc", "==", 1.0),
        ("acc != 0", "acc", "!=", 0.0),
        ("loss >= inf", "loss", ">=", math.inf),
        (b"loss > 2", "loss", ">", 2.0),
    ],
)
def test_parse_stop_condition(text: str, metric: str, op: str, value: float) -> None:
    assert parse_stop_condition(text) == StopCondition(metric, op, value)


def test_stop_condition_holds() -> None:
    cond = parse_stop_condition("loss > 10")
    assert cond.holds(11) and not cond.holds(10) and not cond.holds(-1)
    assert parse_stop_condition("loss <= 1").holds(1.0)
    assert parse_stop_condition("loss == 1").holds(1.0)
    assert parse_stop_condition("loss != 1").holds(2.0)
    assert parse_stop_condition("loss >= inf").holds(math.inf)
    for op in ("<", "<=", ">", ">=", "==", "!="):
        assert not parse_stop_condition(f"loss {op} 1").holds(math.nan)
    assert str(cond) == "loss > 10.0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("loss", "no comparison operator"),
        ("loss 10", "no comparison operator"),
        ("> 10", "names no metric"),
        ("loss >", "no value"),
        ("loss > abc", "not a number"),
        ("loss > 1 > 2", "not a number"),
        ("loss > nan", "NaN"),
        ("val acc > 1", "metric name 'val acc' is invalid"),
        ("1loss > 1", "invalid"),
        ("loss = 1", "did you mean '=='"),
        ("loss => 1", "did you mean '>='"),
        ("loss =< 1", "did you mean '<='"),
        ("loss <> 1", "did you mean '!='"),
        ("loss >>> 1", "unknown operator '>>>'"),
        (b"loss > \xff", "not valid UTF-8"),
    ],
)
def test_parse_stop_condition_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_stop_condition(text)


@settings(max_examples=500)
@given(st.one_of(st.text(), st.binary(), st.text(alphabet="lossacc_ <>=!.-+0123456789einfa")))
def test_fuzz_stop_condition(text: str | bytes) -> None:
    try:
        cond = parse_stop_condition(text)
    except ValueError:
        return
    assert cond.op in ("<", "<=", ">", ">=", "==", "!=")
    assert not math.isnan(cond.value)
    assert parse_stop_condition(f"{cond.metric} {cond.op} {cond.value!r}") == cond
