"""Fault injection: break a copy of a pipeline's data or config the way production breaks.

Each fault names the gate that must block it. The scenarios command and the tests run the real
flow on the broken copy, so a user can run the whole catalogue against their own config and data.

A fault is a function `(target: FaultTarget) -> None` registered with `@fault(...)`; it may
rewrite partition files under `target.data_path` and/or edit the raw config dict
`target.config` (for example to install a hook 'gates.faults:some_hook' or a pipeline factory).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.pipeline import Pipeline

from gates.ingest import discover, expected_partitions, read_file
from gates.config import Cadence, DataFormat


@dataclass
class FaultTarget:
    """A private copy of the data plus the raw config dict that a fault may change."""

    data_path: Path
    config: dict[str, Any]
    run_date: dt.date
    seed: int = 0
    sizes: list[str] = field(default_factory=list)  # what a sized fault reached (gates.fault_sizes)
    columns: list[str] = field(default_factory=list)  # the configured columns a fault picked to break

    @property
    def fmt(self) -> DataFormat:
        return DataFormat(self.config["data"].get("format", "parquet"))

    def window(self) -> list[dt.date]:
        data = self.config["data"]
        return expected_partitions(self.run_date, int(data.get("window_days", 60)),
                                   Cadence(data.get("cadence", "daily")))

    def files(self, day: dt.date) -> list[Path]:
        key = self.config["data"].get("partition_key", "date")
        cadence = Cadence(self.config["data"].get("cadence", "daily"))
        return discover(self.data_path, key, self.fmt, cadence=cadence).get(day, [])

    def read(self, path: Path) -> pd.DataFrame:
        return read_file(path, self.fmt)

    def write(self, frame: pd.DataFrame, path: Path) -> None:
        from gates.demo_data import write_frame

        write_frame(frame, path, self.fmt.value)

    def rewrite(self, fn: Callable[[pd.DataFrame], pd.DataFrame], days: list[dt.date] | None = None) -> None:
        """Apply `fn` to every file of the given days (default: the whole window)."""
        for day in days if days is not None else self.window():
            for path in self.files(day):
                self.write(fn(self.read(path)), path)

    def sample(self) -> pd.DataFrame:
        """The newest partition's first file: what the column pickers look at."""
        for day in reversed(self.window()):
            for path in self.files(day):
                return self.read(path)
        raise FileNotFoundError(f"no partition files under {self.data_path}")

    def column(self, kind: str, dtype: str | None = None, index: int = 0) -> str:
        """A configured feature of `kind` (numeric|categorical), optionally of a data kind
        (integer, bool, string): faults take their columns from the config, not the demo."""
        frame = self.sample()
        features = self.config["data"]["features"]
        names = [c for c in features.get(kind, []) if c in frame]
        if dtype is not None:
            test = {"integer": pd.api.types.is_integer_dtype, "bool": pd.api.types.is_bool_dtype,
                    "string": lambda s: pd.api.types.is_string_dtype(s) or s.dtype == object,
                    "float": pd.api.types.is_float_dtype}[dtype]
            names = [c for c in names if test(frame[c])]
        if not names:
            raise ValueError(f"this fault needs a {dtype or ''} {kind} feature in data.features.{kind}")
        name = names[min(index, len(names) - 1)]
        if name not in self.columns:
            self.columns.append(name)
        return name

    def add_hook(self, stage: str, path: str) -> None:
        self.config.setdefault("hooks", {}).setdefault(stage, []).append(path)


@dataclass
class Fault:
    name: str
    description: str
    apply: Callable[[FaultTarget], None]
    tags: list[str] = field(default_factory=list)
    declared_gate: str | None = None  # legacy wiring; the registry's answer must agree (tests)
    # Why the fault cannot be planted in this pipeline (its raw config), or None: a stated
    # "not applicable", never a silent pass (a slice fault needs configured slices).
    requires: Callable[[dict[str, Any]], str | None] | None = None

    def not_applicable(self, config: dict[str, Any]) -> str | None:
        return self.requires(config) if self.requires else None

    @property
    def expected_gate(self) -> str:
        """The gate that must block this fault: the one whose declaration lists it."""
        from gates.registry import gate_of_fault

        return gate_of_fault(self.name)


FAULTS: dict[str, Fault] = {}


def fault(name: str, description: str, tags: list[str] | None = None,
          expected_gate: str | None = None,
          requires: Callable[[dict[str, Any]], str | None] | None = None) -> Callable:
    """Register a fault under `name`; the gate that must block it lists it in its declaration.

    Tag `needs_champion` when the gate judges against the champion: the scenario runner then
    promotes a clean run first.
    """

    def register(fn: Callable[[FaultTarget], None]) -> Callable[[FaultTarget], None]:
        FAULTS[name] = Fault(name, description, fn, list(tags or []), expected_gate, requires)
        return fn

    return register


