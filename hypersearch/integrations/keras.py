"""Keras 3 callback: report each epoch's logs to hypersearch and stop training when told.

Example (a Python objective)::

    import hypersearch as hs
    from hypersearch.integrations.keras import ReportCallback

    def objective(params, trial):
        model = build_model(params)
        callback = ReportCallback(trial, monitor="val_loss")
        history = model.fit(x, y, validation_split=0.2, epochs=30, callbacks=[callback])
        if callback.stopped:
            raise hs.TrialPruned()
        return history.history["val_loss"][-1]

    hs.minimize(objective, space, metric="val_loss", scheduler="asha",
                scheduler_options={"max_resource": 30})

In a script run as a shell command (``hypersearch tpe ... -- python train.py --lr :lr:``) pass
``ReportCallback(None)``: it prints the client's report lines and reads the decision channel,
so a STOP ends ``fit`` after the epoch and the script exits by itself (see
`hypersearch.client`). The step of each report is the number of epochs done (1 after the first).
Once a command reports through the client, its progress lines (``val_loss: 0.21``) are only
logged, not read as metrics as well, so ``fit``'s ``verbose`` may stay as it is.

When ``KERAS_BACKEND`` is unset and the backend Keras would load (TensorFlow by default, or the
one in ``~/.keras/keras.json``) is not installed, this module selects the PyTorch backend
before importing Keras; import ``keras``
from here (``from hypersearch.integrations.keras import ReportCallback, keras``) to be sure the
choice comes first.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Any


def _pick_backend() -> None:
    """KERAS_BACKEND=torch when Keras would otherwise load a backend that is not installed
    (its default, or the one in ``keras.json``, which Keras writes on first import)."""
    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND"):
        return
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    backend = "tensorflow"
    try:
        with open(os.path.join(home, "keras.json")) as f:
            backend = str(json.load(f).get("backend", backend))
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    try:  # Keras's backend names are module names: tensorflow, jax, torch, numpy, openvino
        if importlib.util.find_spec(backend) is not None:
            return
    except (ImportError, ValueError):
        pass
    if importlib.util.find_spec("torch") is not None:
        os.environ["KERAS_BACKEND"] = "torch"


_pick_backend()

import keras  # noqa: E402

from hypersearch.integrations._reporting import Reporter  # noqa: E402

__all__ = ["ReportCallback", "keras"]


class ReportCallback(keras.callbacks.Callback):
    """Reports every epoch's numeric logs at step ``epoch + 1``; sets
    ``model.stop_training = True`` when hypersearch answers STOP (or PAUSE).

    >>> model.fit(x, y, validation_split=0.2, epochs=30,
    ...           callbacks=[ReportCallback(trial, monitor="val_loss")])  # doctest: +SKIP

    `trial`: the trial the objective received, or None to report through
    `hypersearch.client` (the running objective's trial, or a shell command's channel).
    `monitor`: a metric that must be among the logs (ValueError naming those present if not).
    After ``fit``, `stopped` tells whether it was stopped and `stopped_epoch` at which epoch.
    """

    def __init__(self, trial: Any = None, monitor: str = "val_loss") -> None:
        super().__init__()
        self._reporter = Reporter(trial, monitor, "keras ReportCallback")
        self.monitor = monitor
        self.stopped_epoch: int | None = None

    @property
    def stopped(self) -> bool:
        return self.stopped_epoch is not None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.stopped_epoch = None
        self._reporter.start()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._reporter.report(epoch + 1, logs):
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True
