"""A task whose best learning rate changes over training: the one Population Based Training is
for. A fixed learning rate can be right early or late, never both; PBT can follow the schedule.

`skill` grows each epoch by ``gain(lr, epoch)``, largest when log10(lr) is on the schedule
``-1 - 2 * epoch / epochs`` (0.1 at the start down to 0.001 at the end); the loss is
``1 / (1 + skill)``. The objective saves ``{"skill", "epoch"}`` to its checkpoint folder before
each report, and starts from ``trial.restore_from`` when it is set.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

EPOCHS = 24
EPOCH_SECONDS = 0.08  # an epoch takes time: the population trains side by side


def best_log_lr(epoch: int, epochs: int = EPOCHS) -> float:
    return -1.0 - 2.0 * epoch / epochs


def gain(lr: float, epoch: int, epochs: int = EPOCHS) -> float:
    return max(1.0 - 0.5 * (math.log10(lr) - best_log_lr(epoch, epochs)) ** 2, -0.5)


def loss_of(skill: float) -> float:
    return 1.0 / (1.0 + max(skill, 0.0))


def load(folder: str | None) -> tuple[float, int]:
    if not folder:
        return 0.0, 0
    with open(os.path.join(folder, "state.json")) as f:
        state = json.load(f)
    return float(state["skill"]), int(state["epoch"])


def save(folder: str, skill: float, epoch: int) -> None:
    temporary = os.path.join(folder, "state.json.tmp")
    with open(temporary, "w") as f:
        json.dump({"skill": skill, "epoch": epoch}, f)
    os.replace(temporary, os.path.join(folder, "state.json"))


def objective(params: dict[str, Any], trial: Any) -> float:
    skill, epoch = load(trial.restore_from)
    trial.set_user_attr("started_at_epoch", epoch)
    while epoch < EPOCHS:
        skill += gain(params["lr"], epoch)
        epoch += 1
        save(trial.checkpoint_dir, skill, epoch)
        if trial.report(epoch, loss=loss_of(skill)).value != "CONTINUE":
            break
        time.sleep(EPOCH_SECONDS)
    return loss_of(skill)


def main() -> None:
    """The same training as a command: ``python pbt_problem.py LR CHECKPOINT_DIR [RESTORE]``."""
    lr, checkpoint_dir = float(sys.argv[1]), sys.argv[2]
    restore = sys.argv[3] if len(sys.argv) > 3 else None
    skill, epoch = load(restore)
    print(f"started at epoch {epoch}", flush=True)
    while epoch < EPOCHS:
        skill += gain(lr, epoch)
        epoch += 1
        save(checkpoint_dir, skill, epoch)
        print(json.dumps({"step": epoch, "loss": loss_of(skill)}), flush=True)
        time.sleep(EPOCH_SECONDS)


if __name__ == "__main__":
    main()
