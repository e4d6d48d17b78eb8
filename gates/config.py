"""The pipeline config: one YAML file per pipeline, validated by pydantic.

Every threshold a gate uses is a field here, with its default documented, so it appears in the
config, the report and MLflow. Unknown fields are rejected: a typo never silently falls back to
a default.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from gates.settings import GateSettings, Strict  # noqa: F401 - the config's building blocks


class ConfigError(ValueError):
    """A config that cannot be used; the message names the field and what is allowed."""


# --------------------------------------------------------------------------- data and split


class DataFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"


# Sizes are bounded so a typo fails here, naming the field, instead of as an OverflowError in
# ingest or a report of 99,960 missing partitions.
MAX_WINDOW_DAYS = 3660
MAX_ROWS = 1_000_000_000
MAX_SECONDS = 86_400


class Cadence(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"  # date=YYYY-MM or month-end dates; see gates/cadence.py


class FeaturesConfig(Strict):
    numeric: list[str] = Field(default_factory=list, description="Numeric model inputs.")
    categorical: list[str] = Field(default_factory=list, description="Categorical model inputs.")

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class DataConfig(Strict):
    path: Path = Field(description="Root of the hive-partitioned data: <path>/<key>=<value>/*.")
    format: DataFormat = DataFormat.PARQUET
    partition_key: str = "date"
    cadence: Cadence = Cadence.DAILY
    window_days: int = Field(60, ge=2, le=MAX_WINDOW_DAYS,
                             description="Days of partitions the run trains on (at most ten years).")
    timestamp: str = Field(description="Event time column; splits and leakage checks use it.")
    target: str
    entity_id: str | None = None
    features: FeaturesConfig
    slices: list[str] = Field(default_factory=list, description="Columns to slice metrics by.")
    serving_features: list[str] | None = Field(
        None, description="Features available at prediction time; default: all features."
    )

    @model_validator(mode="after")
    def _features_disjoint(self) -> DataConfig:
        if not self.features.all:
            raise ValueError("data.features: name at least one numeric or categorical feature")
        overlap = set(self.features.numeric) & set(self.features.categorical)
        if overlap:
            raise ValueError(f"data.features: {sorted(overlap)} listed as both numeric and categorical")
        if self.target in self.features.all:
            raise ValueError(f"data.features: the target {self.target!r} cannot also be a feature")
        return self


class SplitStrategy(StrEnum):
    TIME = "time"
    RANDOM = "random"


class SplitConfig(Strict):
    strategy: SplitStrategy = SplitStrategy.TIME
    test_days: int = Field(7, ge=1, le=MAX_WINDOW_DAYS, description="Newest days held out for the test split.")
    gap_days: int = Field(0, ge=0, le=MAX_WINDOW_DAYS, description="Days dropped between train and test.")
    entity_aware: bool = Field(False, description="Keep each entity wholly in train or in test.")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Only for strategy: random.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="numpy's seeds are 32-bit.")


# --------------------------------------------------------------------------- model


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


METRIC_DIRECTIONS: dict[str, bool] = {
    # metric -> greater_is_better
    "roc_auc": True,
    "f1": True,
    "accuracy": True,
    "log_loss": False,
    "brier": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}
CLASSIFICATION_METRICS = ("roc_auc", "f1", "accuracy", "log_loss", "brier")
REGRESSION_METRICS = ("rmse", "mae", "r2")


class EstimatorConfig(Strict):
    estimator: str = Field(description="Import path of a scikit-learn estimator class, e.g. "
                           "sklearn.ensemble.HistGradientBoostingClassifier.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the "
                                   "estimator's constructor, checked against its signature.")

    @field_validator("estimator")
    def _estimator_class(cls, value: str) -> str:
        resolve_estimator(value)
        return value

    @field_validator("params")
    def _params_bind(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "estimator" in info.data:  # else the estimator's own error is reported
            check_estimator_params(resolve_estimator(info.data["estimator"]), value)
        return value


class NumericPreprocessing(Strict):
    impute: Literal["median", "mean", "none"] = "median"
    scale: bool = True


class CategoricalPreprocessing(Strict):
    impute: Literal["most_frequent", "constant", "none"] = "constant"
    encode: Literal["onehot", "ordinal"] = "onehot"


class ModelConfig(EstimatorConfig):
    pipeline: str | None = Field(
        None,
        description="'module:function' returning an unfitted sklearn Pipeline; replaces the "
        "built-in preprocessing + estimator when set.",
    )
    numeric_preprocessing: NumericPreprocessing = Field(default_factory=NumericPreprocessing)
    categorical_preprocessing: CategoricalPreprocessing = Field(
        default_factory=CategoricalPreprocessing
    )
    baseline: EstimatorConfig | None = Field(
        None, description="A simple model the candidate must beat, besides the dummy."
    )
    primary_metric: str = "roc_auc"

    @field_validator("pipeline")
    def _pipeline_importable(cls, value: str | None) -> str | None:
        if value is not None:
            import_object(value, field="pipeline")
        return value


# --------------------------------------------------------------------------- gates
# Each gate declares its settings model beside its check (gates/registry.py); the `gates:`
# section, GatesConfig, is assembled from those declarations on first use (see `_complete`).


class EvidenceConfig(Strict):
    """Model debugging evidence logged with every evaluated run (gates.model_evidence)."""

    failure_rows: int = Field(300, ge=1, le=100_000, description="Most consequential errors kept "
                              "in the failure set (evidence/failure_set.parquet).")


# --------------------------------------------------------------------------- tracking


# A name that becomes a path component (the experiment's artifact folder), part of a
# `models:/name@alias` URI or of a Prefect concurrency-limit name: letters, digits, '.', '_', '-',
# starting with a letter or digit, so it can neither escape its folder ('../', '/') nor break a URI.
SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class MlflowConfig(Strict):
    tracking_uri: str = Field("sqlite:///mlflow.db", description="Relative SQLite paths resolve "
                              "against the working directory.")
    artifact_root: Path = Field(Path("mlartifacts"), description="Where run artifacts are stored.")
    experiment: str = Field(description="Also the folder under artifact_root: letters, digits, "
                            "'.', '_' and '-', at most 100 characters.")
    registered_model: str = Field(description="Letters, digits, '.', '_' and '-', at most 100 "
                                  "characters (it appears in models:/ URIs).")
    champion_alias: str = Field("champion", description="An MLflow alias: letters, digits, '_' and "
                                "'-'; not 'latest' nor 'v<number>' (reserved by MLflow).")
    connect_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="A remote tracking server must answer within this at the "
        "start of a run, else the run stops with exit 3 (not MLflow's minutes of retries).")

    @field_validator("experiment", "registered_model")
    def _safe_name(cls, value: str, info: ValidationInfo) -> str:
        if not re.fullmatch(SAFE_NAME, value):
            raise ValueError(f"{value[:120]!r} is not a safe name: use letters, digits, '.', '_' "
                             "and '-', starting with a letter or digit, at most 100 characters "
                             "(no '/', '..', quotes or spaces)")
        return value

    @field_validator("champion_alias")
    def _alias(cls, value: str) -> str:
        if not re.fullmatch(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$", value):
            raise ValueError(f"{value[:120]!r} is not an alias: letters, digits, '_' and '-', "
                             "starting with a letter or '_', at most 64 characters")
        if value.lower() == "latest" or re.fullmatch(r"[vV]\d+", value):
            raise ValueError(f"{value!r} is reserved by MLflow ('latest', 'v<number>')")
        return value


class ExportConfig(Strict):
    dir: Path = Field(Path("models"), description="Where the exported model files are written.")


class HooksConfig(Strict):
    """Your own steps, as 'module:function' callables taking the run context.

    after_ingest may transform `ctx.frame` (a feature step outside the model pipeline: the
    serving-skew gate checks it does not change what the model sees); before_export and
    after_export run around the export (signing, uploading, ...), and the artifact gates verify
    whatever they leave behind.
    """

    after_ingest: list[str] = Field(default_factory=list)
    before_export: list[str] = Field(default_factory=list)
    after_export: list[str] = Field(default_factory=list)

    @field_validator("after_ingest", "before_export", "after_export")
    def _importable(cls, value: list[str]) -> list[str]:
        for item in value:
            import_object(item, field="hooks")
        return value


class PromotionConfig(Strict):
    """How runs of one pipeline take turns moving the champion alias (see gates/promotion.py)."""

    lock: Literal["auto", "file", "prefect"] = Field(
        "auto", description="auto: a file lock beside a local MLflow store, a Prefect global "
        "concurrency limit (one slot) for a remote one.")
    wait_seconds: float = Field(120.0, ge=0, le=MAX_SECONDS, description="How long a second run waits for the "
                                "lock before it is refused (blocked, not promoted).")


class RunnerConfig(Strict):
    """Where the flow's tasks (the per-partition gates among them) run."""

    dask_address: str | None = Field(
        None, description="tcp://host:8786 of an existing Dask scheduler: tasks run there through "
        "prefect-dask's DaskTaskRunner. None: threads in the flow's process (the default).")
    dask_local_workers: int = Field(0, ge=0, le=256, description="With no address: start a LocalCluster "
                                    "of this many workers (0: no Dask).")
    partitions_per_task: int = Field(
        8, ge=1, le=MAX_WINDOW_DAYS, description="On Dask, the contract is validated by tasks of this many partitions, "
        "each reading its own partition files on the worker (GE's per-call overhead favours a few "
        "partitions per task over one).")


