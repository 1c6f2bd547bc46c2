"""A plain training script, as a researcher would write it: flags in, progress lines out.

It knows nothing of hypersearch. It trains scikit-learn's MLP on the bundled digits data one
epoch at a time and prints a Keras-style line per epoch, which hypersearch reads::

    python -m hypersearch.demo.train_digits --hidden 64 --lr 0.001 --alpha 1e-4 --epochs 20
    epoch 1/20 - loss: 1.8713 - val_loss: 1.2004 - val_acc: 0.7694
"""

from __future__ import annotations

import argparse
import sys
import warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=64, help="units in the hidden layer")
    parser.add_argument("--layers", type=int, default=1, help="number of hidden layers")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--activation", default="relu", choices=["relu", "tanh", "logistic"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.metrics import log_loss
        from sklearn.model_selection import train_test_split
        from sklearn.neural_network import MLPClassifier
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        print("the demo needs scikit-learn: pip install 'hypersearch[demo]'", file=sys.stderr)
        return 3

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden,) * args.layers,
        activation=args.activation,
        learning_rate_init=args.lr,
        alpha=args.alpha,
        batch_size=args.batch_size,
        random_state=args.seed,
    )
    classes = np.unique(y)
    rng = np.random.default_rng(args.seed)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train[order], y_train[order], classes=classes)
        val_proba = model.predict_proba(x_val)
        val_loss = log_loss(y_val, val_proba, labels=classes)
        val_acc = float((val_proba.argmax(axis=1) == y_val).mean())
        print(
            f"epoch {epoch}/{args.epochs} - loss: {model.loss_:.4f} - "
            f"val_loss: {val_loss:.4f} - val_acc: {val_acc:.4f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
