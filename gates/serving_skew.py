"""Training/serving skew: do raw rows, as serving sends them, get the predictions evaluation saw?

Serving sends the raw columns of the data contract straight to the exported model. Training saw
`ctx.frame`, which an after_ingest hook may have transformed (a feature step outside the model
pipeline). We take a sample of the test rows as they were read from the partitions
(`ctx.ingested`'s frames: pandas copy-on-write means a hook changing `ctx.frame` cannot change
them), predict with the exported joblib file, and compare with the evaluation's scores for the
same rows. Any difference beyond `atol` blocks, naming the features whose raw values differ from
what the model was evaluated on.
"""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd

from pydantic import Field

from gates.config import PipelineConfig
from gates.evaluation import predict_scores
from gates.export import Exported
from gates.ingest import Ingested
from gates.registry import Cause, Gate
from gates.results import Family, GateResult, judge
from gates.settings import GateSettings
from gates.split import Split


class ServingSkewGate(GateSettings):
    sample_rows: int = Field(1000, ge=10, le=1_000_000, description="Raw test rows sent through the export.")
    atol: float = Field(1e-6, ge=0, description="Largest prediction difference tolerated.")



def _pair_raw_rows(ingested: Ingested, frame: pd.DataFrame, split: Split, cfg: PipelineConfig,
                   sample: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, str]:
    """Raw rows for the sampled test rows, and the sample indices that were paired.

    Rows pair by position when the hooks kept the row order (checked on the timestamp and entity
    columns); otherwise by (entity id, timestamp) when the data has an entity id.
    """
    keys = [c for c in (cfg.data.entity_id, cfg.data.timestamp) if c]
    parts = [f for day in ingested.expected for f in ingested.frames.get(day, [])]
    starts = np.cumsum([0, *(len(f) for f in parts)])
    if starts[-1] == len(frame):
        raw_rows = _rows_at(parts, starts, split.test_positions[sample])
        evaluated = split.test.iloc[sample].reset_index(drop=True)
        if all(c in raw_rows and raw_rows[c].equals(evaluated[c]) for c in keys):
            return raw_rows, sample, "by position"
    if not cfg.data.entity_id:
        raise ValueError("an after_ingest hook changed the rows' order or count and data.entity_id "
                         "is not set: raw rows cannot be paired with the evaluated ones")
    raw = ingested.combined()
    wanted = split.test.iloc[sample][keys].assign(__k=sample)
    merged = wanted.merge(raw.drop_duplicates(keys, keep=False), on=keys, how="inner")
    return merged.drop(columns="__k"), merged["__k"].to_numpy(), f"by {' + '.join(keys)}"


def _rows_at(parts: list[pd.DataFrame], starts: np.ndarray, positions: np.ndarray) -> pd.DataFrame:
    """Rows of the partitions' concatenation at `positions`, without concatenating them all."""
    ordered = np.sort(positions)
    which = np.searchsorted(starts, ordered, side="right") - 1
    pieces = [parts[k].iloc[ordered[which == k] - starts[k]] for k in np.unique(which)]
    rows = pd.concat(pieces, ignore_index=True)  # in ascending position order
    rank = np.argsort(np.argsort(positions, kind="stable"), kind="stable")
    return rows.iloc[rank].reset_index(drop=True)


def _differs(raw: pd.Series, seen: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(raw) and pd.api.types.is_numeric_dtype(seen) \
            and not pd.api.types.is_bool_dtype(raw):
        a, b = raw.to_numpy(float), seen.to_numpy(float)
        return ~np.isclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True)
    return (raw.astype("str") != seen.astype("str")).to_numpy()


def _plain(value) -> str:
    value = value.item() if hasattr(value, "item") else value
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def check_serving_skew(exported: Exported | None, scores: np.ndarray | None, split: Split | None,
                       ingested: Ingested | None, frame: pd.DataFrame, cfg: PipelineConfig,
                       settings: ServingSkewGate) -> GateResult:
    """Raw test rows through the exported joblib model against the evaluation's `scores`;
    `frame` is what training saw (after the hooks), `ingested` the partitions as read."""
    features = cfg.data.features.all
    if exported is None or scores is None or split is None or ingested is None:
        raise ValueError("serving_skew needs the exported model, the evaluation scores, the split "
                         "and the ingested raw partitions")
    n_test = len(split.test)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n_test, size=min(settings.sample_rows, n_test), replace=False))
    raw_rows, paired, how = _pair_raw_rows(ingested, frame, split, cfg, sample)
    failures, warnings = [], []
    measured: dict[str, float | int] = {"sample_rows": len(sample), "paired_rows": len(paired)}
    if len(paired) < len(sample):
        warnings.append(f"{len(sample) - len(paired)} sampled test rows have no unique raw row")
    missing = [f for f in features if f not in raw_rows.columns]
    if missing:
        failures.append(f"features {missing} are not in the raw partitions: they are computed "
                        "outside the model pipeline, so serving requests will not carry them")
    else:
        seen = split.test.iloc[paired].reset_index(drop=True)
        changed = {f: _differs(raw_rows[f], seen[f]) for f in features}
        served = predict_scores(joblib.load(exported.joblib_path), raw_rows[features], cfg.task)
        diff = np.abs(served - np.asarray(scores)[paired])
        bad = ~(diff <= settings.atol)
        measured.update({"mismatched_rows": int(bad.sum()),
                         "max_abs_diff": float(np.nanmax(diff)) if len(diff) else 0.0,
                         "features_changed_outside_pipeline": sum(bool(c.any()) for c in changed.values())})
        lines = []
        for f, mask in changed.items():
            if mask.any():
                i = int(np.flatnonzero(mask)[0])
                lines.append(f"feature {f!r} differs between raw rows and the rows the model was "
                             f"trained and evaluated on in {mask.mean():.0%} of rows (e.g. raw "
                             f"{_plain(raw_rows[f].iloc[i])} vs evaluated {_plain(seen[f].iloc[i])}): "
                             "transformed outside the model pipeline")
        if bad.any():
            failures.append(f"{int(bad.sum())} of {len(paired)} raw test rows get different "
                            f"predictions from the exported model than in evaluation (max |diff| "
                            f"{np.nanmax(diff):.4g} > atol {settings.atol})")
            failures.extend(lines)
        else:
            warnings.extend(lines)
    return judge(
        "serving_skew", Family.LEAKAGE, failures=failures, warnings=warnings, measured=measured,
        threshold={"atol": settings.atol, "sample_rows": settings.sample_rows},
        hint=SERVING_SKEW.hint,
        ok_summary=f"{len(paired)} raw test rows (paired {how}) predict within {settings.atol} of evaluation",
    )


SERVING_SKEW = Gate(
    name="serving_skew", family=Family.LEAKAGE, stage="artifact", settings=ServingSkewGate,
    inputs=("exported", "scores", "split", "ingested", "frame", "cfg"), check=check_serving_skew,
    # Depth 4: it reads the exported files, so a damaged file (depth 3) explains its failure too.
    cause=Cause(bucket="pipeline", depth=4,
                meaning="what the model sees at serving differs from training (preprocessing outside the pipeline)",
                rules_out="training/serving skew from steps outside the model pipeline",
                next_check="Move every transformation of raw columns into the model pipeline."),
    hint="Move every transformation of the features into the model pipeline (model.pipeline "
    "or the built-in preprocessing), so serving applies exactly what training applied.",
    blocks_when="raw rows, as serving sends them, through the exported model do not give the "
    "evaluated predictions (a step done outside the pipeline)",
    faults=("preprocessing_skew",),
)
GATES = [SERVING_SKEW]
