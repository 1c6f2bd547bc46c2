"""Fault-injection scenarios (ANCHORS.md R1-R17 and more): real processes, one invariant check."""
