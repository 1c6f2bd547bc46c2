"""Framework integrations. Each module imports its framework, so import the one you use:

- `hypersearch.integrations.keras`: ``ReportCallback`` for Keras 3 ``model.fit``;
- `hypersearch.integrations.lightning`: ``ReportCallback`` for a PyTorch Lightning ``Trainer``.

Both report every epoch's logged metrics and stop training when hypersearch says so, in a
Python objective and in a shell command alike (see "Decision channel" in `hypersearch.client`).

Entry points for code written for other tools (each has a public path of its own):

- `hypersearch.integrations.hyperopt` (``hypersearch.hyperopt``): hyperopt's API on hypersearch;
- `hypersearch.integrations.gradient` (``hypersearch.hyper_tune``): Paperspace Gradient's call;
- `hypersearch.integrations.sklearn` (``hypersearch.sklearn.SearchCV``): a scikit-learn search.

This package itself imports nothing heavy.
"""

from __future__ import annotations
