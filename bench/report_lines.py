"""How fast a command's metric lines reach storage, and what that costs a trial running beside it.

Setup, per sink and per repetition, each on a fresh SQLite file (WAL, the library's defaults):

- a study is created and its trials claimed with leases straight through the storage API
  (`Storage.create_study`, `Storage.claim`), exactly as the driver does, so the measurement
  does not depend on the study layer;
- a `CommandExecutor` (capacity 2) runs the trials, driven by a loop like the driver's:
  ``wait(0.2)``, then for each finished trial ``sink.flush(trial)`` and ``storage.finish``;
- **big**: ``python -c`` printing N metric lines (``loss=...`` or JSON ``{"step": i, "loss": ...}``)
  as fast as it can (unbuffered, as the executor sets ``PYTHONUNBUFFERED=1``);
- **neighbour**: a small command doing fixed work: 20 steps of (0.04 s sleep + a little CPU),
  printing ``loss=...`` after each, ≈ 1 s in all; run alone first, then beside big (submitted
  right after it).

Measured: big "stored" = from its submit until every one of its N reports is in the database
(after the executor hands it back and the sink's flush returns; checked by counting rows);
neighbour duration = from its submit until its finish is written. The neighbour's slowdown is
its median duration beside big over its median duration alone.

Sinks: ``sync`` writes each report with ``Storage.report`` on the driver thread, as the study
did before issue 8 (the "before"); ``buffered`` is `hypersearch.execution.reports.ReportBuffer`
(the "after"); ``none`` stores nothing (reports and logs are dropped): the floor set by the
command itself and the command executor's reading and parsing of its lines.

    python bench/report_lines.py                 # all sinks, 100k lines, 3 repetitions
    python bench/report_lines.py --sinks buffered --lines 100000 --repeat 5 --format json
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hypersearch.execution.command import CommandExecutor, CommandSpec, CommandTemplate
from hypersearch.execution.reports import ReportBuffer
from hypersearch.space import Space, choice
from hypersearch.storage.base import Storage
from hypersearch.storage.sql import SQLStorage
from hypersearch.trial import FrozenTrial

OWNER = "bench-owner"
BIG = {
    "kv": "import sys\nw = sys.stdout.write\nfor i in range({n}):\n    w(f'loss={{1.0 / (i + 1)}}\\n')\n",
    "json": (
        "import sys\nw = sys.stdout.write\nfor i in range({n}):\n"
        '    w(f\'{{{{"step": {{i}}, "loss": {{1.0 / (i + 1)}}}}}}\\n\')\n'
    ),
}
NEIGHBOUR = (
    "import time\n"
    "for i in range(20):\n"
    "    time.sleep(0.04)\n"
    "    s = sum(range(20000))\n"  # ≈ 1 ms of CPU per step
    "    print(f'loss={1.0 / (i + 1)}', flush=True)\n"
)


class DirectSink:
    """The "before": each report is one synchronous storage write on the driver thread."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def report_metrics(
        self, trial: FrozenTrial, step: int | None, metrics: dict[str, float]
    ) -> None:
        self.storage.report(trial.id, trial.owner or "", trial.lease_epoch, step, metrics)  # type: ignore[arg-type]

    def append_logs(
        self, trial: FrozenTrial, stream: str, lines: Sequence[tuple[int, str]]
    ) -> None:
        self.storage.append_logs(trial.id, trial.owner or "", trial.lease_epoch, stream, lines)  # type: ignore[arg-type]

    def flush(self, trial: FrozenTrial | None = None) -> None:
        """Nothing is held back."""

    def close(self) -> None:
        """Nothing is held back."""


class NoSink(DirectSink):
    """The floor: what running and parsing the command costs with nothing stored."""

    def report_metrics(
        self, trial: FrozenTrial, step: int | None, metrics: dict[str, float]
    ) -> None:
        pass

    def append_logs(
        self, trial: FrozenTrial, stream: str, lines: Sequence[tuple[int, str]]
    ) -> None:
        pass


SINKS = {"none": NoSink, "sync": DirectSink, "buffered": ReportBuffer}


