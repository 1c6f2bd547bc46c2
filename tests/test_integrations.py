"""Keras and Lightning callbacks and the plain PyTorch example, training tiny models on CPU.

Each test trains a model of a few dozen parameters for a few epochs (seconds). The frameworks
come with the ``keras`` and ``lightning`` extras (in ``test``): under CI a missing one fails
the test; elsewhere it is skipped.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import hypersearch as hs
from hypersearch.trial import TrialState

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
EPOCHS = 20
# the threshold rule stops every trial at step 3: an MSE is never below 0
STOP_AT_3: dict[str, Any] = {
    "scheduler": "threshold",
    "scheduler_options": {"upper": 0.0, "n_warmup_steps": 3},
}


def need(module: str) -> ModuleType:
    """Import `module`; skip the test where it is not installed, except under CI."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(n, 3)).astype("float32")
    y = (x @ np.array([[1.5], [-2.0], [0.5]]) + 0.3).astype("float32")
    return x, y


# -- Keras ----------------------------------------------------------------------------------------


def keras_model(keras: Any, lr: float) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


def test_keras_callback_stops_a_python_objective() -> None:
    integration = need("hypersearch.integrations.keras")
    keras, ReportCallback = integration.keras, integration.ReportCallback
    x, y = data()
    epochs_run: list[int] = []

    def objective(params: dict[str, float], trial: hs.Trial) -> float:
        callback = ReportCallback(trial, monitor="val_loss")
        history = keras_model(keras, params["lr"]).fit(
            x, y, validation_split=0.25, epochs=EPOCHS, batch_size=16, verbose=0,
            callbacks=[callback],
        )  # fmt: skip
        epochs_run.append(len(history.history["loss"]))
        if callback.stopped:
            raise hs.TrialPruned()
        return history.history["val_loss"][-1]

    study = hs.minimize(objective, {"lr": hs.uniform(0.01, 0.1)}, max_trials=1, storage="memory",
                        metric="val_loss", verbose=False, **STOP_AT_3)  # fmt: skip
    trial = study.trials[0]
    assert trial.state is TrialState.PRUNED, trial
    assert epochs_run == [3]  # of 20
    points = study.storage.get_metrics(trial.id)  # type: ignore[arg-type]
    assert sorted({p.name for p in points}) == ["loss", "val_loss"]
    assert [p.step for p in points if p.name == "val_loss"] == [1, 2, 3]
    assert trial.value == [p.value for p in points if p.name == "val_loss"][-1]


def test_keras_callback_names_the_logged_metrics_when_the_monitor_is_missing() -> None:
    integration = need("hypersearch.integrations.keras")
    x, y = data()
    callback = integration.ReportCallback(None, monitor="val_loss")
    model = keras_model(integration.keras, 0.05)
    with pytest.raises(ValueError, match=r"monitor 'val_loss' is not among .*\(present: loss\)"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])  # no validation data
    with pytest.raises(ValueError, match="monitor must be a metric name"):
        integration.ReportCallback(None, monitor="")
    with pytest.raises(TypeError, match="trial must be the hypersearch trial"):
        integration.ReportCallback("trial-3")


def test_keras_script_run_as_a_command_stops_cleanly(tmp_path: Path) -> None:
    """examples/keras_train.py under the CLI's executor: the callback hears the STOP through
    the decision file, `fit` ends, the script exits 0 by itself; the trial is PRUNED."""
    need("keras")
    study = hs.create_study({"lr": hs.choice([0.05])}, storage=f"sqlite:///{tmp_path}/k.db",
                            name="k", metric="val_loss", **STOP_AT_3)  # fmt: skip
    command = hs.Command(
        [PY, str(ROOT / "examples" / "keras_train.py"), "--lr", ":lr:", "--epochs", str(EPOCHS)],
        grace=120,  # a SIGTERM would come only after this: the trial must end well before
        output_dir=str(tmp_path / "runs"),
    )
    study.optimize(command, max_trials=1, verbose=False)
    trial = study.trials[0]
    assert trial.state is TrialState.PRUNED, trial
    assert "exited by itself (code 0)" in (trial.failure_detail or ""), trial.failure_detail
    assert trial.duration is not None and trial.duration < 110
    stdout = [row.text for row in study.storage.get_logs(trial.id, "stdout")]  # type: ignore[arg-type]
    stopped = [line for line in stdout if line.startswith("stopped cleanly at epoch")]
    assert stopped, stdout
    epoch = int(stopped[0].rsplit(" ", 1)[1])
    assert 3 <= epoch < EPOCHS
    steps = [p.step for p in study.storage.get_metrics(trial.id) if p.name == "val_loss"]  # type: ignore[arg-type]
    assert steps == list(range(1, epoch + 1))


# -- Lightning ------------------------------------------------------------------------------------


def lightning_parts(lr: float) -> tuple[Any, Any, Any]:
    """A LightningModule (a 3-4-1 net), and train and validation loaders."""
    pl = need("lightning.pytorch")
    torch = need("torch")

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)
            )

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss, on_epoch=True, on_step=False)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=lr)

    torch.manual_seed(0)
    x, y = (torch.from_numpy(a) for a in data())
    train = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x[:48], y[:48]), batch_size=16
    )
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[48:], y[48:]), batch_size=16)
    return Tiny(), train, val


