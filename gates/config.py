"""The pipeline config: one YAML file per pipeline, validated by pydantic.

Every threshold a gate uses is a field here, with its default documented, so it appears in the
config, the report and MLflow. Unknown fields are rejected: a typo never silently falls back to
a default.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from gates.settings import GateSettings, Strict  # noqa: F401 - the config's building blocks


class ConfigError(ValueError):
    """A config that cannot be used; the message names the field and what is allowed."""


# --------------------------------------------------------------------------- data and split


class DataFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"


class Cadence(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


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
    window_days: int = Field(60, ge=2, description="Days of partitions the run trains on.")
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
    test_days: int = Field(7, ge=1, description="Newest days held out for the test split.")
    gap_days: int = Field(0, ge=0, description="Days dropped between train and test.")
    entity_aware: bool = Field(False, description="Keep each entity wholly in train or in test.")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Only for strategy: random.")
    seed: int = 0


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
    estimator: str = Field(description="Import path of a scikit-learn estimator class.")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("estimator")
    def _importable(cls, value: str) -> str:
        import_object(value, field="estimator")
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


# --------------------------------------------------------------------------- tracking


class MlflowConfig(Strict):
    tracking_uri: str = Field("sqlite:///mlflow.db", description="Relative SQLite paths resolve "
                              "against the working directory.")
    artifact_root: Path = Field(Path("mlartifacts"), description="Where run artifacts are stored.")
    experiment: str
    registered_model: str
    champion_alias: str = "champion"


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
    wait_seconds: float = Field(120.0, ge=0, description="How long a second run waits for the "
                                "lock before it is refused (blocked, not promoted).")


class RunnerConfig(Strict):
    """Where the flow's tasks (the per-partition gates among them) run."""

    dask_address: str | None = Field(
        None, description="tcp://host:8786 of an existing Dask scheduler: tasks run there through "
        "prefect-dask's DaskTaskRunner. None: threads in the flow's process (the default).")
    dask_local_workers: int = Field(0, ge=0, description="With no address: start a LocalCluster "
                                    "of this many workers (0: no Dask).")
    partitions_per_task: int = Field(
        8, ge=1, description="On Dask, the contract is validated by tasks of this many partitions, "
        "each reading its own partition files on the worker (GE's per-call overhead favours a few "
        "partitions per task over one).")


class PipelineConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Lower-case, digits and '-'.")
    task: Task = Task.CLASSIFICATION
    data: DataConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig
    expectations: Path = Field(description="Great Expectations suite JSON, e.g. expectations/x.json.")
    mlflow: MlflowConfig
    export: ExportConfig = Field(default_factory=ExportConfig)
    gates: GatesConfig = Field(default_factory=lambda: _gates_config()())
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)

    @model_validator(mode="after")
    def _metric_fits_task(self) -> PipelineConfig:
        allowed = CLASSIFICATION_METRICS if self.task is Task.CLASSIFICATION else REGRESSION_METRICS
        if self.model.primary_metric not in allowed:
            raise ValueError(
                f"model.primary_metric: {self.model.primary_metric!r} is not a {self.task.value} "
                f"metric; allowed: {', '.join(allowed)}"
            )
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
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def parse_config(raw: dict[str, Any], source: str = "<config>") -> PipelineConfig:
    _complete()
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML config; raises ConfigError naming the field on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top level")
    return parse_config(raw, str(path))
