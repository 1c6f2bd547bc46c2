"""Quickstart: tune a small numpy model with a conditional search space, in parallel, on SQLite.

Run it twice: the second run resumes the stored study and stops at once (its budget is spent).
Raise MAX_TRIALS and run again to extend it.

    python examples/quickstart.py
"""

from __future__ import annotations

from typing import Any

import numpy as np

import hypersearch as hs

MAX_TRIALS = 60

SPACE = {
    "features": hs.choice(
        [
            {"kind": "polynomial", "degree": hs.integer(1, 12)},
            {"kind": "fourier", "frequencies": hs.integer(1, 20), "scale": hs.loguniform(0.1, 10)},
        ]
    ),
    "alpha": hs.loguniform(1e-8, 1e2),  # ridge penalty
}


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, size=300)
    y = np.sin(1.7 * x) + 0.3 * x**2 + rng.normal(0, 0.2, size=x.size)
    return x, y


def featurize(x: np.ndarray, features: dict[str, Any]) -> np.ndarray:
    if features["kind"] == "polynomial":
        return np.vander(x / 3, features["degree"] + 1, increasing=True)
    k = np.arange(1, features["frequencies"] + 1)
    angles = np.outer(x / features["scale"], k)
    return np.hstack([np.ones((x.size, 1)), np.sin(angles), np.cos(angles)])


def objective(params: dict[str, Any], trial: hs.Trial) -> float:
    """5-fold cross-validated mean squared error of ridge regression."""
    x, y = make_data()
    folds = np.array_split(np.random.default_rng(1).permutation(x.size), 5)
    errors = []
    for i, test in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != i])
        a = featurize(x[train], params["features"])
        w = np.linalg.solve(a.T @ a + params["alpha"] * np.eye(a.shape[1]), a.T @ y[train])
        errors.append(float(np.mean((featurize(x[test], params["features"]) @ w - y[test]) ** 2)))
        trial.report(i, fold_mse=errors[-1])  # per-fold curve, stored with the trial
    return float(np.mean(errors))


def main() -> None:
    study = hs.minimize(
        objective,
        SPACE,
        strategy="random",
        max_trials=MAX_TRIALS,
        n_jobs=2,
        storage="sqlite:///hypersearch.db",
        name="quickstart",
        seed=0,
    )
    done = study.get_trials(["COMPLETE"])
    print(f"\nstudy {study.name!r}: {len(done)} completed trials in {study.storage.url}")
    print(f"best cross-validated MSE: {study.best_value:.4f} (trial {study.best_trial.number})")
    print(f"best parameters: {study.best_params}")
    print(
        "\nLook at every trial with:\n"
        '  python -c "import hypersearch as hs; '
        "s = hs.load_study('quickstart', 'sqlite:///hypersearch.db'); "
        '[print(r) for r in s.to_records()]"'
    )


if __name__ == "__main__":
    main()
