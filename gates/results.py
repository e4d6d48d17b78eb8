"""The one place gate results are modelled.

A gate returns one typed `GateResult`; a stage's results are collected in a `GateReport`.
Promotion only reads the report's verdict: it never re-decides what a gate decided.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Family(StrEnum):
    DATA = "data"
    LEAKAGE = "leakage"
    MODEL = "model"
    ARTIFACT = "artifact"


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"


class Severity(StrEnum):
    BLOCK = "block"
    WARN = "warn"


Scalar = float | int | str | bool | None


class GateResult(BaseModel):
    """What one gate found: the verdict, the numbers behind it and what to do about it."""

    name: str
    family: Family
    status: Status
    severity: Severity = Severity.BLOCK
    summary: str = ""
    measured: dict[str, Scalar] = Field(default_factory=dict)
    threshold: dict[str, Scalar] = Field(default_factory=dict)
    evidence: list[str] = Field(default_factory=list)
    hint: str = ""
    seconds: float = 0.0
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        """An error always blocks (fail closed); a failure blocks unless its severity is warn."""
        return self.status is Status.ERROR or (
            self.status is Status.FAIL and self.severity is Severity.BLOCK
        )

    def numeric_measures(self) -> dict[str, float]:
        """Measured values that MLflow can log as metrics (finite or not, but numeric)."""
        out: dict[str, float] = {}
        for key, value in self.measured.items():
            if isinstance(value, bool):
                out[key] = float(value)
            elif isinstance(value, int | float):
                out[key] = float(value)
        return out


def judge(
    name: str,
    family: Family,
    *,
    failures: list[str],
    warnings: list[str] | None = None,
    measured: dict[str, Scalar] | None = None,
    threshold: dict[str, Scalar] | None = None,
    hint: str = "",
    ok_summary: str = "",
    details: dict[str, Any] | None = None,
) -> GateResult:
    """Build a result from the lists of failures and warnings a gate collected (lazily, all of them)."""
    warnings = warnings or []
    if failures:
        status, summary = Status.FAIL, "; ".join(failures[:3]) + (
            f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        )
    elif warnings:
        status, summary = Status.WARN, "; ".join(warnings[:3]) + (
            f" (+{len(warnings) - 3} more)" if len(warnings) > 3 else ""
        )
    else:
        status, summary = Status.PASS, ok_summary or "ok"
    return GateResult(
        name=name,
        family=family,
        status=status,
        summary=summary,
        measured=measured or {},
        threshold=threshold or {},
        evidence=failures + warnings,
        hint=hint if (failures or warnings) else "",
        details=details or {},
    )


def run_gate(
    name: str,
    family: Family,
    check: Callable[..., GateResult],
    *args: Any,
    severity: Severity = Severity.BLOCK,
    **kwargs: Any,
) -> GateResult:
    """Run one gate, failing closed: an exception becomes an `error` result, which blocks.

    The configured severity is applied here, so a gate only says what it found: a `fail` with
    severity `warn` is reported as `warn`.
    """
    started = time.perf_counter()
    try:
        result = check(*args, **kwargs)
        if not isinstance(result, GateResult):
            raise TypeError(f"gate {name!r} returned {type(result).__name__}, not GateResult")
    except Exception as exc:  # noqa: BLE001 - a gate that crashes must block, never pass
        result = GateResult(
            name=name,
            family=family,
            status=Status.ERROR,
            summary=f"gate crashed: {type(exc).__name__}: {exc}",
            evidence=traceback.format_exception_only(exc)[-1:],
            hint="A gate that cannot run blocks the run (fail closed). Fix the cause and rerun.",
        )
    result.severity = severity
    if result.status is Status.FAIL and severity is Severity.WARN:
        result.status = Status.WARN
        result.details["downgraded"] = True  # failed, but configured not to block
    result.seconds = round(time.perf_counter() - started, 4)
    return result


def finite(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


class GateReport(BaseModel):
    """Every gate result of one run, in the order the stages ran them."""

    results: list[GateResult] = Field(default_factory=list)

    def extend(self, results: list[GateResult]) -> None:
        self.results.extend(results)

    @property
    def blocking(self) -> list[GateResult]:
        return [r for r in self.results if r.blocks]

    @property
    def warnings(self) -> list[GateResult]:
        return [r for r in self.results if r.status is Status.WARN]

    @property
    def blocked(self) -> bool:
        return bool(self.blocking)

    @property
    def verdict(self) -> str:
        return "blocked" if self.blocked else "passed"

    def by_name(self, name: str) -> GateResult | None:
        return next((r for r in self.results if r.name == name), None)


class GateSpec:
    """A gate ready to run: its name, family, severity and a zero-argument check."""

    def __init__(self, name: str, family: Family, severity: Severity,
                 check: Callable[[], GateResult]) -> None:
        self.name, self.family, self.severity, self.check = name, family, severity, check

    def run(self) -> GateResult:
        return run_gate(self.name, self.family, self.check, severity=self.severity)
