"""What one run knows so far; each stage fills in its part and the gates read it.

Gates never read the context itself: each declares the values it needs by name
(gates/registry.py `Gate.inputs`) and receives them from `values()`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gates.config import PipelineConfig
from gates.export import Exported
from gates.ingest import Ingested
from gates.split import Split
from gates.tracking import Champion


@dataclass
class RunContext:
    cfg: PipelineConfig
    run_date: dt.date
    run_id: str = ""
    ingested: Ingested | None = None
    frame: pd.DataFrame | None = None
    schema: dict[str, str] = field(default_factory=dict)  # column -> dtype as delivered
    reference: dict[str, Any] | None = None  # profile stored with the champion's run
    reference_error: str | None = None  # why the champion's profile could not be loaded
    profile: dict[str, Any] | None = None  # this run's profile (logged as profile/reference.json)
    split: Split | None = None
    model: Any = None
    baselines: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    scores: np.ndarray | None = None
    baseline_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    baseline_scores: dict[str, np.ndarray] = field(default_factory=dict)
    champion: Champion | None = None
    champion_model: Any = None
    champion_metrics: dict[str, float] | None = None
    champion_scores: np.ndarray | None = None
    champion_error: str | None = None
    # Paired bootstrap noise of the primary metric, candidate against "champion" and each baseline
    # on the same test rows (gates/metric_noise.py): what the comparison gates discount.
    metric_noise: dict[str, dict] = field(default_factory=dict)
    champion_verified: Any = None  # gates.model_integrity.Verified: its files against the recorded sha256
    champion_verify_error: str | None = None  # why the champion's files could not be checked
    workdir: Any = None  # a private folder of this run (the champion's verified copy), removed at the end
    evidence: Any = None  # gates.evidence_gates.ModelEvidence, once evaluated
    exported: Exported | None = None
    probes: Any = None  # the export's fresh-process loads, shared by the artifact gates
    warm_probe: Any = None  # gates.artifact_gates.WarmInterpreter, started before training
    # Set when the contract's per-partition validation was spread over Dask workers.
    contract_validations: Callable[[], list] | None = None
    promotion: Any = None  # gates.promotion.Promotion, once the promote step ran
    notes: list[str] = field(default_factory=list)  # stated rules applied, e.g. first run
    review: dict[str, Any] | None = None  # a person's decision on a reviewable block (gates/review.py)

    def values(self) -> dict[str, Any]:
        """What a gate may declare as an input: the run's values by name, and a few derived ones."""
        return {
            **{name: getattr(self, name) for name in self.__dataclass_fields__},
            "cadence": self.cfg.data.cadence,
            "test": self.split.test if self.split is not None else None,
            "champion_version": self.champion.version if self.champion is not None else None,
            "score_distribution": self.evidence.distribution if self.evidence is not None else None,
        }
