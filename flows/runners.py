"""Where the flow's submitted tasks (the gates, the per-partition ones among them) execute.

Only the data stage's gates (they read every partition: the heavy, per-partition work) go to
the flow's task runner, so to Dask when it is one; the later stages stay on threads in the flow's
process, where their gates share in-process state (the artifact gates' one load probe) and the
model is at hand.

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


DISTRIBUTED_STAGES = frozenset({"data"})


@contextlib.contextmanager
def stage_runner(stage: str) -> Iterator[ThreadPoolTaskRunner | None]:
    """None: submit to the flow's task runner; else a local thread runner for this stage."""
    ctx = FlowRunContext.get()
    flow_runner = ctx.task_runner if ctx else None
    if stage in DISTRIBUTED_STAGES or flow_runner is None or isinstance(flow_runner, ThreadPoolTaskRunner):
        yield None
        return
    with ThreadPoolTaskRunner() as local:
        yield local