class ReviewConfig(Strict):
    """A reviewed override inside Prefect (gates/review.py): off by default."""

    enabled: bool = Field(False, description="Pause a run whose blocking gates are all reviewable "
                          "and wait for a person's decision (Prefect UI or `gates approve/reject`).")
    gates: list[str] = Field(default_factory=lambda: ["drift", "label_shift", "champion"],
                             description="Gates a person may override. Contract, partitions, "
                             "duplicates, leakage and artifact gates are never reviewable.")
    champion_margin: float = Field(0.01, ge=0, description="The champion gate is reviewable only when "
                                   "its regression is within max_regression + this.")
    timeout_seconds: int = Field(3600, ge=1, description="Without a decision by then the run stays blocked.")
    poll_seconds: int = Field(5, ge=1, description="How often the paused run checks for a decision.")

    @field_validator("gates")
    def _only_reviewable(cls, value: list[str]) -> list[str]:
        from gates.review import reviewable_gates  # the rule beside the override (derived from the registry)

        allowed = reviewable_gates()
        bad = [name for name in value if name not in allowed]
        if bad:
            raise ValueError(f"{bad} can never be reviewed (contract, partition, duplicate, leakage and "
                             f"artifact failures are bugs; unknown names are typos); allowed: "
                             f"{', '.join(allowed)}")
        return value


class PipelineConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
                      description="Lower-case, digits and '-', at most 63 characters (Prefect "
                      "artifact keys and deployment names are made of it).")
    task: Task = Task.CLASSIFICATION
    data: DataConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig
    expectations: Path = Field(description="Great Expectations suite JSON, e.g. expectations/x.json.")
    calibration: Path | None = Field(
        None, description="Natural-drift envelope learned from history (`gates calibrate`), e.g. "
        "expectations/x.calibration.json; drift and label_shift block only outside it. None: uncalibrated.")
    mlflow: MlflowConfig
    export: ExportConfig = Field(default_factory=ExportConfig)
    gates: GatesConfig = Field(default_factory=lambda: _gates_config()())
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)

    @model_validator(mode="after")
    def _metric_fits_task(self) -> PipelineConfig:
        allowed = CLASSIFICATION_METRICS if self.task is Task.CLASSIFICATION else REGRESSION_METRICS
        if self.model.primary_metric not in allowed:
            raise ValueError(
                f"model.primary_metric: {self.model.primary_metric!r} is not a {self.task.value} "
                f"metric; allowed: {', '.join(allowed)}"
            )
        return self

    @model_validator(mode="after")
    def _split_fits_window(self) -> PipelineConfig:
        held = self.split.test_days + self.split.gap_days
        if self.split.strategy is SplitStrategy.TIME and held >= self.data.window_days:
            raise ValueError(
                f"split.test_days + split.gap_days ({held}) must be less than data.window_days "
                f"({self.data.window_days}), or nothing is left to train on")
        return self

    @property
    def greater_is_better(self) -> bool:
        return METRIC_DIRECTIONS[self.model.primary_metric]

    @property
    def serving_features(self) -> list[str]:
        return self.data.serving_features if self.data.serving_features is not None else self.data.features.all


