"""What `gates run` needs to stand alone (no Makefile): settings defaulted in code, library noise
kept out of the terminal unless --verbose, and a live display of stages and gates.

`apply_defaults` must run before prefect, mlflow or great_expectations are imported.
"""

from __future__ import annotations

import logging
import os
import warnings

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from gates.progress import Event

DEFAULTS = {
    # a loaded 2-core machine needs > 30 s to start Prefect's ephemeral API (the default timeout)
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
}
QUIET = {
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",  # runs still send INFO logs to the API
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # "Downloading artifacts" bars
    "MLFLOW_LOGGING_LEVEL": "ERROR",  # "Validating candidate…" (MLflow sets its level on import)
    "TQDM_DISABLE": "1",
}
NOISY_LOGGERS = ("mlflow", "great_expectations", "alembic", "urllib3", "distributed")


def apply_defaults(verbose: bool = False) -> None:
    """Settings the Makefile used to export; an explicit environment variable still wins."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    if verbose:
        return
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    for name in NOISY_LOGGERS:  # MLflow's "Validating candidate…", pickle and schema hints
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("mlflow", "great_expectations", "sklearn", "skops", "pydantic"):
        warnings.filterwarnings("ignore", module=rf"{module}(\..*)?$")


class LiveStages:
    """A spinner per stage while it runs, then its time; a line per gate that warned or blocked."""

    ICONS = {"pass": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]", "error": "[red]✗[/]",
             "skip": "[dim]-[/]"}

    def __init__(self, console: Console) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                 console=console, transient=False)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> LiveStages:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        label = escape(event.name.replace("gates.", "gates: "))
        if event.kind == "stage-started":
            self.tasks[event.name] = self.progress.add_task(label, total=1)
        elif event.kind == "stage-finished" and event.name in self.tasks:
            mark = "[green]done[/]" if event.info.get("ok") else "[red]crashed[/]"
            self.progress.update(self.tasks[event.name], completed=1, description=f"{label} {mark}")
        elif event.kind == "gate":
            status = str(event.info.get("status", ""))
            if status in ("pass", "skip"):
                return
            icon = self.ICONS.get(status, "?")
            summary = escape(str(event.info.get("summary", "")))
            self.progress.console.print(f"  {icon} gate {label}: {summary}", highlight=False)