class Bench:
    """One fresh SQLite study and one sink."""

    def __init__(self, sink_kind: str, directory: str, tag: str) -> None:
        self.path = f"{directory}/{tag}.db"
        self.storage = SQLStorage(f"sqlite:///{self.path}")
        self.space = Space({"script": choice(["big", "neighbour"])})
        record, _ = self.storage.create_study(tag, "minimize", "loss", self.space.to_json_str(), {})
        self.study_id = record.id
        self.sink: Any = SINKS[sink_kind](self.storage)
        self.directory = directory

    def claim(self, script: str) -> FrozenTrial:
        index = ["big", "neighbour"].index(script)
        trial = self.storage.claim(
            self.study_id,
            OWNER,
            propose=lambda history, number: {"script": index},
            uses_history=False,
            max_trials=None,
            lease_seconds=600.0,
        )
        assert trial is not None
        return trial

    def run(self, scripts: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Run the scripts (name -> source) as trials at once; per name: seconds from submit to
        stored, rows stored, final state."""
        for name, source in scripts.items():
            with open(os.path.join(self.directory, f"{name}.py"), "w") as f:
                f.write(source)
        spec = CommandSpec(
            CommandTemplate([sys.executable, os.path.join(self.directory, ":script:.py")]),
            metric="loss",
            grace=2.0,
            output_root=os.path.join(self.directory, "runs"),
            study_name="bench",
        )
        executor = CommandExecutor(spec, self.space, self.sink, capacity=len(scripts))
        started: dict[int, tuple[str, float]] = {}
        results: dict[str, dict[str, Any]] = {}
        try:
            for name in scripts:
                trial = self.claim(name)
                executor.submit(trial)
                started[trial.id] = (name, time.monotonic())  # type: ignore[index]
            while executor.busy:
                for finished in executor.wait(0.2):
                    trial = finished.trial
                    self.sink.flush(trial)
                    self.storage.finish(trial.id, OWNER, trial.lease_epoch, finished.outcome)  # type: ignore[arg-type]
                    name, t0 = started[trial.id]  # type: ignore[index]
                    results[name] = {
                        "seconds": time.monotonic() - t0,
                        "id": trial.id,
                        "state": finished.outcome.state.value,
                    }
        finally:
            executor.close()
        with sqlite3.connect(self.path) as db:  # counted after the clock stopped
            for result in results.values():
                query = "SELECT count(*) FROM metrics WHERE trial_id = ?"
                result["rows"] = db.execute(query, (result["id"],)).fetchone()[0]
        return results

    def close(self) -> None:
        self.sink.close()
        self.storage.close()


def one(sink_kind: str, lines: int, fmt: str, directory: str, tag: str) -> dict[str, Any]:
    bench = Bench(sink_kind, directory, tag)
    try:
        alone = bench.run({"neighbour": NEIGHBOUR})["neighbour"]
        both = bench.run({"big": BIG[fmt].format(n=lines), "neighbour": NEIGHBOUR})
    finally:
        bench.close()
    big, neighbour = both["big"], both["neighbour"]
    if big["rows"] != (0 if sink_kind == "none" else lines) or big["state"] != "COMPLETE":
        raise SystemExit(f"{sink_kind}: big stored {big['rows']} of {lines} rows, {big['state']}")
    return {
        "big_s": big["seconds"],
        "alone_s": alone["seconds"],
        "beside_s": neighbour["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sinks", default="none,sync,buffered")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--format", choices=sorted(BIG), default="kv")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for sink_kind in args.sinks.split(","):
            runs = [
                one(sink_kind, args.lines, args.format, directory, f"{sink_kind}{i}")
                for i in range(args.repeat)
            ]
            for i, run in enumerate(runs):
                print(
                    f"# {sink_kind} run {i + 1}: big stored {run['big_s']:.2f} s; neighbour "
                    f"alone {run['alone_s']:.2f} s, beside {run['beside_s']:.2f} s",
                    flush=True,
                )
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            rows.append((sink_kind, med))
    print()
    print(
        f"{args.lines:,} `{args.format}` metric lines from one command, SQLite, median of "
        f"{args.repeat} run(s); load average before the last run: {os.getloadavg()[0]:.1f}"
    )
    print()
    print(
        "| sink | big: all lines stored (s) | lines/s | neighbour alone (s) | beside big (s) | slowdown | meets bars (≤ 2 s, ≤ 20 %) |"
    )
    print("|---|---|---|---|---|---|---|")
    for sink_kind, med in rows:
        slowdown = med["beside_s"] / med["alone_s"] - 1
        ok = med["big_s"] <= 2.0 and slowdown <= 0.20
        label = {"none": "none (floor)", "sync": "sync (before)"}.get(sink_kind, "buffered (after)")
        print(
            f"| {label} | {med['big_s']:.2f} | {args.lines / med['big_s']:,.0f} | "
            f"{med['alone_s']:.2f} | {med['beside_s']:.2f} | {slowdown:+.0%} | {'n/a' if sink_kind == 'none' else 'yes' if ok else 'NO'} |"
        )


if __name__ == "__main__":
    main()
