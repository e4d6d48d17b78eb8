"""The `gates` command: run the flow, check a config, write demo data.

Exit codes: 0 promoted (or the command succeeded), 1 a gate blocked, 2 bad config, 3 an
infrastructure or internal error (a server or store unreachable, a crash outside the gates).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gates.config import ConfigError, load_config
from gates.console_run import apply_defaults
from gates.errors import EXIT_BAD_CONFIG, EXIT_BLOCKED, EXIT_INFRASTRUCTURE, EXIT_PROMOTED, InfrastructureError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=(
    "Validation gates for scheduled retraining runs.\n\n"
    "Exit codes: 0 promoted (or the command succeeded), 1 a gate blocked, 2 bad config, "
    "3 infrastructure or internal error (a server or store unreachable, a crash outside the gates)."))
# Piped output (CI logs, `make run | tee`) gets room for the tables instead of 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Pipeline config YAML.")]


@app.callback()
def _settings(verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show library logs and warnings (MLflow, Prefect, GE).")] = False) -> None:
    apply_defaults(verbose)  # before prefect or mlflow are imported: the commands import them lazily


def _load(config: Path):
    try:
        return load_config(config)
    except ConfigError as exc:
        err.print(str(exc), style="red", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        err.print(f"{name}: {value!r} is not a date (YYYY-MM-DD)", style="red")
        raise typer.Exit(2) from None


def _preflight(cfg, config: Path, day: dt.date | None, require_data: bool = False):
    """The config against its data (gates.preflight): exit 2 naming field and column."""
    from gates.preflight import preflight

    try:
        return preflight(cfg, day, str(config), require_data=require_data)
    except ConfigError as exc:
        err.print(str(exc), style="red", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command("validate-config")
def validate_config(
    file: Annotated[Path, typer.Argument(help="Pipeline config YAML.")],
    data: Annotated[bool, typer.Option("--data", help="Also check the config against the newest "
                                       "partition's schema and the expectation suite.")] = False,
    run_date: Annotated[str | None, typer.Option(help="With --data: YYYY-MM-DD (default: today).")] = None,
) -> None:
    """Check a config file; exit 2 naming the field if it is wrong."""
    cfg = _load(file)
    checked = ""
    if data:
        found = _preflight(cfg, file, _date(run_date, "--run-date") or dt.date.today(), require_data=True)
        checked = f"; fits partition {found.partition} ({len(found.columns)} columns)"
    console.print(f"[green]ok[/] {file}: pipeline {cfg.name!r}, {len(cfg.data.features.all)} features, "
                  f"primary metric {cfg.model.primary_metric}{checked}", highlight=False, soft_wrap=True)


@app.command("demo-data")
def demo_data(
    config: ConfigOpt = Path("configs/demo.yaml"),
    days: Annotated[int | None, typer.Option(help="Days to write (default: window + 30).")] = None,
    rows_per_day: Annotated[int, typer.Option(help="Average rows per day.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed; a partition depends only on seed and date.")] = 7,
    end: Annotated[str | None, typer.Option(help="Last day written (default: yesterday).")] = None,
) -> None:
    """Write the demo partitions the config points at; partitions already there are kept."""
    from gates.demo_data import write_demo_data

    cfg = _load(config)
    last = _date(end, "--end") or dt.date.today() - dt.timedelta(days=1)
    n = days or cfg.data.window_days + 30
    written = write_demo_data(Path(cfg.data.path), last, days=n, rows_per_day=rows_per_day, seed=seed,
                              fmt=cfg.data.format.value, key=cfg.data.partition_key)
    console.print(f"demo data: {len(written)} new partition(s) written under {cfg.data.path} "
                  f"({n} days ending {last})")


@app.command("run")
def run(
    config: ConfigOpt,
    run_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the run summary here.")] = None,
    dask_address: Annotated[str | None, typer.Option(
        help="tcp://host:8786 of a Dask scheduler: the gates run on that cluster.")] = None,
) -> None:
    """Run the retraining flow; exit 0 promoted, 1 a gate blocked, 2 bad config, 3 infrastructure."""
    cfg = _load(config)
    day = _date(run_date, "--run-date")
    _preflight(cfg, config, day or dt.date.today())  # before the Prefect API starts
    from gates import tracking
    from gates.ephemeral import import_while_starting_api
    from gates.errors import InfrastructureError
    from gates.interrupts import interruption_types, signal_name
    from gates.safety import plain

    state = None
    run_summary: type | None = None  # flows.retrain.RunSummary, once imported
    try:
        tracking.check_reachable(cfg)  # seconds, before Prefect starts; the flow checks again
        # no PREFECT_API_URL: a local API that dies with this process, booting while the flow's
        # libraries (Prefect, MLflow, GE, scikit-learn) import here
        import_while_starting_api(["flows.retrain", "flows.runners", "gates.console_run", "gates.progress"])
        from flows.retrain import RunSummary, retrain
        from flows.runners import with_runner
        from gates.console_run import LiveStages
        from gates.progress import listening

        run_summary = RunSummary
        flow = with_runner(retrain, cfg, dask_address)
        with LiveStages(err) as live, listening(live):
            state = flow(str(config), day.isoformat() if day else None, return_state=True)
        summary = state.result(raise_on_failure=False)
    except interruption_types() as exc:  # the run published `interrupted` before stopping
        name = signal_name(exc)
        err.print(f"interrupted by {name}: the run is tagged gates.verdict=interrupted; "
                  "the champion was not moved", style="red", markup=False, highlight=False)
        raise typer.Exit(130 if name == "SIGINT" else 143) from None
    except Exception as exc:  # noqa: BLE001 - the Prefect API did not start, a store is unreachable
        summary = exc
    if isinstance(summary, ConfigError):  # raised by the flow's own preflight: not a block
        err.print(str(summary), style="red", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_CONFIG)
    if run_summary is None or not isinstance(summary, run_summary):
        code = EXIT_BAD_CONFIG if isinstance(summary, ConfigError) else EXIT_INFRASTRUCTURE
        kind = "bad config" if code == EXIT_BAD_CONFIG else (
            "infrastructure error" if isinstance(summary, InfrastructureError | OSError | TimeoutError)
            else "internal error")
        where = f"flow run {state.name}: " if state is not None else ""
        text = str(summary) if isinstance(summary, InfrastructureError) else f"{type(summary).__name__}: {summary}"
        err.print(plain(f"{kind}: {where}{text}", 2000), style="red", highlight=False, markup=False)
        raise typer.Exit(code)
    _print_summary(summary, cfg, state)
    if json_out:
        json_out.write_text(plain(summary.model_dump_json(indent=2), 50_000_000))
    raise typer.Exit(EXIT_PROMOTED if summary.promoted_version else EXIT_BLOCKED)


@app.command("serve")
def serve(
    config: ConfigOpt,
    cron: Annotated[str, typer.Option(help="When to run, as a cron expression.")] = "0 3 * * *",
    timezone: Annotated[str, typer.Option(help="Time zone of the cron expression.")] = "UTC",
    name: Annotated[str | None, typer.Option(help="Deployment name (default: the pipeline's).")] = None,
    limit: Annotated[int | None, typer.Option(help="Most runs executing at once here.")] = None,
) -> None:
    """Serve the flow on a schedule (runs today's date each time) until stopped with Ctrl-C."""
    _load(config)
    from flows.deploy import serve as serve_flow
    from gates.ephemeral import start_ephemeral_api

    start_ephemeral_api()

    console.print(f"serving {config} on '{cron}' ({timezone}); the runs use the Prefect API at "
                  "PREFECT_API_URL (or a local one), stop with Ctrl-C")
    serve_flow(config, cron=cron, timezone=timezone, name=name, limit=limit)


def _print_summary(summary, cfg, state=None) -> None:
    from gates.report import rich_table

    console.print(rich_table(summary.report))
    if summary.diagnosis is not None and summary.diagnosis.hypotheses:
        from gates.report import rich_diagnosis

        console.print(rich_diagnosis(summary.diagnosis))
    metric = summary.primary_metric
    cand = summary.metrics.get(metric)
    if cand is not None:
        parts = [f"candidate {metric} {cand:.4f}"]
        parts += [f"{n} {m.get(metric, float('nan')):.4f}" for n, m in summary.baseline_metrics.items()]
        if summary.champion_metrics:
            parts.append(f"champion v{summary.champion_before} {summary.champion_metrics.get(metric, float('nan')):.4f}")
        else:
            parts.append("no champion yet (first run)")
        console.print(" | ".join(parts))
    from gates.safety import plain

    for note in summary.notes:
        console.print(f"note: {plain(note, 1000)}", style="dim", markup=False, highlight=False)
    style = "green" if summary.promoted_version else "red"
    console.print(plain(summary.headline, 1000), style=style, markup=False, highlight=False)
    if summary.promoted_version:
        console.print(f"promoted: {cfg.mlflow.registered_model} version {summary.promoted_version} "
                      f"is now @{cfg.mlflow.champion_alias}")
    else:
        console.print(f"not promoted: @{cfg.mlflow.champion_alias} unchanged "
                      f"({'version ' + summary.champion_before if summary.champion_before else 'none'})")
    # links on one line each (soft_wrap): a wrapped URL cannot be clicked or copied
    console.print(f"MLflow run: {summary.mlflow_run_url or summary.mlflow_run_id}", markup=False,
                  highlight=False, soft_wrap=True)
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_API_URL, PREFECT_UI_URL

    flow_run_id = state.state_details.flow_run_id if state is not None else None
    if PREFECT_API_URL.value():
        ui = PREFECT_UI_URL.value() or PREFECT_API_URL.value().removesuffix("/api")
        console.print(f"Prefect flow run: {ui}/runs/flow-run/{flow_run_id}", markup=False, highlight=False,
                      soft_wrap=True)
    else:  # the ephemeral API kept the run in its local database; no server to link to
        console.print(f"Prefect flow run {flow_run_id} (local store "
                      f"{PREFECT_API_DATABASE_CONNECTION_URL.value()}; serve it with "
                      "`prefect server start` to browse)", markup=False, highlight=False, soft_wrap=True)


@app.command("compare")
def compare(
    run_a: Annotated[str, typer.Argument(help="MLflow run id or a unique prefix (e.g. the champion's run).")],
    run_b: Annotated[str, typer.Argument(help="MLflow run id or a unique prefix to compare with it.")],
    config: ConfigOpt = Path("configs/demo.yaml"),
    diff_only: Annotated[bool, typer.Option("--diff-only", help="Only the rows that differ.")] = False,
) -> None:
    """Two runs side by side: metrics, parameters, gate verdicts and data fingerprints (differences
    highlighted)."""
    from mlflow.exceptions import MlflowException

    from gates import tracking
    from gates.compare import AmbiguousRun, compare_table

    cfg = _load(config)
    tracking.configure(cfg)
    try:
        console.print(compare_table(cfg, run_a, run_b, diff_only=diff_only))
    except (MlflowException, AmbiguousRun) as exc:
        err.print(f"cannot compare: {getattr(exc, 'message', exc)}", style="red", highlight=False, markup=False)
        raise typer.Exit(2) from None


def _decide(run: str, approve: bool, reason: str, reviewer: str | None) -> None:
    from gates.review import resume

    if not reason.strip():
        err.print("--reason: say why (it is recorded in MLflow and on the model version)", style="red")
        raise typer.Exit(2)
    try:
        run_id = resume(run, approve, reason, reviewer)
    except Exception as exc:  # noqa: BLE001 - not paused, unknown run, timed out
        err.print(f"cannot resume {run}: {type(exc).__name__}: {exc}", style="red")
        raise typer.Exit(3) from None
    console.print(f"{'approved' if approve else 'rejected'} flow run {run_id}: {escape_text(reason)}")


def escape_text(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@app.command("approve")
def approve(
    run: Annotated[str, typer.Argument(help="The paused Prefect flow run (id or name).")],
    reason: Annotated[str, typer.Option(help="Why this block is accepted (recorded).")],
    reviewer: Annotated[str | None, typer.Option(help="Who decides (default: your user name).")] = None,
) -> None:
    """Approve a run paused for review (drift, label shift, champion by a small margin): it goes on."""
    _decide(run, True, reason, reviewer)


@app.command("reject")
def reject(
    run: Annotated[str, typer.Argument(help="The paused Prefect flow run (id or name).")],
    reason: Annotated[str, typer.Option(help="Why the block stands (recorded).")],
    reviewer: Annotated[str | None, typer.Option(help="Who decides (default: your user name).")] = None,
) -> None:
    """Reject a run paused for review: it stays blocked."""
    _decide(run, False, reason, reviewer)


@app.command("scenarios")
def scenarios(
    config: ConfigOpt = Path("configs/demo.yaml"),
    fault: Annotated[list[str] | None, typer.Option(help="Only these faults (repeatable).")] = None,
    clean: Annotated[int, typer.Option(help="Clean runs, each with its own demo seed.")] = 0,
    run_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today).")] = None,
    workdir: Annotated[Path | None, typer.Option(help="Scratch folder (default: a temp dir).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results here.")] = None,
) -> None:
    """Inject each registered fault into a copy of the pipeline and run the real flow.

    Prints fault, expected gate, the gates that blocked, the top cause and seconds to the block.
    Exit 0 when every fault was blocked by its expected gate and every clean run passed.
    """
    import tempfile

    import yaml
    from rich.markup import escape
    from rich.table import Table

    from gates.faults import FAULTS
    from gates.scenarios import ChampionCache, ScenarioResult, as_row, run_scenario

    cfg = _load(config)
    raw = yaml.safe_load(Path(config).read_text())
    day = _date(run_date, "--run-date") or dt.date.today()
    names = fault or list(FAULTS)
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        err.print(f"--fault: unknown {unknown}; allowed: {', '.join(FAULTS)}", style="red")
        raise typer.Exit(2)
    root = workdir or Path(tempfile.mkdtemp(prefix="gates-scenarios-"))
    champions = ChampionCache(root / "champions")  # one champion run for every fault that needs it
    results = []
    table = Table(title=f"Fault catalogue on {cfg.name} ({day})")
    for col in ("fault", "expected gate", "blocked by", "top cause", "size / margin", "seconds", "ok"):
        table.add_column(col, overflow="fold")
    for name in names:
        try:
            res = run_scenario(name, raw, Path(cfg.data.path), root / name, day, champions=champions)
        except Exception as exc:  # noqa: BLE001 - a fault that cannot be planted is a failed row, not a crash
            res = ScenarioResult(fault=name, expected_gate=FAULTS[name].expected_gate, verdict="error",
                                 top_cause=f"could not plant or run the fault: {type(exc).__name__}: {exc}")
        results.append(res)
        table.add_row(name, res.expected_gate, ", ".join(res.blocked_by) or "-", _short(res.top_cause),
                      escape("\n".join(x for x in (res.size, res.margin[:160]) if x)),
                      f"{res.seconds:.1f}",
                      "[green]yes[/]" if res.ok and res.applicable else "n/a" if res.ok else "[red]NO[/]")
    if clean:
        from gates.demo_data import write_demo_data

        for seed in range(clean):
            source = root / f"clean-{seed}-data"
            write_demo_data(source, day - dt.timedelta(days=1), days=cfg.data.window_days + 10,
                            seed=100 + seed, fmt=cfg.data.format.value, key=cfg.data.partition_key)
            res = run_scenario(None, raw, source, root / f"clean-{seed}", day, champion_lead_days=7)
            res.fault = f"clean (seed {100 + seed})"
            results.append(res)
            table.add_row(res.fault, "(none)", ", ".join(res.blocked_by) or "-",
                          _short(res.top_cause), "", f"{res.seconds:.1f}", "[green]yes[/]" if res.ok else "[red]NO[/]")
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps([as_row(r) for r in results], indent=2))
    bad = [r.fault for r in results if not r.ok]
    skipped = [r.fault for r in results if not r.applicable]
    console.print(f"{len(results) - len(bad) - len(skipped)}/{len(results) - len(skipped)} as expected"
                  + (f"; not: {bad}" if bad else "")
                  + (f"; not applicable to this pipeline: {skipped}" if skipped else ""))
    raise typer.Exit(1 if bad else 0)


