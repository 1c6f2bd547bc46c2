"""The `--param` / `--json-param` grammar of the command-line tool (Spell `hyper` habits)."""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypersearch.cli.params import ParamError, build_space, parse_json_param, parse_param
from hypersearch.space import Choice, Float, Integer, Space

FUZZ = settings(
    max_examples=int(os.environ.get("HYPERSEARCH_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def options(value: Any) -> list[Any]:
    assert isinstance(value, Choice)
    return list(value.options)


# -- choices ---------------------------------------------------------------------------------------


def test_choice_of_ints() -> None:
    name, value = parse_param("conv2_filter=16,32,64")
    assert name == "conv2_filter"
    assert options(value) == [16, 32, 64]
    assert all(type(option) is int for option in options(value))


def test_choice_of_floats() -> None:
    _, value = parse_param("dropout=0.2,0.5")
    assert options(value) == [0.2, 0.5]
    assert all(type(option) is float for option in options(value))


def test_choice_of_strings() -> None:
    _, value = parse_param("act=relu,tanh")
    assert options(value) == ["relu", "tanh"]


def test_choice_types_are_per_value() -> None:
    _, value = parse_param("x=1,2.5,-3,1e-3,.5,abc,true,False,none,nan,inf")
    assert options(value) == [1, 2.5, -3, 0.001, 0.5, "abc", "true", "False", "none", "nan", "inf"]
    assert [type(option) for option in options(value)[:5]] == [int, float, int, float, float]


def test_booleans_stay_strings() -> None:
    assert options(parse_param("flag=true,false")[1]) == ["true", "false"]
    assert parse_param("flag=true") == ("flag", "true")


def test_quotes_keep_commas_and_colons_and_force_strings() -> None:
    assert options(parse_param("""x="a,b",'c:d',"1",2""")[1]) == ["a,b", "c:d", "1", 2]
    assert parse_param("x='0.1:1'") == ("x", "0.1:1")
    assert parse_param('x="a,b"') == ("x", "a,b")
    assert parse_param("x=''") == ("x", "")


def test_whitespace_around_items_is_ignored() -> None:
    assert options(parse_param(" x = 1 , 2 ")[1]) == [1, 2]
    assert options(parse_param("x=a b,c")[1]) == ["a b", "c"]


def test_colon_inside_a_list_is_text() -> None:
    assert options(parse_param("x=a:b,c")[1]) == ["a:b", "c"]


def test_constant() -> None:
    assert parse_param("epochs=10") == ("epochs", 10)
    assert parse_param("p=0.5") == ("p", 0.5)
    assert parse_param("mode=fast") == ("mode", "fast")


def test_names_may_hold_dashes_and_underscores() -> None:
    assert parse_param("_my-param_2=1,2")[0] == "_my-param_2"


# -- ranges ----------------------------------------------------------------------------------------


def test_log_range_is_loguniform() -> None:
    _, value = parse_param("lr=0.0001:0.1:log")
    assert value == Float(0.0001, 0.1, log=True)


def test_float_range_is_uniform() -> None:
    assert parse_param("p=0.0:1.0")[1] == Float(0.0, 1.0)
    assert parse_param("p=0.0:1.0:linear")[1] == Float(0.0, 1.0)
    assert parse_param("p=0:1:float")[1] == Float(0.0, 1.0)
    assert parse_param("p=0:1.5")[1] == Float(0.0, 1.5)


def test_int_range_is_integer() -> None:
    assert parse_param("units=16:128:int")[1] == Integer(16, 128)
    assert parse_param("units=16:128")[1] == Float(16.0, 128.0)  # real unless :int, as Spell
    assert parse_param("units=16.0:128.0:int")[1] == Integer(16, 128)


def test_int_log_range_is_integer_log() -> None:
    assert parse_param("units=16:128:log:int")[1] == Integer(16, 128, log=True)
    assert parse_param("units=16:128:int:log")[1] == Integer(16, 128, log=True)  # any order
    assert parse_param("units=16:128:log")[1] == Float(16.0, 128.0, log=True)


def test_range_options_are_case_insensitive() -> None:
    assert parse_param("lr=1e-4:1e-1:LOG:Float")[1] == Float(1e-4, 1e-1, log=True)


def test_float_log_range_with_int_bounds() -> None:
    assert parse_param("lr=1:100:log:float")[1] == Float(1.0, 100.0, log=True)


def test_negative_range() -> None:
    assert parse_param("x=-5:5:int")[1] == Integer(-5, 5)
    assert parse_param("dropout=0:1")[1] == Float(0.0, 1.0)  # never the integers {0, 1}
    assert parse_param("x=-1.5:-0.5")[1] == Float(-1.5, -0.5)


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr=0.1:0.01:log", "--param lr=0.1:0.01:log: MIN (0.1) must be less than MAX (0.01)"),
        ("lr=0:1:log", "--param lr=0:1:log: a log range needs MIN > 0"),
        ("lr=0.0:1.0:log", "--param lr=0.0:1.0:log: a log range needs MIN > 0"),
        ("lr=-1:1:log:float", "a log range needs MIN > 0"),
        (
            "lr",
            "--param lr: missing '=' (write --param lr=0.001:0.1:log or --param lr=0.01,0.1)",
        ),
        (
            "lr=0:1:logg",
            "unknown option ':logg' (did you mean ':log'?); valid options: :linear, :log, :int, :float",
        ),
        ("lr=0:1:bogus", "unknown option ':bogus'; valid options: :linear, :log, :int, :float"),
        ("x=0:1:0.1", "looks like a step"),
        ("x=0:1:log:0.1", "quniform"),
        ("x=1:1", "MIN (1) must be less than MAX (1); for a single value write --param x=1"),
        ("x=", "no value after '='"),
        ("x=  ", "no value after '='"),
        ("=1", "missing the name before '='"),
        ("1x=1", "invalid name '1x'"),
        ("a b=1", "invalid name 'a b'"),
        ("a/b=1", "invalid name 'a/b'"),
        ("a[0]=1", "invalid name 'a[0]'"),
        ("a:b=1", "invalid name 'a:b'"),
        ("x=a,,b", "empty value in the list"),
        ("x=a,", "empty value in the list"),
        ("x=,a", "empty value in the list"),
        ("x='abc", "unterminated ' quote"),
        ('x="abc', 'unterminated " quote'),
        ("x='a'b", "unexpected text 'b' after a quoted value"),
        ("x=1,1", "'1' is listed twice"),
        ("x=a,b,a", "'a' is listed twice"),
        ("x=:1", "MIN is missing before ':'"),
        ("x=1:", "MAX is missing after ':'"),
        ("x=abc:1", "MIN (abc) is not a number"),
        ("x=1:abc", "MAX (abc) is not a number"),
        ("x=nan:1", "MIN (nan) is not a number"),
        ("x=0:1:", "empty option after ':'"),
        ("x=0:1:log:log", "':log' after ':log'"),
        ("x=0:1:log:linear", "give one of linear or log"),
        ("x=0:1:int:float", "give one of int or float"),
        ("x=0.5:2:int", "MIN (0.5) is not a whole number, but ':int' asks for integers"),
        ("x=1e999", "too large for a float"),
        ("x=1,1e999", "too large for a float"),
        ("x=0:1e999", "MAX (1e999) is too large"),
        ("x=-1e308:1e308", "too wide"),
        ("x=0:99999999999999999999:int", "within ±2**53"),
        ("x=" + "9" * 5000, "too many digits"),
    ],
)
def test_param_errors(text: str, message: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse_param(text)
    assert message in str(caught.value)
    assert caught.value.text == text
    assert str(caught.value).startswith("--param ")


def test_param_error_is_a_value_error_and_pickles() -> None:
    with pytest.raises(ValueError) as caught:
        parse_param("lr=0.1:0.01")
    error = caught.value
    assert isinstance(error, ParamError)
    assert error.problem == "MIN (0.1) must be less than MAX (0.01)"
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.problem == error.problem


def test_long_argument_is_shortened_in_the_message() -> None:
    with pytest.raises(ParamError) as caught:
        parse_param("x=" + ",".join(["a"] * 500) + ",")
    assert len(str(caught.value)) < 500


def test_non_string_argument() -> None:
    with pytest.raises(ParamError, match="expected text"):
        parse_param(3)  # type: ignore[arg-type]


# -- --json-param ----------------------------------------------------------------------------------


def test_json_param_list_of_lists() -> None:
    name, value = parse_json_param("layers=[[64, 64], [128, 128, 128]]")
    assert name == "layers"
    assert options(value) == [[64, 64], [128, 128, 128]]


def test_json_param_objects_are_constant_options() -> None:
    _, value = parse_json_param(
        'opt=[{"name": "adam", "lr": 0.001}, {"name": "sgd"}, "none", null]'
    )
    space = Space({"opt": value})
    assert space.names == ["opt"]  # constants only: no parameter inside the options
    seen = {repr(space.unflatten(space.sample(np.random.default_rng(i)))["opt"]) for i in range(50)}
    assert len(seen) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('x={"a": 1}', "must be a JSON list of options"),
        ("x=3", "got a JSON number"),
        ('x="s"', "got a JSON string"),
        ("x=null", "got a JSON null"),
        ("x=true", "got a JSON true/false"),
        ("x=[]", "the list of options is empty"),
        ("x=[1, 2", "not valid JSON"),
        ("x=", "not valid JSON"),
        ("x=[NaN]", "NaN is not allowed"),
        ("x=[Infinity]", "Infinity is not allowed"),
        ("x=[1e400]", "not finite"),
        ('x=[{"a/b": 1}]', "not a valid name"),
        ('x=[{"": 1}]', "not a valid name"),
        ("x=[1, 1]", "listed twice"),
        ('x=[{"a": 1, "b": 2}, {"b": 2, "a": 1}]', "listed twice"),
        ("x=" + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("x", "missing '=' (write --json-param x='[[64, 64], [128]]')"),
        ("2x=[1]", "invalid name"),
    ],
)
def test_json_param_errors(text: str, message: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse_json_param(text)
    assert message in str(caught.value)
    assert str(caught.value).startswith("--json-param ")


# -- build_space -----------------------------------------------------------------------------------


def test_build_space_combines_in_order() -> None:
    space = build_space(
        ["lr=0.0001:0.1:log", "units=16:128:log:int", "act=relu,tanh", "epochs=5"],
        ["layers=[[64], [64, 64]]"],
    )
    assert list(space) == ["lr", "units", "act", "epochs", "layers"]
    built = Space(space)
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = built.unflatten(built.validate(built.sample(rng)))
        assert 1e-4 <= values["lr"] <= 0.1
        assert 16 <= values["units"] <= 128 and isinstance(values["units"], int)
        assert values["act"] in ("relu", "tanh")
        assert values["epochs"] == 5
        assert values["layers"] in ([64], [64, 64])


def test_build_space_empty() -> None:
    assert build_space([], []) == {}


def test_build_space_duplicate_names() -> None:
    with pytest.raises(ParamError, match=r"parameter 'lr' is already given by --param lr=0.1,0.2"):
        build_space(["lr=0.1,0.2", "lr=0.001:0.1:log"], [])
    with pytest.raises(ParamError, match=r"--json-param lr=\[1\]: parameter 'lr' is already given"):
        build_space(["lr=0.1,0.2"], ["lr=[1]"])


def test_build_space_refuses_a_lone_string() -> None:
    with pytest.raises(TypeError):
        build_space("lr=0.1,0.2", [])  # type: ignore[arg-type]


# -- fuzzing ---------------------------------------------------------------------------------------

GRAMMAR_TOKENS = st.sampled_from(
    [
        "lr", "x", "=", ":", ",", "'", '"', "log", "linear", "int", "float", "logg", "0", "1",
        "-1", "0.5", "1e-3", "1e999", "99999999999999999999", " ", "a", "[", "]", "/", "nan",
    ]
)  # fmt: skip
GRAMMAR_TEXT = st.lists(GRAMMAR_TOKENS, max_size=12).map("".join)


def check_param(text: str) -> None:
    try:
        name, value = parse_param(text)
    except ParamError as error:
        assert str(error).startswith("--param ")
        return
    Space({name: value})  # whatever parses must build


@FUZZ
@given(st.text())
def test_fuzz_parse_param_text(text: str) -> None:
    check_param(text)


@FUZZ
@given(GRAMMAR_TEXT)
def test_fuzz_parse_param_grammar(text: str) -> None:
    check_param(text)


@FUZZ
@given(st.sampled_from(["x=", "lr=", ""]), GRAMMAR_TEXT)
def test_fuzz_parse_param_values(prefix: str, text: str) -> None:
    check_param(prefix + text)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


def check_json_param(text: str) -> None:
    try:
        name, value = parse_json_param(text)
    except ParamError as error:
        assert str(error).startswith("--json-param ")
        return
    Space({name: value})


@FUZZ
@given(st.text())
def test_fuzz_parse_json_param_text(text: str) -> None:
    check_json_param(text)


@FUZZ
@given(JSON)
def test_fuzz_parse_json_param_values(value: Any) -> None:
    import json

    check_json_param("x=" + json.dumps(value))