def trainer(callback: Any) -> Any:
    pl = need("lightning.pytorch")
    return pl.Trainer(
        max_epochs=EPOCHS, callbacks=[callback], accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip


def test_lightning_callback_stops_a_python_objective() -> None:
    integration = need("hypersearch.integrations.lightning")
    epochs_run: list[int] = []

    def objective(params: dict[str, float], trial: hs.Trial) -> float:
        module, train, val = lightning_parts(params["lr"])
        callback = integration.ReportCallback(trial, monitor="val_loss")
        fit = trainer(callback)
        fit.fit(module, train, val)
        epochs_run.append(fit.current_epoch)
        if callback.stopped:
            raise hs.TrialPruned()
        return float(fit.callback_metrics["val_loss"])

    study = hs.minimize(objective, {"lr": hs.uniform(0.01, 0.1)}, max_trials=1, storage="memory",
                        metric="val_loss", verbose=False, **STOP_AT_3)  # fmt: skip
    trial = study.trials[0]
    assert trial.state is TrialState.PRUNED, trial
    assert epochs_run == [3]  # epochs done, of 20
    points = study.storage.get_metrics(trial.id)  # type: ignore[arg-type]
    assert [p.step for p in points if p.name == "val_loss"] == [1, 2, 3]
    assert "train_loss" in {p.name for p in points}


def test_lightning_callback_names_the_logged_metrics_when_the_monitor_is_missing() -> None:
    integration = need("hypersearch.integrations.lightning")
    module, train, val = lightning_parts(0.05)
    callback = integration.ReportCallback(None, monitor="val_acc")
    with pytest.raises(ValueError, match=r"monitor 'val_acc' .*\(present: .*val_loss"):
        trainer(callback).fit(module, train, val)


def test_lightning_callback_reports_training_epochs_without_validation() -> None:
    integration = need("hypersearch.integrations.lightning")
    reports: list[tuple[int, dict[str, float]]] = []

    class Trial:  # the two methods the callback needs of a trial
        def report(self, step: int, **metrics: float) -> None:
            reports.append((step, metrics))

        def should_stop(self) -> bool:
            return len(reports) >= 2

    module, train, _ = lightning_parts(0.05)
    callback = integration.ReportCallback(Trial(), monitor="train_loss")
    fit = trainer(callback)
    fit.fit(module, train)
    assert [step for step, _ in reports] == [1, 2] and callback.stopped_epoch == 2
    assert fit.current_epoch == 2 and list(reports[0][1]) == ["train_loss"]


# -- the plain PyTorch loop example ---------------------------------------------------------------


def test_pytorch_loop_example_runs_by_hand_and_stops_cleanly_as_a_command(tmp_path: Path) -> None:
    need("torch")
    example = str(ROOT / "examples" / "pytorch_loop.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERSEARCH_")}
    done = subprocess.run([PY, example, "--epochs", "3"], capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith('@hypersearch {"step": ') for line in lines)

    study = hs.create_study({"lr": hs.choice([0.05])}, storage=f"sqlite:///{tmp_path}/p.db",
                            name="p", metric="val_loss", **STOP_AT_3)  # fmt: skip
    command = hs.Command([PY, example, "--lr", ":lr:", "--epochs", str(EPOCHS)], grace=120,
                         output_dir=str(tmp_path / "runs"))  # fmt: skip
    study.optimize(command, max_trials=1, verbose=False)
    trial = study.trials[0]
    assert trial.state is TrialState.PRUNED, trial
    assert "exited by itself (code 0)" in (trial.failure_detail or ""), trial.failure_detail
    stdout = [row.text for row in study.storage.get_logs(trial.id, "stdout")]  # type: ignore[arg-type]
    assert any(line.startswith("stopped cleanly at epoch") for line in stdout), stdout


def test_a_hyperas_style_keras_objective_returns_its_model_through_the_hyperopt_dropin() -> None:
    """Hyperas's shape: the objective builds and fits a Keras model and returns
    {'loss', 'status', 'model'}; only the import changes (hyperopt -> hypersearch.hyperopt)."""
    keras = need("hypersearch.integrations.keras").keras
    from hypersearch.hyperopt import STATUS_OK, Trials, fmin, hp, space_eval, tpe

    x, y = data()

    def create_model(params: dict) -> dict:
        model = keras_model(keras, params["lr"])
        history = model.fit(x, y, epochs=5, batch_size=params["batch_size"], verbose=0)
        return {"loss": float(history.history["loss"][-1]), "status": STATUS_OK, "model": model}

    space = {"lr": hp.loguniform("lr", np.log(1e-3), np.log(0.3)),
             "batch_size": hp.choice("batch_size", [16, 32])}
    trials = Trials()
    best = fmin(create_model, space, algo=tpe.suggest, max_evals=4, trials=trials,
                rstate=np.random.default_rng(0), show_progressbar=False)
    assert best["batch_size"] in (0, 1) and 1e-3 <= best["lr"] <= 0.3  # hyperopt's argmin
    model = trials.best_trial["result"]["model"]
    assert isinstance(model, keras.Model) and model.predict(x[:2], verbose=0).shape == (2, 1)
    assert space_eval(space, best)["batch_size"] in (16, 32)
    assert trials.losses() == [t["result"]["loss"] for t in trials.trials]
