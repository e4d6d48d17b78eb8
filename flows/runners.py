"""Where the flow's submitted tasks execute.

The per-partition work (the contract's GE validation, in groups of partitions read on the
worker from their files) goes to the flow's task runner, so to Dask when it is one; every gate
then judges on threads in the flow's process, where the run's frames and model already are.

Default: Prefect's thread pool in the flow's process. For data that outgrows one machine, a
Dask cluster through prefect-dask's DaskTaskRunner: an existing scheduler (`--dask-address`
or `runner.dask_address`), or a LocalCluster of `runner.dask_local_workers` processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect import Flow
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from gates.config import PipelineConfig


def task_runner(cfg: PipelineConfig, dask_address: str | None = None):
    """A DaskTaskRunner when the CLI or the config asks for Dask, else None (Prefect's default)."""
    address = dask_address or cfg.runner.dask_address
    if not address and not cfg.runner.dask_local_workers:
        return None
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": cfg.runner.dask_local_workers,
                                          "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None})


def with_runner(flow: Flow, cfg: PipelineConfig, dask_address: str | None = None) -> Flow:
    runner = task_runner(cfg, dask_address)
    return flow.with_options(task_runner=runner) if runner is not None else flow


def is_distributed() -> bool:
    """True inside a flow run whose task runner is not Prefect's local thread pool (Dask)."""
    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx else None
    return runner is not None and not isinstance(runner, ThreadPoolTaskRunner)


@contextlib.contextmanager
def local_gates() -> Iterator[ThreadPoolTaskRunner | None]:
    """Gates run on threads in the flow's process, where the run's frames and model already are.

    None: the flow's own runner is local threads already; else a local thread runner. Only the
    per-partition contract validation goes to the flow's (Dask) runner, as tasks that read their
    own partition files (flows/retrain.py `spread_contract`), so no frame is shipped to a worker.
    """
    if not is_distributed():
        yield None
        return
    with ThreadPoolTaskRunner() as local:
        yield local
