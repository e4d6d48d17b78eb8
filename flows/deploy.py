"""Scheduled deployments of the retrain flow.

Two ways to run it on a schedule: `gates serve` (this module's `serve`: one long-lived process
that both schedules and executes the runs, no work pool), or `prefect deploy` with the repo's
prefect.yaml and a `prefect worker start --pool retrain` (runs in a process work pool, so the
worker can live on another machine). Both pass the same two parameters: the config path
(absolute, so the run does not depend on the worker's working directory) and the run date
(None: the day the run starts).
"""

from __future__ import annotations

from pathlib import Path

from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron

from flows.retrain import retrain
from gates.config import load_config

DEFAULT_CRON = "0 3 * * *"


def deployment(config_path: str | Path, cron: str = DEFAULT_CRON, timezone: str = "UTC",
               name: str | None = None, task_runner=None) -> RunnerDeployment:
    """The retrain flow for one pipeline config, on a cron schedule; named after the pipeline."""
    path = Path(config_path).resolve()
    cfg = load_config(path)  # fail now, naming the field, not at 03:00
    flow = retrain.with_options(task_runner=task_runner) if task_runner is not None else retrain
    return flow.to_deployment(
        name=name or cfg.name,
        schedules=[Cron(cron, timezone=timezone)],
        parameters={"config_path": str(path), "run_date": None},
        description=f"Retrain {cfg.name} behind its gates; promotes to @{cfg.mlflow.champion_alias}.",
        tags=["retrain-gates", cfg.name],
        # one run of a pipeline at a time: a slow run is not overtaken by the next schedule
        concurrency_limit=1,
        # by module path: the served process imports the installed package from any directory
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def serve(config_path: str | Path, cron: str = DEFAULT_CRON, timezone: str = "UTC",
          name: str | None = None, limit: int | None = None) -> None:
    """Register the scheduled deployment and execute its runs in this process until stopped."""
    from prefect import serve as prefect_serve

    prefect_serve(deployment(config_path, cron, timezone, name), limit=limit)