def _short(text: str, width: int = 90) -> str:
    """Shortened on a word boundary, escaped for rich markup (values like `[nan, nan]` survive)."""
    import textwrap

    return escape(textwrap.shorten(text, width=width, placeholder=" …"))


notify_app = typer.Typer(no_args_is_help=True, help="Notifications when a run blocks.")
app.add_typer(notify_app, name="notify")


@notify_app.command("setup")
def notify_setup(
    webhook: Annotated[str, typer.Option(help="URL that receives a POST (JSON: subject, text).")],
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline (default: all).")] = None,
) -> None:
    """Create a webhook notification block and an automation on the Prefect server (PREFECT_API_URL)
    that posts to it whenever a run emits `retrain.gates.blocked`."""
    from gates.notify import AUTOMATION_NAME, setup

    try:
        automation_id = setup(webhook, pipeline)
    except Exception as exc:  # noqa: BLE001 - no server, or it refused
        err.print(f"infrastructure error: could not create the automation: {exc}", style="red",
                  markup=False, highlight=False)
        raise typer.Exit(EXIT_INFRASTRUCTURE) from None
    console.print(f"automation {AUTOMATION_NAME} ({automation_id}): blocked runs"
                  f"{' of ' + pipeline if pipeline else ''} notify {webhook}", markup=False, highlight=False)


