"""PyTorch Lightning callback: report each validation epoch to hypersearch, stop when told.

Example (a Python objective)::

    import hypersearch as hs
    import lightning.pytorch as pl
    from hypersearch.integrations.lightning import ReportCallback

    def objective(params, trial):
        callback = ReportCallback(trial, monitor="val_loss")
        trainer = pl.Trainer(max_epochs=30, callbacks=[callback], logger=False)
        trainer.fit(LitModel(params), train_loader, val_loader)
        if callback.stopped:
            raise hs.TrialPruned()
        return float(trainer.callback_metrics["val_loss"])

In a script run as a shell command pass ``ReportCallback(None)``: it prints the client's report
lines and reads the decision channel (see `hypersearch.client`), so a STOP ends ``fit`` after
that epoch and the script exits by itself. The step of each report is the number of epochs
done (``current_epoch + 1``). Works with ``lightning.pytorch`` and, where only that is
installed, ``pytorch_lightning``; with several processes (DDP) rank 0 reports and its decision
is broadcast to all.
"""

from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone package
    import pytorch_lightning as pl  # type: ignore[no-redef]

from hypersearch.integrations._reporting import Reporter

__all__ = ["ReportCallback"]


class ReportCallback(pl.Callback):
    """Reports ``trainer.callback_metrics`` after each validation of ``fit`` (not the sanity
    check) at step ``current_epoch + 1``; sets ``trainer.should_stop = True`` when hypersearch
    answers STOP (or PAUSE). It reports in ``on_validation_end``, as Lightning's EarlyStopping
    decides: after ``on_validation_epoch_end``, so what the module logs there is included.
    Without validation (no loader, or ``limit_val_batches=0``) it reports at the end of each
    training epoch (``monitor="train_loss"``, say).

    >>> pl.Trainer(max_epochs=30, callbacks=[ReportCallback(trial, monitor="val_loss")])  # doctest: +SKIP

    `trial`: the trial the objective received, or None to report through
    `hypersearch.client`. `monitor`: a metric that must be logged (``self.log("val_loss", ...)``;
    ValueError naming those present if not). After ``fit``, `stopped` and `stopped_epoch`.
    """

    def __init__(self, trial: Any = None, monitor: str = "val_loss") -> None:
        super().__init__()
        self._reporter = Reporter(trial, monitor, "lightning ReportCallback")
        self.monitor = monitor
        self.stopped_epoch: int | None = None

    @property
    def stopped(self) -> bool:
        return self.stopped_epoch is not None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.stopped_epoch = None
        if trainer.is_global_zero:
            self._reporter.start()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._report(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not sum(trainer.num_val_batches or []):  # no validation: report the training epoch
            self._report(trainer)

    def _report(self, trainer: Any) -> None:
        step = trainer.current_epoch + 1
        stop = False
        if trainer.is_global_zero:
            stop = self._reporter.report(step, trainer.callback_metrics)
        stop = bool(trainer.strategy.broadcast(stop))
        if stop:
            self.stopped_epoch = step
            trainer.should_stop = True
