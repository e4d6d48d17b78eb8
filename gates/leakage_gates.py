"""Leakage and split gates: catch a model that saw the answer, or features it will not have."""

from __future__ import annotations

from gates.results import Family  # noqa: F401


def plan_before_training(ctx) -> list:
    """Gates on the split and the raw features, before any model is fitted."""
    return []


def plan_after_training(ctx) -> list:
    """Gates on the fitted pipeline and its metrics."""
    return []


def plan_after_export(ctx) -> list:
    """Gates on the exported model (training/serving skew)."""
    return []