# --------------------------------------------------------------------------- data faults
# Each breaks a copy of the partitions the way upstream jobs break them. The recent days are
# hit (a deploy upstream changed something), so the partition, column or file can be named.


def _recent(target: FaultTarget, n: int) -> list[dt.date]:
    return target.window()[-n:]


@fault("missing_partition",
       description="An upstream job skipped a day: one partition in the middle of the window is absent.")
def missing_partition(target: FaultTarget) -> None:
    import shutil

    day = target.window()[len(target.window()) // 2]
    for path in target.files(day):
        shutil.rmtree(path.parent, ignore_errors=True)


@fault("empty_partition",
       description="An extract ran against an empty source table: a partition with a schema but no rows.")
def empty_partition(target: FaultTarget) -> None:
    target.rewrite(lambda f: f.iloc[0:0], [_recent(target, 4)[0]])


@fault("stale_data",
       description="The upstream job stopped three days ago: the newest three partitions never arrived.")
def stale_data(target: FaultTarget) -> None:
    import shutil

    for day in _recent(target, 3):
        for path in target.files(day):
            shutil.rmtree(path.parent, ignore_errors=True)


@fault("duplicated_partition",
       description="A retried upstream job wrote a partition twice: a second file with the same rows.")
def duplicated_partition(target: FaultTarget) -> None:
    import shutil

    day = _recent(target, 5)[0]
    first = target.files(day)[0]
    shutil.copyfile(first, first.with_name(f"part-1{first.suffix}"))


# A retried micro-batch repeats a batch, not a share: at least this many rows (more than the
# duplicates gate's default min_count, so a small partition's batch is still a delivery problem).
RETRIED_BATCH_ROWS = 10


@fault("duplicated_rows",
       description="A retried micro-batch: 5% of one partition's rows (at least 10) are delivered "
       "twice inside its single file (the row count barely moves; no file or partition is copied whole).")
def duplicated_rows(target: FaultTarget) -> None:
    day = target.window()[len(target.window()) // 3]

    def repeat(f: pd.DataFrame) -> pd.DataFrame:
        n = min(len(f), max(RETRIED_BATCH_ROWS, round(0.05 * len(f))))
        again = f.sample(n=n, random_state=target.seed)
        return pd.concat([f, again], ignore_index=True).sort_index(kind="stable")

    target.rewrite(repeat, [day])


@fault("short_partition",
       description="A partial load: one day holds a fifth of its usual rows.")
def short_partition(target: FaultTarget) -> None:
    target.rewrite(lambda f: f.iloc[: max(1, len(f) // 5)], [_recent(target, 6)[0]])


@fault("unreadable_file",
       description="A writer crashed mid-file: a truncated parquet (or CSV) file that cannot be read.")
def unreadable_file(target: FaultTarget) -> None:
    path = target.files(_recent(target, 2)[0])[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@fault("renamed_column",
       description="Upstream renamed a numeric column in its last release (monthly_charges -> "
       "monthly_charge in the demo; the first float feature of the config).")
def renamed_column(target: FaultTarget) -> None:
    column = target.column("numeric", "float")
    target.rewrite(lambda f: f.rename(columns={column: column.rstrip("s") + "_renamed"}), _recent(target, 4))


@fault("dropped_column",
       description="Upstream stopped exporting a numeric column (the config's last numeric feature).")
def dropped_column(target: FaultTarget) -> None:
    column = target.column("numeric", index=10_000)
    target.rewrite(lambda f: f.drop(columns=[column]), _recent(target, 4))


@fault("dtype_change",
       description="An integer column arrives as float64 (an upstream cast): tenure_months in the demo.")
def dtype_change(target: FaultTarget) -> None:
    column = target.column("numeric", "integer")
    target.rewrite(lambda f: f.assign(**{column: f[column].astype("float64")}), _recent(target, 4))


@fault("null_burst",
       description="A broken join upstream: 40% of a numeric column are null for three days.")
def null_burst(target: FaultTarget) -> None:
    import numpy as np

    column = target.column("numeric", "float")

    def burst(f: pd.DataFrame) -> pd.DataFrame:
        f = f.copy()
        f.loc[np.random.default_rng(target.seed).random(len(f)) < 0.4, column] = np.nan
        return f

    target.rewrite(burst, _recent(target, 3))


@fault("out_of_range",
       description="A currency column arrives in cents instead of units for two days (x100).")
def out_of_range(target: FaultTarget) -> None:
    column = target.column("numeric", "float")
    target.rewrite(lambda f: f.assign(**{column: f[column] * 100}), _recent(target, 2))


@fault("new_category",
       description="A new upstream version title-cases one categorical column ('north' -> 'North') "
       "and renames a value of another ('basic' -> 'Basic plan').")
def new_category(target: FaultTarget) -> None:
    first, second = target.column("categorical", "string"), target.column("categorical", "string", 1)

    def recase(f: pd.DataFrame) -> pd.DataFrame:
        out = f.assign(**{first: f[first].str.title()})
        if second != first:
            common = f[second].mode().iloc[0]
            out[second] = f[second].replace({common: f"{str(common).title()} plan"})
        return out

    target.rewrite(recase, _recent(target, 3))


@fault("bool_as_string",
       description="A boolean column arrives as the strings 'True'/'False' instead of booleans.")
def bool_as_string(target: FaultTarget) -> None:
    column = target.column("categorical", "bool")
    target.rewrite(lambda f: f.assign(**{column: f[column].map({True: "True", False: "False"})
                                      .astype("str")}), _recent(target, 3))


@fault("covariate_drift", tags=["needs_champion"],
       description="A product change pushes a numeric feature into the upper half of its own range "
       "for the newest days: every value stays one the contract allows, but the distribution is "
       "not the champion's (sized against the feature's natural weekly PSI).")
def covariate_drift(target: FaultTarget) -> None:
    from gates.fault_sizes import covariate_shift

    target.sizes.append(covariate_shift(target).describe())


@fault("label_shift", tags=["needs_champion"],
       description="The labelling job's definition changed: negatives in the newest days are now "
       "labelled positive (sized against the seasonal range of the weekly positive rate).")
def label_shift(target: FaultTarget) -> None:
    from gates.fault_sizes import label_rate_shift

    target.sizes.append(label_rate_shift(target).describe())


@fault("label_noise", tags=["needs_champion"],
       description="A labelling job's join attaches the wrong outcome to 30% of the newest test "
       "period's rows (labels flipped both ways): the base rate barely moves over the window, but "
       "the model gates would call it a regression.")
def label_noise(target: FaultTarget) -> None:
    import numpy as np

    label = target.config["data"]["target"]
    days = _recent(target, int(target.config.get("split", {}).get("test_days", 7)))

    def flip(f: pd.DataFrame) -> pd.DataFrame:
        values = f[label].to_numpy()
        positive, negative = values.max(), values.min()
        turn = np.random.default_rng(target.seed + 3).random(len(f)) < 0.3
        flipped = np.where(values == positive, negative, positive)
        return f.assign(**{label: np.where(turn, flipped, values).astype(values.dtype)})

    target.rewrite(flip, days)


# --------------------------------------------------------------------------- model and artifact faults
# Model faults change the candidate (hyperparameters, a pipeline factory); artifact faults use
# export hooks to damage what was written. Every class and function here is importable, so the
# exported pickles load in a fresh process like a user's own code would.


def _set_params(target: FaultTarget, **params: Any) -> None:
    model = target.config.setdefault("model", {})
    model["params"] = {**model.get("params", {}), **params}


@fault("regressed_hyperparameters", tags=["needs_champion"],
       description="A debugging setting left in the config (fewer iterations, fewer smaller trees, "
       "coarse histograms): the candidate is worse than the champion on the same new rows; sized "
       "against the champion gate's bar (max_regression + the paired-bootstrap noise of the run's "
       "test rows), with the registered champion's scores.")
def regressed_hyperparameters(target: FaultTarget) -> None:
    from gates.fault_sizes import regressed_params

    params, size = regressed_params(target)
    _set_params(target, **params)
    target.sizes.append(size.describe())


@fault("below_baseline",
       description="A smoke-test config shipped (max_iter=2, learning_rate=1.0; where that still "
       "beats the baseline on the data at hand, fewer or smaller trees, at last one stump on 2-bin histograms): the candidate is no better "
       "than the simple logistic-regression baseline (it still predicts both classes); sized "
       "against the paired-bootstrap noise of the comparison on the run's test rows.")
def below_baseline(target: FaultTarget) -> None:
    # max_iter=3 alone predicts no positive at all, which `predictions` blocks first (see
    # class_never_predicted); max_iter=2, learning_rate=1.0 alone beat the baseline on 2026-12-02.
    from gates.fault_sizes import below_baseline_params

    params, size = below_baseline_params(target)
    _set_params(target, **params)
    target.sizes.append(size.describe())


@fault("constant_predictions",
       description="min_samples_leaf typed as 100000 (more than the training rows): no tree can "
       "split, and the model predicts the prior for everyone.")
def constant_predictions(target: FaultTarget) -> None:
    _set_params(target, min_samples_leaf=100_000)


class ExposureNormalisedClassifier(ClassifierMixin, BaseEstimator):
    """A hand-written wrapper that turns the probability into a per-exposure rate and back,
    without guarding zero exposure: 0/0 gives NaN for every row whose exposure is 0. The exposure
    is the named column or, by default, the numeric input with the most zeros (support_calls in
    the demo)."""

    def __init__(self, base: Any = None, exposure: str | None = None) -> None:
        self.base = base
        self.exposure = exposure

    def fit(self, X: pd.DataFrame, y: Any) -> ExposureNormalisedClassifier:
        from sklearn.base import clone

        numeric = X.select_dtypes("number")
        self.exposure_ = self.exposure or str((numeric == 0).mean().idxmax())
        self.base_ = clone(self.base).fit(X, y)
        self.classes_ = self.base_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> Any:
        import numpy as np

        p = self.base_.predict_proba(X)[:, 1]
        calls = X[self.exposure_].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = (p / calls) * calls
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> Any:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def nan_metric_pipeline(cfg: Any) -> Any:
    """model.pipeline factory for the nan_metric fault."""
    from sklearn.pipeline import Pipeline

    from gates.training import preprocessor, make_estimator

    inner = Pipeline([("preprocess", preprocessor(cfg)), ("model", make_estimator(cfg.model))])
    return Pipeline([("exposure_normalised", ExposureNormalisedClassifier(inner))])


@fault("nan_metric",
       description="A custom estimator divides by a count feature (the numeric input with the most "
       "zeros: support_calls in the demo) without guarding zero: NaN "
       "probabilities, so every metric is NaN.")
def nan_metric(target: FaultTarget) -> None:
    target.config.setdefault("model", {})["pipeline"] = "gates.faults:nan_metric_pipeline"


class BlankSlice(BaseEstimator):
    """A regional enrichment whose lookup table lost one value of a slice column: that slice's
    numeric features become NaN. The value lost is the smallest one holding at least 10 % of the
    rows (region='west' in the demo), chosen at fit time from the data."""

    def __init__(self, column: str = "") -> None:
        self.column = column

    def fit(self, X: pd.DataFrame, y: Any = None) -> BlankSlice:
        shares = X[self.column].value_counts(normalize=True)
        big = shares[shares >= 0.1]
        self.value_ = (big if len(big) else shares).index[-1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        X = X.copy()
        rows = (X[self.column] == self.value_).to_numpy()
        X.loc[rows, X.select_dtypes("number").columns] = float("nan")
        return X


def slice_collapse_pipeline(cfg: Any) -> Any:
    """model.pipeline factory for the slice_collapse fault."""
    from sklearn.pipeline import Pipeline

    from gates.training import preprocessor, make_estimator

    column = (cfg.data.slices or cfg.data.features.categorical)[0]
    return Pipeline([("regional_enrichment", BlankSlice(column)),
                     ("preprocess", preprocessor(cfg)), ("model", make_estimator(cfg.model))])


def _needs_slices(config: dict[str, Any]) -> str | None:
    return None if config.get("data", {}).get("slices") else (
        "the pipeline configures no data.slices, so the slices gate has nothing to judge "
        "(weak_segments searches segments without them: see the weak_segment fault)")


@fault("slice_collapse", tags=["needs_champion"], requires=_needs_slices,
       description="A feature step loses one slice value's numeric features (the first slice column, "
       "its smallest value with >= 10% of rows: region='west' in the demo): the "
       "model is blind on that slice while the overall metric moves less.")
def slice_collapse(target: FaultTarget) -> None:
    target.config.setdefault("model", {})["pipeline"] = "gates.faults:slice_collapse_pipeline"


def empty_mlflow_model_file(ctx: Any) -> None:
    """after_export hook: a sync job leaves the MLflow model's pickle empty (0 bytes)."""
    next(ctx.exported.mlflow_model_dir.glob("model.*")).write_bytes(b"")


@fault("empty_artifact",
       description="After export, the MLflow model file is emptied (an interrupted copy).")
def empty_artifact(target: FaultTarget) -> None:
    target.add_hook("after_export", "gates.faults:empty_mlflow_model_file")


def corrupt_mlflow_model_file(ctx: Any) -> None:
    """after_export hook: bit rot in the MLflow model's pickle (same size, 64 bytes overwritten
    in the middle), the file that would be registered and served."""
    path = next(ctx.exported.mlflow_model_dir.glob("model.*"))
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


@fault("corrupted_artifact",
       description="After export, 64 bytes in the middle of the MLflow model pickle are flipped "
       "(bit rot or a bad copy): same size, different checksum, and it no longer unpickles.")
def corrupted_artifact(target: FaultTarget) -> None:
    target.add_hook("after_export", "gates.faults:corrupt_mlflow_model_file")


def overwrite_champion_model(ctx: Any) -> None:
    """after_ingest hook: someone with write access to the artifact store replaces the champion's
    model file (here with a harmless pickle of another object)."""
    import pickle

    import mlflow

    stored = Path(mlflow.artifacts.download_artifacts(ctx.champion.model_uri))  # the stored files
    target = next(p for p in stored.glob("model.*") if p.suffix in (".pkl", ".skops", ".joblib"))
    target.write_bytes(pickle.dumps({"not": "the promoted model"}))


@fault("tampered_champion", tags=["needs_champion"],
       description="The champion's model file in the artifact store is replaced after promotion: "
       "its sha256 no longer matches the one recorded with the version; it must never be loaded.")
def tampered_champion(target: FaultTarget) -> None:
    target.add_hook("after_ingest", "gates.faults:overwrite_champion_model")


OLD_SKLEARN_VERSION = "1.5.2"
_REAL_SKLEARN_VERSION: dict[str, str] = {}


def pickle_as_old_sklearn(ctx: Any) -> None:
    """before_export hook: scikit-learn records OLD_SKLEARN_VERSION in every pickled estimator
    (its own `_sklearn_version` field, written by BaseEstimator.__getstate__), as if the model
    had been trained in an older environment."""
    import sklearn.base

    _REAL_SKLEARN_VERSION.setdefault("version", sklearn.base.__version__)
    sklearn.base.__version__ = OLD_SKLEARN_VERSION


def restore_sklearn_version(ctx: Any) -> None:
    """after_export hook: undo pickle_as_old_sklearn."""
    import sklearn.base

    sklearn.base.__version__ = _REAL_SKLEARN_VERSION.pop("version", sklearn.base.__version__)


@fault("library_version_mismatch",
       description=f"The model is pickled with scikit-learn {OLD_SKLEARN_VERSION} recorded in its "
       "version field; the runtime's scikit-learn warns (InconsistentVersionWarning) on load.")
def library_version_mismatch(target: FaultTarget) -> None:
    target.add_hook("before_export", "gates.faults:pickle_as_old_sklearn")
    target.add_hook("after_export", "gates.faults:restore_sklearn_version")



# --------------------------------------------------------------------------- leakage faults
# Leakage faults let the model see the answer, or features that serving will not have. A new
# column goes into the data *and* into a private copy of the contract suite, as a team adding a
# column would do, so the leakage gate the fault exists for is the one that objects.


def _add_to_contract(target: FaultTarget, columns: list[str]) -> None:
    """Copy the suite next to the private data with `columns` added to the table's column set."""
    import json

    source = Path(target.config["expectations"])
    suite = json.loads(source.read_text())
    for expectation in suite.get("expectations", []):
        if expectation.get("type") == "expect_table_columns_to_match_set":
            kwargs = expectation["kwargs"]
            kwargs["column_set"] = [*kwargs["column_set"], *columns]
    out = target.data_path.parent / f"{source.stem}-with-{'-'.join(columns)}.json"
    out.write_text(json.dumps(suite, indent=2))
    target.config["expectations"] = str(out)


def _add_numeric_feature(target: FaultTarget, name: str, make: Callable[[pd.DataFrame, Any], pd.DataFrame],
                         served: bool = True, extra_columns: tuple[str, ...] = ()) -> None:
    """Add a column computed by `make(frame, rng)` to every partition, the contract and the features."""
    import numpy as np

    rng = np.random.default_rng(target.seed)
    target.rewrite(lambda frame: make(frame, rng))
    _add_to_contract(target, [name, *extra_columns])
    data = target.config["data"]
    features = data.setdefault("features", {})
    before = [*features.get("numeric", []), *features.get("categorical", [])]
    if data.get("serving_features") is None:
        data["serving_features"] = before
    features["numeric"] = [*features.get("numeric", []), name]
    if served:
        data["serving_features"] = [*data["serving_features"], name]


def scaler_fitted_before_split(cfg: Any) -> Any:
    """model.pipeline factory for the scaler_before_split fault: a notebook's StandardScaler,
    fitted on every row at hand (the newest window_days partitions, test period included) before
    the split, then frozen into the pipeline so fitting on the training split does not refit it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from gates.training import make_estimator, preprocessor

    data = cfg.data
    found = discover(Path(data.path), data.partition_key, data.format)
    days = sorted(found)[-data.window_days:]
    every_row = pd.concat([read_file(p, data.format) for d in days for p in found[d]], ignore_index=True)
    scaler = StandardScaler().fit(every_row[data.features.numeric])
    prescale = ColumnTransformer([("scaled_on_all_rows", FrozenEstimator(scaler), data.features.numeric)],
                                 remainder="passthrough", verbose_feature_names_out=False)
    return Pipeline([("prescale", prescale.set_output(transform="pandas")),
                     ("preprocess", preprocessor(cfg)), ("model", make_estimator(cfg.model))])


@fault("scaler_before_split",
       description="A StandardScaler is fitted on the whole window (test period included) before "
       "the split and frozen into the pipeline: the model is tested with statistics of its test rows.")
def scaler_before_split(target: FaultTarget) -> None:
    target.config.setdefault("model", {})["pipeline"] = "gates.faults:scaler_fitted_before_split"


@fault("shuffled_split",
       description="split.strategy set to random: training rows come from the test period, so the "
       "model is tested on a past it has already seen.")
def shuffled_split(target: FaultTarget) -> None:
    target.config.setdefault("split", {})["strategy"] = "random"


@fault("train_test_overlap",
       description="A backfill re-delivers 5% of the test period's events into the training days' "
       "partitions, re-stamped with the load day: the model trains on rows it is tested on.")
def train_test_overlap(target: FaultTarget) -> None:
    split = target.config.get("split", {})
    held = int(split.get("test_days", 7)) + int(split.get("gap_days", 0))
    window = target.window()
    test_days, train_days = window[-int(split.get("test_days", 7)):], window[:-held]
    ts = target.config["data"]["timestamp"]
    copied = pd.concat([target.read(p) for d in test_days for p in target.files(d)], ignore_index=True)
    copied = copied.sample(frac=0.05, random_state=target.seed)
    for k, day in enumerate(train_days):
        chunk = copied.iloc[k::len(train_days)]
        path = target.files(day)[0]
        restamped = chunk.assign(**{ts: chunk[ts] - (chunk[ts].dt.normalize() - pd.Timestamp(day))})
        merged = pd.concat([target.read(path), restamped], ignore_index=True)
        target.write(merged.sort_values(ts, kind="stable").reset_index(drop=True), path)


LEAK_COLUMN = "retention_score"


@fault("target_leak",
       description=f"A CRM column {LEAK_COLUMN!r}, filled in by the retention team after a customer "
       "cancels (the label plus a little noise), is added to the data and to the features.")
def target_leak(target: FaultTarget) -> None:
    label = target.config["data"]["target"]
    _add_numeric_feature(target, LEAK_COLUMN, lambda f, rng: f.assign(**{
        LEAK_COLUMN: (f[label] + rng.normal(0.0, 0.15, len(f))).round(3)}))


FUTURE_COLUMN = "cancel_page_visits"


@fault("future_feature",
       description=f"{FUTURE_COLUMN!r}, visits to the cancellation page in the 7 days AFTER each "
       "event (a nightly job's count, as of event + 7 days), becomes a feature; its as-of column "
       "is declared in gates.serving_availability.feature_timestamps.")
def future_feature(target: FaultTarget) -> None:
    data = target.config["data"]
    label, ts, as_of = data["target"], data["timestamp"], f"{FUTURE_COLUMN}_as_of"

    def add(frame: pd.DataFrame, rng: Any) -> pd.DataFrame:
        visits = rng.poisson(0.3 + 1.0 * frame[label].to_numpy()).astype("int64")
        return frame.assign(**{FUTURE_COLUMN: visits, as_of: frame[ts] + pd.Timedelta(days=7)})

    _add_numeric_feature(target, FUTURE_COLUMN, add, extra_columns=(as_of,))
    gates = target.config.setdefault("gates", {}).setdefault("serving_availability", {})
    gates.setdefault("feature_timestamps", {})[FUTURE_COLUMN] = as_of


OFFLINE_COLUMN = "call_sentiment"


@fault("feature_not_at_serving",
       description=f"{OFFLINE_COLUMN!r}, scored by an offline batch job over call transcripts, is "
       "added to the features; the online feature store does not have it (not in serving_features).")
def feature_not_at_serving(target: FaultTarget) -> None:
    label = target.config["data"]["target"]
    _add_numeric_feature(target, OFFLINE_COLUMN, lambda f, rng: f.assign(**{
        OFFLINE_COLUMN: (rng.normal(0.0, 1.0, len(f)) - 0.4 * f[label]).round(3)}), served=False)


def standardise_outside_pipeline(ctx: Any) -> None:
    """after_ingest hook: a feature job standardises a numeric feature (the config's first float
    one: monthly_charges in the demo) on the training frame only; serving sends the raw value."""
    name = next(c for c in ctx.cfg.data.features.numeric if pd.api.types.is_float_dtype(ctx.frame[c]))
    column = ctx.frame[name]
    ctx.frame[name] = (column - column.mean()) / column.std()


@fault("preprocessing_skew",
       description="An after_ingest hook standardises a numeric feature outside the model "
       "pipeline: evaluation looks fine, but raw serving rows get different predictions.")
def preprocessing_skew(target: FaultTarget) -> None:
    target.add_hook("after_ingest", "gates.faults:standardise_outside_pipeline")


# --------------------------------------------------------------------------- model debugging faults (#14)
# Faults the overall metric misses: the candidate's predictions, confidence, reliance or one
# segment break while the primary metric (ranking) stays close to the champion's.


@fault("class_never_predicted",
       description="A smoke-test config shipped: max_iter=5 and an experiment's class_weight (the "
       "positive class weighted 1/10,000). Its scores start far below 0.5 whatever the base rate and "
       "five trees cannot climb back, so it predicts no positive at all (f1 = 0) while its ROC AUC "
       "still looks plausible.")
def class_never_predicted(target: FaultTarget) -> None:
    label = target.config["data"]["target"]
    values = target.sample()[label].dropna().unique()
    for day in reversed(target.window()):  # a quiet day may hold one class: look further back
        if len(values) >= 2:
            break
        for path in target.files(day):
            values = pd.unique(np.concatenate([values, target.read(path)[label].dropna().unique()]))
    if len(values) < 2:
        raise ValueError("class_never_predicted needs both classes in the window")
    negative, positive = (v.item() if hasattr(v, "item") else v for v in (min(values), max(values)))
    _set_params(target, max_iter=5, class_weight={negative: 1.0, positive: 1e-4})


class TemperatureScaledClassifier(ClassifierMixin, BaseEstimator):
    """A post-hoc 'calibration' step with a temperature fitted on the wrong split: it divides the
    logit by `temperature`, squashing every probability toward 0.5. The ranking (ROC AUC) and the
    side of 0.5 (the predicted class) are unchanged; the probabilities are not."""

    def __init__(self, base: Any = None, temperature: float = 3.0) -> None:
        self.base = base
        self.temperature = temperature

    def fit(self, X: pd.DataFrame, y: Any) -> TemperatureScaledClassifier:
        from sklearn.base import clone

        self.base_ = clone(self.base).fit(X, y)
        self.classes_ = self.base_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> Any:
        import numpy as np

        p = np.clip(self.base_.predict_proba(X)[:, 1], 1e-9, 1 - 1e-9)
        q = 1.0 / (1.0 + np.exp(-np.log(p / (1 - p)) / self.temperature))
        return np.column_stack([1 - q, q])

    def predict(self, X: pd.DataFrame) -> Any:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def miscalibrated_pipeline(cfg: Any) -> Any:
    """model.pipeline factory for the miscalibrated fault."""
    from sklearn.pipeline import Pipeline

    from gates.training import make_estimator, preprocessor

    inner = Pipeline([("preprocess", preprocessor(cfg)), ("model", make_estimator(cfg.model))])
    return Pipeline([("temperature", TemperatureScaledClassifier(inner, temperature=3.0))])


@fault("miscalibrated", tags=["needs_champion"],
       description="A temperature-scaling step fitted on the wrong split (T = 3) squashes every "
       "probability toward 0.5: ROC AUC and the predicted classes are unchanged, the confidence is not.")
def miscalibrated(target: FaultTarget) -> None:
    target.config.setdefault("model", {})["pipeline"] = "gates.faults:miscalibrated_pipeline"


SHORTCUT_COLUMN = "retention_offer_sent"


@fault("shortcut_feature", tags=["needs_champion"],
       description=f"{SHORTCUT_COLUMN!r}, a flag the retention team sets mostly for customers who "
       "already asked to cancel (60% of churners, 5% of the others), becomes a feature: too weak "
       "for the single-feature leakage check, the candidate leans on it more than on anything else.")
def shortcut_feature(target: FaultTarget) -> None:
    label = target.config["data"]["target"]
    _add_numeric_feature(target, SHORTCUT_COLUMN, lambda f, rng: f.assign(**{
        SHORTCUT_COLUMN: (rng.random(len(f)) < (0.05 + 0.55 * f[label].to_numpy())).astype("int64")}))


WEAK_SEGMENT = {"region": "west", "plan": "basic"}  # the demo's; other pipelines: chosen at fit


class ServingLookup(TransformerMixin, BaseEstimator):
    """The customer lookup serving calls for each prediction request: it misses one segment and
    defaults what it should have filled to 0, the value for a new customer (the demo: region=west's
    basic plan, tenure_months). Stateless once built: it transforms the same way whenever called.

    `segment` holds equalities; `above` instead marks the rows whose first of `columns` is at least
    that value (a pipeline with no mid-sized category: its largest accounts)."""

    def __init__(self, segment: dict[str, Any] | None = None, columns: tuple[str, ...] = ("tenure_months",),
                 above: float | None = None) -> None:
        self.segment = segment
        self.columns = columns
        self.above = above

    @classmethod
    def missing_from(cls, X: pd.DataFrame, numeric: list[str], categorical: list[str]) -> ServingLookup:
        """The demo's segment where its columns exist. Elsewhere every numeric feature is defaulted
        (a model may not lean on any one of them), for a categorical value holding 5-30 % of the
        rows (nearest 10 %), or else for the top fifth of the first numeric feature (its largest accounts)."""
        if set(WEAK_SEGMENT) | {"tenure_months"} <= set(X.columns):
            return cls()
        columns = tuple(c for c in numeric if c in X)
        for name in categorical:
            shares = X[name].value_counts(normalize=True)
            mid = shares[(shares >= 0.05) & (shares <= 0.3)]
            if len(mid):
                value = (mid - 0.1).abs().idxmin()
                return cls(segment={name: value.item() if hasattr(value, "item") else value}, columns=columns)
        return cls(segment={}, columns=columns, above=float(X[columns[0]].quantile(0.8)))

    def fit(self, X: pd.DataFrame, y: Any = None) -> ServingLookup:
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        rows = pd.Series(True, index=X.index)
        for column, value in (WEAK_SEGMENT if self.segment is None else self.segment).items():
            rows &= X[column] == value
        if self.above is not None:
            rows &= X[self.columns[0]] >= self.above
        X = X.copy()
        X.loc[rows.to_numpy(), list(self.columns)] = 0
        return X


class ServedWithLookup(Pipeline):
    """The model as served: every prediction request's features pass through the customer lookup
    (ServingLookup) before they reach the pipeline, while training reads them from the warehouse.

    The pipeline's own steps (preprocessing, estimator) are fitted on the training split as it is,
    and `transform` is theirs: only the predictions go through the lookup, so only the segment the
    lookup misses is degraded (the preprocessing_fit gate finds every statistic equal to a refit on
    the training split)."""

    def fit(self, X: pd.DataFrame, y: Any = None, **params: Any) -> ServedWithLookup:
        numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
        self.lookup_ = ServingLookup.missing_from(X, numeric, [c for c in X.columns if c not in numeric])
        return super().fit(X, y, **params)

    def _served(self, X: pd.DataFrame) -> pd.DataFrame:
        return getattr(self, "lookup_", ServingLookup()).transform(X)

    def predict(self, X: pd.DataFrame, **params: Any) -> Any:
        return super().predict(self._served(X), **params)

    def predict_proba(self, X: pd.DataFrame, **params: Any) -> Any:
        return super().predict_proba(self._served(X), **params)

    def predict_log_proba(self, X: pd.DataFrame, **params: Any) -> Any:
        return super().predict_log_proba(self._served(X), **params)

    def decision_function(self, X: pd.DataFrame, **params: Any) -> Any:
        return super().decision_function(self._served(X), **params)

    def score(self, X: pd.DataFrame, y: Any = None, sample_weight: Any = None, **params: Any) -> float:
        return super().score(self._served(X), y, sample_weight=sample_weight, **params)


def weak_segment_pipeline(cfg: Any) -> Any:
    """model.pipeline factory for the weak_segment fault: the standard preprocessing and estimator,
    fitted on the training split only, served behind the faulty lookup."""
    from gates.training import make_estimator, preprocessor

    return ServedWithLookup([("preprocess", preprocessor(cfg)), ("model", make_estimator(cfg.model))])


@fault("weak_segment", tags=["needs_champion"],
       description="The customer lookup serving calls before each prediction misses region=west's "
       "basic plan (7% of rows; elsewhere a category value with 5-30% of rows, or the top fifth of "
       "the first numeric feature) and defaults their tenure_months (elsewhere every numeric "
       "feature) to 0; training reads the warehouse, so the pipeline is fitted on the training "
       "split as it is: the candidate fails on that segment only, and the configured slices "
       "(region, plan) see it diluted.")
def weak_segment(target: FaultTarget) -> None:
    target.config.setdefault("model", {})["pipeline"] = "gates.faults:weak_segment_pipeline"