def import_object(path: str, *, field: str) -> Any:
    """Import 'pkg.mod.Name' or 'pkg.mod:name'; the error names the config field."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{field}: {path!r} is not an import path like "
                         "'sklearn.linear_model.LogisticRegression'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{field}: cannot import module {module_name!r} ({exc})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{field}: module {module_name!r} has no attribute {attr!r}") from None


def _gates_config() -> type[Strict]:
    from gates.registry import gates_config

    built = gates_config()
    if not PipelineConfig.__pydantic_complete__:
        PipelineConfig.model_rebuild(_types_namespace={"GatesConfig": built})
    return built


def _complete() -> None:
    """Give PipelineConfig its `gates:` section, built from the gate declarations.

    Deferred to first use because the gate modules import this one (for PipelineConfig, Task, ...).
    """
    _gates_config()


def __getattr__(name: str) -> Any:
    if name == "GatesConfig":
        return _gates_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Packages whose modules `model.estimator` may import. Naming a class is not meant to run code:
# importing a module runs its top level (`this` prints, a user's module may do anything), and a
# callable like `os.system` would run at training with `params` as its arguments. So the module
# must lie under one of these packages, *before* it is imported, and what it names must be a
# class deriving from sklearn.base.BaseEstimator, *before* it is called. Code of your own enters
# through the documented entry points instead: `model.pipeline` (a factory) and `hooks`.
ESTIMATOR_PACKAGES = ("sklearn", "xgboost", "lightgbm", "catboost")


def resolve_estimator(path: str) -> type:
    """The estimator class an import path names, checked before anything runs (see above)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr or not all(p.isidentifier() for p in [*module_name.split("."), attr]):
        raise ValueError(f"{path!r} is not an import path like 'sklearn.linear_model.LogisticRegression'")
    if module_name.split(".")[0] not in ESTIMATOR_PACKAGES:
        raise ValueError(
            f"{path!r} is outside the estimator packages ({', '.join(ESTIMATOR_PACKAGES)}); "
            "wrap other models in a `model.pipeline` factory ('module:function')")
    if importlib.util.find_spec(module_name.split(".")[0]) is None:
        raise ValueError(f"cannot import module {module_name!r} (package not installed)")
    obj = import_object(path, field="estimator")
    from sklearn.base import BaseEstimator

    if not (inspect.isclass(obj) and issubclass(obj, BaseEstimator)):
        kind = "a class" if inspect.isclass(obj) else type(obj).__name__
        raise ValueError(f"{path!r} is {kind}, not a scikit-learn estimator class "
                         "(a subclass of sklearn.base.BaseEstimator)")
    return obj


def check_estimator_params(cls: type, params: dict[str, Any]) -> None:
    """Params bind to the constructor's signature, and pass scikit-learn's own parameter
    constraints (types, ranges, allowed strings): checked now, not after a training failure."""
    names = [p.name for p in inspect.signature(cls).parameters.values()
             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    unknown = [k for k in params if k not in names]
    if unknown:
        raise ValueError(f"{unknown} not parameter(s) of {cls.__name__}; allowed: {', '.join(names)}")
    try:
        estimator = cls(**params)
    except Exception as exc:  # noqa: BLE001 - any constructor error is a config error
        raise ValueError(f"{cls.__name__}({', '.join(params)}): {type(exc).__name__}: {exc}") from None
    validate = getattr(estimator, "_validate_params", None)  # sklearn >= 1.2: the fit-time check
    if callable(validate):
        try:
            validate()
        except Exception as exc:  # noqa: BLE001 - sklearn's InvalidParameterError names the param
            raise ValueError(str(exc)) from None


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see configs/demo.yaml for every field)"
        elif err["type"] == "enum":
            msg = f"{msg}; got {err.get('input')!r}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def parse_config(raw: dict[str, Any], source: str = "<config>") -> PipelineConfig:
    _complete()
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no `!!python/...` tags), refusing a key given twice in a mapping:
    the second would silently win, a typo nobody sees."""

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool) or key is None:
                continue  # pydantic names a non-string key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML config; raises ConfigError naming the field on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:300]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top level")
    return parse_config(raw, str(path))
