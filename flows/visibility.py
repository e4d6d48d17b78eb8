"""How a run looks in Prefect's UI: its name (`<pipeline>-<run_date>`) and tags added as they
become known (the pipeline at the start, the verdict at the end), so a list of runs is readable
and filterable without opening each one."""

from __future__ import annotations

import datetime as dt

from prefect.runtime import flow_run


def run_name() -> str:
    """`<pipeline>-<run_date>`; Prefect calls this before the flow body, from its parameters."""
    params = flow_run.parameters or {}
    day = params.get("run_date") or dt.date.today().isoformat()
    try:
        from gates.config import load_config

        pipeline = load_config(params["config_path"]).name
    except Exception:  # noqa: BLE001 - a bad config fails in the flow body, naming the field
        pipeline = "retrain"
    return f"{pipeline}-{day}"


def add_tags(*tags: str) -> None:
    """Add tags to the current flow run (kept: Prefect's own and earlier ones). Never fails a run."""
    run_id = flow_run.get_id()
    if not run_id:
        return
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            current = client.read_flow_run(run_id).tags or []
            wanted = [*current, *(t for t in tags if t and t not in current)]
            if wanted != current:
                client.update_flow_run(run_id, tags=wanted)
    except Exception:  # noqa: BLE001 - tags are a convenience; the verdict is elsewhere too
        pass
