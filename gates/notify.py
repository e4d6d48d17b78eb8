"""Tell someone: a blocked run emits a Prefect event, and an automation turns it into a
notification through a Prefect notification block (a webhook: Slack, Teams, your own).

    gates notify setup --webhook https://hooks.example/...   # once per Prefect server

The event `retrain.gates.blocked` concerns the pipeline (resource `retrain-gates.pipeline.<name>`)
and carries the headline, the gate that blocked and links to the runs, so the automation's message
(and anything else that listens) needs no second lookup.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

BLOCKED_EVENT = "retrain.gates.blocked"
RESOURCE_PREFIX = "retrain-gates.pipeline."
AUTOMATION_NAME = "retrain-gates-blocked"
BLOCK_NAME = "retrain-gates-webhook"
SUBJECT = "Retrain blocked: {{ event.resource.get('prefect.resource.name') }}"
BODY = ("{{ event.payload.headline }}\n"
        "gate: {{ event.payload.gate }}\n"
        "MLflow run: {{ event.payload.mlflow_run }}\n"
        "report: {{ event.payload.report }}\n"
        "Prefect flow run: {{ event.payload.flow_run }}")


def blocked_payload(headline: str, gate: str, mlflow_run: str, report: str, flow_run: str) -> dict[str, Any]:
    return {"headline": headline, "gate": gate, "mlflow_run": mlflow_run, "report": report,
            "flow_run": flow_run}


def emit_blocked(pipeline: str, payload: dict[str, Any]) -> bool:
    """Emit the block event to the Prefect API in use; True when it was queued. Never raises."""
    try:
        from prefect.events import emit_event

        return emit_event(BLOCKED_EVENT, resource={"prefect.resource.id": RESOURCE_PREFIX + pipeline,
                                                   "prefect.resource.name": pipeline},
                          payload=payload) is not None
    except Exception:  # noqa: BLE001 - a notification problem must not turn a verdict into a crash
        return False


def flow_run_url(flow_run_id: str | None) -> str:
    """The flow run's page on the Prefect server in use ('' for the ephemeral API)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    api = PREFECT_API_URL.value()
    if not api or not flow_run_id:
        return ""
    ui = PREFECT_UI_URL.value() or api.removesuffix("/api")
    return f"{ui}/runs/flow-run/{flow_run_id}"


def setup(webhook_url: str, pipeline: str | None = None) -> str:
    """Create (or replace) the webhook block and the automation; returns the automation's id."""
    from prefect.automations import Automation, EventTrigger, Posture, SendNotification
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=BLOCK_NAME, url=webhook_url, method="POST",
        json_data={"subject": "{{subject}}", "text": "{{body}}"})
    block_id = block.save(BLOCK_NAME, overwrite=True)
    try:
        Automation.read(name=AUTOMATION_NAME).delete()
    except Exception:  # noqa: BLE001 - none yet
        pass
    match = {"prefect.resource.id": RESOURCE_PREFIX + (pipeline or "*")}
    automation = Automation(
        name=AUTOMATION_NAME,
        description="Notify when retrain gates block a run (created by `gates notify setup`).",
        trigger=EventTrigger(expect={BLOCKED_EVENT}, match=match, posture=Posture.Reactive,
                             threshold=1, within=dt.timedelta(seconds=0)),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    ).create()
    return str(automation.id)
