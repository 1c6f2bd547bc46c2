"""A study is its stored definition: another process runs exactly the same study from its name
alone (`hs.load_study(name, url).optimize()`, `hypersearch resume NAME`); changes on resume are
revisions; identity settings never change; `show --yaml | run -` makes the same study."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import hypersearch as hs
from hypersearch.errors import HypersearchError, StudyConflictError
from hypersearch.study.definition import SCHEMA_VERSION, StudyDefinition

PY = sys.executable
SPACE = {"x": hs.uniform(0.0, 1.0)}

# A trial command that records what it ran with: argv, cwd, its extra env and hypersearch's.
TRIAL = """\
import json, os, sys
log, x = sys.argv[1], float(sys.argv[2])
env = {k: v for k, v in os.environ.items() if k.startswith(("HS_", "HYPERSEARCH_", "FOO"))}
with open(log, "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": env}) + "\\n")
print(f"loss={x}")
"""

OBJECTIVE = """\
import os


def objective(params, trial):
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("foo", os.environ.get("FOO"))
    return (params["x"] - 0.25) ** 2
"""


def run(*args: str, cwd: Path, stdin: str | None = None, check: bool = True) -> Any:
    """`hypersearch ARGS` in a new process."""
    result = subprocess.run(
        [PY, "-m", "hypersearch.cli.main", *args],
        cwd=cwd, input=stdin, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def python(code: str, cwd: Path, check: bool = True) -> Any:
    """Python `code` in a new process."""
    result = subprocess.run(
        [PY, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=180
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def shown(name: str, url: str, cwd: Path) -> dict[str, Any]:
    """`hypersearch show NAME --json`: the stored definition."""
    return json.loads(run("show", name, "--storage", url, "--json", cwd=cwd).stdout)


def identity(document: dict[str, Any]) -> dict[str, Any]:
    """A definition without what a resume may change (budget) or adds (revisions)."""
    settings = {k: v for k, v in document["settings"].items() if k != "max_trials"}
    return {**document, "settings": settings, "revisions": None}


def records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def command_study(tmp_path: Path, name: str = "cmd") -> tuple[str, Path]:
    """A command study made by `hypersearch tpe` with most settings off their defaults; 2 trials."""
    url = f"sqlite:///{tmp_path}/hs.db"
    (tmp_path / "trial.py").write_text(TRIAL)
    log = tmp_path / f"{name}.jsonl"
    run(
        "tpe", "--name", name, "--storage", url, "-n", "2", "-p", "2", "--seed", "11",
        "--strategy-opt", "n_startup=3", "--env", "FOO=bar", "--stop-condition", "loss > 100",
        "--trial-timeout", "30", "--retries", "2", "--retry-on", "interrupted,crashed",
        "--lease", "20", "--tag", "t1", "-m", "note", "--param", "x=0:1",
        "--", PY, "trial.py", str(log), ":x:",
        cwd=tmp_path,
    )  # fmt: skip
    return url, log


# -- another process runs the identical study from its name ----------------------------------------


def test_command_study_resumes_identically_from_python_and_the_cli(tmp_path: Path) -> None:
    url, log = command_study(tmp_path)
    created = shown("cmd", url, tmp_path)
    assert created["settings"]["strategy_options"] == {"n_startup": 3}

    hs.load_study("cmd", url, max_trials=3)  # one more trial: a revision
    out = python(
        f"""
        import json, hypersearch as hs
        study = hs.load_study("cmd", {url!r})
        study.optimize(verbose=False)
        print(json.dumps({{"sampler": study.sampler.config(), "settings":
                          study.definition.public_settings()}}))
        """,
        tmp_path,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["sampler"]["n_startup"] == 3
    assert seen["settings"] == {**created["settings"], "max_trials": 3}

    run("resume", "cmd", "--storage", url, "-n", "4", cwd=tmp_path)
    resumed = shown("cmd", url, tmp_path)
    assert identity(resumed) == identity(created)
    assert [r["changes"] for r in resumed["revisions"]] == [
        {"max_trials": [2, 3]},
        {"max_trials": [3, 4]},
    ]

    ran = records(log)
    assert len(ran) == 4  # two at creation, one from Python, one from `resume`
    for record in ran:
        assert record["argv"][0] == str(log) and len(record["argv"]) == 2
        assert record["cwd"] == str(tmp_path)
        assert record["env"]["FOO"] == "bar"
        assert record["env"]["HYPERSEARCH_STUDY"] == "cmd"
        assert set(record["env"]) == set(ran[0]["env"])  # the same HS_* variables each time
        assert record["env"]["HS_PARAM_X"] == record["argv"][1]
    study = hs.load_study("cmd", url)
    assert [t.state.value for t in study.trials] == ["COMPLETE"] * 4


def test_python_objective_study_resumes_identically(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    (tmp_path / "objmod.py").write_text(OBJECTIVE)
    (tmp_path / "study.yaml").write_text(
        "name: py\nobjective: objmod:objective\nstrategy: random\nseed: 4\nmax_trials: 2\n"
        "retries: 1\nmax_failures: 5\nexecutor: inprocess\nspace: {x: {uniform: [0, 1]}}\n"
    )
    run("run", "study.yaml", "--storage", url, cwd=tmp_path)
    created = shown("py", url, tmp_path)
    assert created["settings"]["objective"] == "objmod:objective"

    hs.load_study("py", url, max_trials=3)
    out = python(
        f"""
        import hypersearch as hs, os
        hs.load_study("py", {url!r}).optimize(verbose=False)
        print(os.getpid())
        """,
        tmp_path,
    )
    python_pid = int(out.stdout.split()[-1])
    run("resume", "py", "--storage", url, "-n", "4", cwd=tmp_path)
    resumed = shown("py", url, tmp_path)
    assert identity(resumed) == identity(created)

    trials = hs.load_study("py", url).trials
    assert [t.state.value for t in trials] == ["COMPLETE"] * 4
    pids = [t.user_attrs["pid"] for t in trials]
    assert pids[2] == python_pid  # the third trial ran in the Python process, in-process
    assert len({pids[0], pids[2], pids[3]}) == 3  # each run its own process
    for trial in trials:
        assert trial.value == pytest.approx((trial.params["x"] - 0.25) ** 2)


# -- revisions and identity ------------------------------------------------------------------------


def test_revisions_are_listed_by_show(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    hs.create_study(SPACE, name="r", storage=url, objective="math:fabs", max_trials=1)
    changes = hs.load_study("r", url, max_trials=10, strategy="random").definition.revisions
    assert [r.changes for r in changes] == [{"max_trials": [1, 10], "strategy": ["tpe", "random"]}]
    text = run("show", "r", "--storage", url, cwd=tmp_path).stdout
    assert "revisions: 1" in text
    assert "max_trials 1 -> 10" in text and "strategy 'tpe' -> 'random'" in text
    study = hs.load_study("r", url)
    assert (study.definition.max_trials, study.sampler.name) == (10, "random")
    assert hs.load_study("r", url, max_trials=10).definition.revisions == changes  # no change


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One command study for the tests that leave it as it is."""
    return command_study(tmp_path_factory.mktemp("made"))


