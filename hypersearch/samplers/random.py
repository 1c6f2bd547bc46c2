from __future__ import annotations

from typing import Any

from hypersearch.samplers.base import Context, Sampler


class Random(Sampler):
    """Independent draws from each parameter's prior (weights, log scales, normals honoured)."""

    name = "random"

    def suggest(self, context: Context) -> dict[str, Any]:
        return context.space.sample(context.rng)
