"""Paperspace Gradient's ``hyper_tune``: ``from hypersearch.gradient import hyper_tune``
(hypersearch.integrations.gradient)."""

from __future__ import annotations

from hypersearch.integrations.gradient import ConfigError, hyper_tune

__all__ = ["ConfigError", "hyper_tune"]
