"""The shape of Spell's `hyper` seed example, without Keras: flags in, Keras-style lines out.

Spell's example tuned a Keras CNN's `conv2_filter`, `dropout_3` and `dense_layer`. Here the same
flags drive scikit-learn's MLP on the bundled digits data, so it runs anywhere in seconds:
`conv2_filter` and `dense_layer` are the sizes of the two hidden layers, and `dropout_3` (an
MLP has no dropout) sets the strength of the L2 penalty, the regulariser it has.

    hypersearch grid --param conv2_filter=16,32,64 --param dropout_3=0.2,0.5 \\
        --param dense_layer=32,64,512 --metric val_acc --maximize \\
        -- python examples/spell_seed_example.py --conv2_filter :conv2_filter: \\
           --dropout_3 :dropout_3: --dense_layer :dense_layer:
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conv2_filter", type=int, required=True)
    parser.add_argument("--dropout_3", type=float, required=True)
    parser.add_argument("--dense_layer", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0)
    model = MLPClassifier(
        hidden_layer_sizes=(args.conv2_filter, args.dense_layer),
        alpha=args.dropout_3 * 1e-2,
        learning_rate_init=0.01,
        random_state=0,
    )
    classes = np.unique(y)
    for epoch in range(1, args.epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train, y_train, classes=classes)
        val_acc = model.score(x_val, y_val)
        print(f"Epoch {epoch}/{args.epochs}")
        print(
            f"1257/1257 [==============================] - 0s - loss: {model.loss_:.4f} - val_acc: {val_acc:.4f}"
        )


if __name__ == "__main__":
    main()
