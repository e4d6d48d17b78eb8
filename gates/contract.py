"""Great Expectations plumbing: load a suite from JSON, validate a frame, summarise failures.

Kept apart from the gates so the gate module reads as decisions, not GE set-up.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
import pandas as pd  # noqa: E402

logging.getLogger("great_expectations").setLevel(logging.ERROR)


def load_suite(path: Path) -> gx.ExpectationSuite:
    """A suite JSON kept in the repo; the error names the file."""
    try:
        raw = json.loads(Path(path).read_text())
        return gx.ExpectationSuite(**raw)
    except FileNotFoundError:
        raise FileNotFoundError(f"expectation suite not found: {path}") from None
    except Exception as exc:
        raise ValueError(f"expectation suite {path} is not a valid GE suite: {exc}") from None


@dataclass
class ExpectationFailure:
    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    unexpected_sample: list[Any] = field(default_factory=list)
    exception: str | None = None

    def describe(self) -> str:
        where = f"column {self.column!r}: " if self.column else ""
        what = self.expectation.removeprefix("expect_").replace("_", " ")
        parts = [f"{where}{what}"]
        if self.exception:
            parts.append(f"raised {self.exception}")
        if self.unexpected_count:
            parts.append(f"{self.unexpected_count} unexpected ({self.unexpected_percent:.2f}%)")
        if self.unexpected_sample:
            parts.append(f"e.g. {self.unexpected_sample[:5]!r}")
        elif self.observed is not None and not self.unexpected_count:
            parts.append(f"observed {_short(self.observed)}")
        return ", ".join(parts)


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_local = threading.local()


def _batch_definition() -> Any:
    """One ephemeral context per thread, reused: partitions validate in parallel threads."""
    if not hasattr(_local, "batch_definition"):
        for name in ("great_expectations", "great_expectations.data_context.types.base"):
            logging.getLogger(name).setLevel(logging.ERROR)
        context = gx.get_context(mode="ephemeral")
        try:
            context.variables.progress_bars = {"globally": False}
        except Exception:  # noqa: BLE001 - progress bars are cosmetic
            pass
        source = context.data_sources.add_pandas("frame_source")
        asset = source.add_dataframe_asset(name="frame")
        _local.batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    return _local.batch_definition


def validate_frame(
    suite: gx.ExpectationSuite, frame: pd.DataFrame, unexpected_samples: int = 5
) -> tuple[bool, list[ExpectationFailure], int]:
    """Validate one frame; return (success, failures, expectations evaluated).

    Each thread has its own ephemeral context, so partitions can be validated in parallel.
    """
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        suite,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": unexpected_samples},
    )
    failures = []
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        res = item.result or {}
        info = item.exception_info or {}
        exc_message = info.get("exception_message") if isinstance(info, dict) else None
        failures.append(
            ExpectationFailure(
                expectation=config.type,
                column=config.kwargs.get("column"),
                kwargs={k: v for k, v in config.kwargs.items() if k not in ("batch_id",)},
                observed=res.get("observed_value"),
                unexpected_count=res.get("unexpected_count"),
                unexpected_percent=res.get("unexpected_percent"),
                unexpected_sample=list(res.get("partial_unexpected_list") or [])[:unexpected_samples],
                exception=exc_message,
            )
        )
    return bool(result.success), failures, len(result.results)
