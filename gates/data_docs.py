"""GE Data Docs of the contract's validation: one static site per run, for people to open.

The contract validates a window in a few GE calls (gates/contract.py) and keeps GE's own
results per schema group of partitions (`GroupResults`, shaped by `for_docs`: row index lists
dropped, data values clipped, redacted and HTML-escaped, since GE 1.24 prints table cells raw).
`build` turns them into GE's Data Docs: a filesystem site of an ephemeral context
(`add_data_docs_site`, `build_data_docs`) with `index.html` and one validation page per schema
group. The publisher logs the folder to the MLflow run (gates/data_docs/) and the report links to
its index. Building them never changes a verdict: the contract gate records a failure to build
as text (`data_docs_error`), and the report says so.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gates.safety import html

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

SITE = "run"
ARTIFACT_PATH = "gates/data_docs"  # where the publisher logs the site in the MLflow run
# Row indices of the concatenated window mean nothing to a reader (failures name partitions),
# and COMPLETE lists every one: left out of what Data Docs show.
_INDEX_KEYS = ("unexpected_list", "unexpected_index_list", "partial_unexpected_index_list",
               "unexpected_index_query")


@dataclass
class GroupResults:
    """GE's results for one schema group of partitions, shaped for Data Docs by `for_docs`."""

    suite: str
    partitions: list[str]
    results: list[Any]


def _inert(value: Any, limit: int) -> Any:
    """Every string of a result (data values, column names, exception text) through
    `safety.html`; numbers and None as they are."""
    if isinstance(value, str):
        return html(value, limit)
    if isinstance(value, dict):
        return {k: _inert(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_inert(v, limit) for v in value]
    return value


def for_docs(item: Any) -> Any:
    """A GE result as Data Docs show it: its own copy, without row index lists, values inert."""
    from great_expectations.core import ExpectationValidationResult

    return ExpectationValidationResult(
        success=item.success, expectation_config=copy.deepcopy(item.expectation_config),
        result={k: _inert(v, 300) for k, v in (item.result or {}).items() if k not in _INDEX_KEYS},
        exception_info=_inert(item.exception_info or {}, 2000), meta=dict(item.meta or {}))


def row_count_result(expectation: Any, rows: dict[str, int], outside: set[str]) -> Any:
    """The suite's row-count expectation over a group of partitions, judged per partition (as the
    contract does: GE checks a frame of row counts); `outside`: partitions out of its range."""
    from great_expectations.core import ExpectationValidationResult

    bad = [name for name in rows if name in outside]
    observed = f"{min(rows.values())}..{max(rows.values())} rows per partition" + (
        f"; outside the range: {', '.join(bad[:10])}" + (" …" if len(bad) > 10 else "") if bad else "")
    return ExpectationValidationResult(success=not bad, expectation_config=expectation.configuration,
                                       result={"observed_value": observed})


def _span(group: GroupResults) -> str:
    """The group's partitions as a page name: first..last."""
    first, last = group.partitions[0], group.partitions[-1]
    return first if first == last else f"{first}..{last}"


def build(groups: list[GroupResults], folder: Path, run_name: str) -> Path:
    """GE's Data Docs of these results in `folder` (created); returns the site's index.html."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier, ValidationResultIdentifier)
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    if not groups:
        raise ValueError("no validation results to render (the contract validated nothing)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(SITE, {
        "class_name": "SiteBuilder", "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    run_id = RunIdentifier(run_name=html(run_name, 100), run_time=dt.datetime.now(dt.UTC))
    for group in groups:
        stats = calc_validation_statistics(group.results)
        span = _span(group)
        validation = ExpectationSuiteValidationResult(
            success=all(r.success for r in group.results), results=group.results,
            suite_name=group.suite,
            statistics={"evaluated_expectations": stats.evaluated_expectations,
                        "successful_expectations": stats.successful_expectations,
                        "unsuccessful_expectations": stats.unsuccessful_expectations,
                        "success_percent": stats.success_percent},
            meta={"great_expectations_version": gx.__version__, "run_id": run_id.to_json_dict(),
                  "batch_spec": {"data_asset_name": f"{span} ({len(group.partitions)} partitions)",
                                 "partitions": ", ".join(group.partitions)}})
        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=group.suite), run_id, span)
        context.validation_results_store.set(key, validation)
    context.build_data_docs(site_names=[SITE])
    # GE copies its tutorial animations (3.4 MB of 4 MB) into every site; no page shows them.
    for gif in (folder / "static" / "images").glob("*.gif"):
        gif.unlink()
    index = folder / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"GE built no {index}")
    return index