suite_app = typer.Typer(no_args_is_help=True, help="Expectation suites (the data contract).")
app.add_typer(suite_app, name="suite")


@suite_app.command("init")
def suite_init(
    config: ConfigOpt,
    start: Annotated[str, typer.Option("--from", help="First partition of the reference window.")],
    end: Annotated[str, typer.Option("--to", help="Last partition of the reference window.")],
    out: Annotated[Path | None, typer.Option("--out", help="Where to write (default: the config's "
                                             "expectations path with .draft.json).")] = None,
    margin: Annotated[float, typer.Option(help="Numeric ranges widened by this share of the span.")] = 0.25,
    windows: Annotated[int, typer.Option(help="Windows the history is cut into; only what held in "
                                         "all of them is kept.")] = 4,
) -> None:
    """Infer a draft suite from the history (several windows), for you to review and commit."""
    from gates.suite_init import infer_suite, write_suite

    cfg = _load(config)
    first, last = _date(start, "--from"), _date(end, "--to")
    try:
        explain: list[str] = []
        suite = infer_suite(cfg, first, last, margin=margin, windows=windows, explain=explain)
    except FileNotFoundError as exc:
        err.print(str(exc), style="red")
        raise typer.Exit(2) from None
    path = write_suite(suite, out or Path(cfg.expectations).with_suffix(".draft.json"))
    for line in explain:
        console.print(f"  {line}", highlight=False)
    console.print(f"suite draft: {len(suite['expectations'])} expectations written to {path}; "
                  "review it, then point `expectations:` at it and commit")


# History commands (backtest, calibrate, real-data) live in their own module.
from gates import backtest_cli  # noqa: E402

app.command("backtest")(backtest_cli.backtest)
app.command("calibrate")(backtest_cli.calibrate)
app.command("real-data")(backtest_cli.real_data)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
