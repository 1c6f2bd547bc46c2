"""scikit-learn integration: ``from hypersearch.sklearn import SearchCV``.

Importing this module imports scikit-learn (``import hypersearch`` alone never does); the
implementation lives in `hypersearch.integrations.sklearn`.

Example::

    from hypersearch.sklearn import SearchCV

    search = SearchCV(SVC(), {"C": hs.loguniform(1e-3, 1e3)}, n_trials=30).fit(X, y)
"""

from __future__ import annotations

from hypersearch.integrations.sklearn import SearchCV, as_search_space

__all__ = ["SearchCV", "as_search_space"]
