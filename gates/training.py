"""Build the candidate and baseline pipelines from the config, and fit them.

All preprocessing lives inside the sklearn Pipeline, so the exported model sees raw rows
exactly as serving will send them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from gates.config import EstimatorConfig, PipelineConfig, Task, import_object


def make_estimator(spec: EstimatorConfig) -> BaseEstimator:
    cls = import_object(spec.estimator, field="model.estimator")
    try:
        return cls(**spec.params)
    except TypeError as exc:
        raise ValueError(f"model params for {spec.estimator}: {exc}") from None


def preprocessor(cfg: PipelineConfig) -> ColumnTransformer:
    num, cat = cfg.model.numeric_preprocessing, cfg.model.categorical_preprocessing
    numeric_steps: list[tuple[str, Any]] = []
    if num.impute != "none":
        numeric_steps.append(("impute", SimpleImputer(strategy=num.impute)))
    if num.scale:
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps: list[tuple[str, Any]] = []
    if cat.impute != "none":
        categorical_steps.append(
            ("impute", SimpleImputer(strategy=cat.impute, fill_value="missing")
             if cat.impute == "constant" else SimpleImputer(strategy=cat.impute)))
    categorical_steps.append(
        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)
         if cat.encode == "onehot"
         else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)))
    transformers = []
    if cfg.data.features.numeric:
        transformers.append(("numeric", Pipeline(numeric_steps) if numeric_steps else "passthrough",
                             cfg.data.features.numeric))
    if cfg.data.features.categorical:
        transformers.append(("categorical", Pipeline(categorical_steps), cfg.data.features.categorical))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def build_pipeline(cfg: PipelineConfig) -> Pipeline:
    """The candidate: the user's own pipeline factory, or preprocessing + the configured estimator."""
    if cfg.model.pipeline:
        factory = import_object(cfg.model.pipeline, field="model.pipeline")
        pipeline = factory(cfg)
        if not isinstance(pipeline, Pipeline):
            raise TypeError(f"model.pipeline {cfg.model.pipeline} returned "
                            f"{type(pipeline).__name__}, expected sklearn Pipeline")
        return pipeline
    return Pipeline([("preprocess", preprocessor(cfg)), ("model", make_estimator(cfg.model))])


def build_baselines(cfg: PipelineConfig) -> dict[str, Pipeline]:
    """The models the candidate must beat: a dummy, and the configured simple model if any."""
    dummy = (DummyClassifier(strategy="prior") if cfg.task is Task.CLASSIFICATION
             else DummyRegressor(strategy="mean"))
    baselines = {"dummy": Pipeline([("preprocess", preprocessor(cfg)), ("model", dummy)])}
    if cfg.model.baseline is not None:
        baselines["simple"] = Pipeline(
            [("preprocess", preprocessor(cfg)), ("model", make_estimator(cfg.model.baseline))])
    return baselines


def features_and_target(frame: pd.DataFrame, cfg: PipelineConfig) -> tuple[pd.DataFrame, pd.Series]:
    missing = [c for c in [*cfg.data.features.all, cfg.data.target] if c not in frame.columns]
    if missing:
        raise KeyError(f"columns missing from the data: {missing}")
    return frame[cfg.data.features.all], frame[cfg.data.target]


def fit(pipeline: Pipeline, train: pd.DataFrame, cfg: PipelineConfig) -> Pipeline:
    X, y = features_and_target(train, cfg)
    return pipeline.fit(X, y)
