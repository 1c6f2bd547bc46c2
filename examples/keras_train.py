"""A tiny Keras 3 model whose `fit` reports to hypersearch and stops cleanly when told.

By hand (reports are printed; nothing stops it)::

    KERAS_BACKEND=torch python examples/keras_train.py --lr 0.05 --epochs 5

As the trials of a search (``ReportCallback(None)`` prints the client's lines and reads the
decision file; a STOP ends `fit` after that epoch and the script exits 0 by itself)::

    hypersearch random -n 12 --param lr=1e-3:3e-1:log --metric val_loss \\
        --scheduler median --scheduler-opt n_startup_trials=3 \\
        -- python examples/keras_train.py --lr :lr: --epochs 20

Needs ``pip install 'hypersearch[keras]'``; with TensorFlow absent the PyTorch backend is
chosen when ``KERAS_BACKEND`` is unset.
"""

from __future__ import annotations

import argparse

import numpy as np

# keras from here: the module picks the backend before Keras is imported
from hypersearch.integrations.keras import ReportCallback, keras


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(128, 3)).astype("float32")
    y = (x @ np.array([[1.5], [-2.0], [0.5]]) + 0.3).astype("float32")
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(args.lr), loss="mse")
    callback = ReportCallback(None, monitor="val_loss")
    model.fit(
        x, y, validation_split=0.25, epochs=args.epochs, batch_size=16, verbose=0,
        callbacks=[callback],
    )  # fmt: skip
    if callback.stopped:
        print(f"stopped cleanly at epoch {callback.stopped_epoch}", flush=True)


if __name__ == "__main__":
    main()