@pytest.mark.parametrize(
    ("args", "difference"),
    [
        (["--", PY, "other.py", ":x:"], "command: stored"),
        (["--metric", "acc", "--", PY, "trial.py", "LOG", ":x:"], "metric: stored loss, given acc"),
        (["--maximize", "--", PY, "trial.py", "LOG", ":x:"], "direction: stored minimize"),
        (["--seed", "12", "--", PY, "trial.py", "LOG", ":x:"], "seed: stored 11, given 12"),
    ],
)
def test_identity_change_is_refused_with_the_difference(
    made: tuple[str, Path], args: list[str], difference: str
) -> None:
    url, log = made
    tmp_path = log.parent
    args = [str(log) if a == "LOG" else a for a in args]
    before = shown("cmd", url, tmp_path)
    result = run(
        "tpe", "--name", "cmd", "--storage", url, "-n", "5", "--param", "x=0:1", *args,
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert difference in result.stderr and "never change" in result.stderr
    assert shown("cmd", url, tmp_path) == before


def test_identity_change_is_refused_from_python(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    hs.create_study(SPACE, name="p", storage=url, command=["echo", ":x:"], metric="acc")
    for given, difference in (
        ({"direction": "maximize"}, "direction: stored minimize, given maximize"),
        ({"metric": "loss"}, "metric: stored acc, given loss"),
        ({"command": ["echo", "2", ":x:"]}, "command: stored"),
    ):
        with pytest.raises(StudyConflictError, match=difference):
            hs.create_study(SPACE, name="p", storage=url, **given)
        with pytest.raises(StudyConflictError, match=difference):
            hs.load_study("p", url, **given)
    with pytest.raises(StudyConflictError, match="different space"):
        hs.create_study({"x": hs.uniform(0.5, 1.0)}, name="p", storage=url)
    assert hs.load_study("p", url).definition.revisions == ()


def test_a_newer_definition_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    study = hs.create_study(SPACE, name="new", storage=url, objective="math:fabs")
    document = dict(study.storage.get_study("new").config)
    study.storage.update_study_config(study.id, {**document, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(HypersearchError, match="written by a newer hypersearch") as caught:
        hs.load_study("new", url)
    assert "upgrade hypersearch" in str(caught.value)
    for command in ("show", "resume"):
        result = run(command, "new", "--storage", url, cwd=tmp_path, check=False)
        assert result.returncode == 2 and "newer hypersearch" in result.stderr


def test_definition_document_round_trip() -> None:
    definition = StudyDefinition.build(
        hs.Space(SPACE),
        {"command": ("echo", ":x:"), "strategy_options": {"n_startup": 4}, "tags": ["a"]},
    )
    revised, changes = definition.revise({"max_trials": 5})
    assert changes == {"max_trials": [None, 5]}
    again = StudyDefinition.from_document(
        json.loads(json.dumps(revised.to_document())), hs.Space(SPACE)
    )
    assert again == revised and again.revisions == revised.revisions


def test_an_in_process_objective_refuses_another_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    hs.minimize(lambda p: p["x"], SPACE, name="lam", storage=url, max_trials=1, verbose=False)
    assert hs.load_study("lam", url).definition.in_process
    result = python(
        f"import hypersearch as hs; hs.load_study('lam', {url!r}, max_trials=2).optimize()",
        tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "only the process that started it can run" in result.stderr
    assert "objective='module:function'" in result.stderr  # what to do
    resumed = run("resume", "lam", "--storage", url, "-n", "3", cwd=tmp_path, check=False)
    assert resumed.returncode == 2 and "only the process that started it" in resumed.stderr
    assert len(hs.load_study("lam", url).trials) == 1


def test_a_stop_request_ends_the_run_but_not_a_later_resume(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    slow = "import sys, time; time.sleep(0.25); print('loss=' + sys.argv[1])"
    process = subprocess.Popen(
        [PY, "-m", "hypersearch.cli.main", "random", "--name", "st", "--storage", url,
         "-n", "16", "--param", "x=0:1", "--", PY, "-c", slow, ":x:"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                if len(hs.load_study("st", url).get_trials(["COMPLETE"])) >= 2:
                    break
            except HypersearchError:
                continue  # not created yet
        run("stop", "st", "--storage", url, cwd=tmp_path)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert "stop requested" in stderr, stderr
    stopped = len(hs.load_study("st", url).get_trials(["COMPLETE"]))
    assert stopped < 16
    # the Python resume runs for many summary periods: a stale flag would end it at once
    python(f"import hypersearch as hs; hs.load_study('st', {url!r}).optimize()", tmp_path)
    study = hs.load_study("st", url)
    assert len(study.get_trials(["COMPLETE"])) >= 15 > stopped
    assert not study.stop_requested()


# -- show --yaml | run - ----------------------------------------------------------------------------


def test_show_yaml_into_run_makes_the_same_command_study(tmp_path: Path) -> None:
    url, _ = command_study(tmp_path)
    other = f"sqlite:///{tmp_path}/other.db"
    text = run("show", "cmd", "--storage", url, "--yaml", cwd=tmp_path).stdout
    run("run", "-", "--storage", other, stdin=text, cwd=tmp_path)
    assert shown("cmd", other, tmp_path) == shown("cmd", url, tmp_path)
    renamed = run("run", "-", "--storage", url, "--name", "copy", stdin=text, cwd=tmp_path)
    assert renamed.returncode == 0
    copy, original = shown("copy", url, tmp_path), shown("cmd", url, tmp_path)
    assert {**copy, "name": "cmd"} == original


def test_show_yaml_into_run_makes_the_same_python_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    (tmp_path / "objmod.py").write_text(OBJECTIVE)
    hs.create_study(
        {"x": hs.uniform(0.0, 1.0), "opt": hs.choice([{"name": "a", "m": hs.integer(1, 4)}, "b"]),
         "const": {"uniform": 3}},
        name="py", storage=url, objective="objmod:objective", direction="maximize",
        strategy="gp", strategy_options={"n_startup": 2}, max_trials=2, n_jobs=2,
        executor="process", env={"FOO": "1"}, patience=3, target=0.99, retries=0,
    )  # fmt: skip
    text = run("show", "py", "--storage", url, "--yaml", cwd=tmp_path).stdout
    assert "constant:" in text  # {uniform: 3} is a constant mapping, written as one
    other = f"sqlite:///{tmp_path}/other.db"
    run("run", "-", "--storage", other, "--max-trials", "2", stdin=text, cwd=tmp_path)
    assert shown("py", other, tmp_path) == shown("py", url, tmp_path)
    assert len(hs.load_study("py", other).get_trials(["COMPLETE"])) == 2
