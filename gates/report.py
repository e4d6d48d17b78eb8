"""The one place reports are rendered: markdown for Prefect and MLflow, rich for the CLI.

The markdown layout is in Jinja2 templates (gates/templates/*.md.j2). Every value interpolated
(gate summaries and evidence carry data values, file names and exception text) goes through
gates.safety: rendered as literal text, clipped, credentials redacted.
"""

from __future__ import annotations

import functools
import math
import numbers
import urllib.parse
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from gates.results import GateReport, Status
from gates.safety import cell, md, plain, redact, rich

ICONS = {Status.PASS: "✅", Status.WARN: "⚠️", Status.FAIL: "❌", Status.ERROR: "💥"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _md(value: Any, limit: int = 300) -> str:
    return md(_fmt(value), limit)


@dataclass(frozen=True)
class Link:
    """A link the pipeline builds itself (its own run id, its tracking server's page or report
    file): markup on purpose, unlike every data value, which `_md` renders as literal text.

    Only an http(s) URL, a `file:` URI or an absolute file path becomes a link; anything else
    (an S3 or `mlflow-artifacts:` URI, a bare run id) is shown as escaped text."""

    text: str
    url: str

    def markdown(self) -> str:
        target = _link_target(self.url)
        label = md(self.text, 200)
        if target and label:
            return f"[{label}]({target})"
        shown = f"{self.text} ({self.url})" if self.url and self.url != self.text else self.text
        return md(shown, 1000)


def _link_target(url: str) -> str:
    """The URL as a markdown link destination, or "" if it is not one we link to: no
    credentials, and spaces, parentheses, angle brackets and quotes percent-encoded."""
    url = (url or "").strip()
    if url.startswith("/"):
        url = Path(url).as_uri()
    scheme = urllib.parse.urlsplit(url).scheme.lower() if url else ""
    if scheme not in ("http", "https", "file") or any(c in url for c in "\r\n\t"):
        return ""
    return urllib.parse.quote(redact(url), safe=":/?#@!$&*+,;=%~-._[]")


# --------------------------------------------------------------------------- templates
#
# The markdown layout lives in gates/templates/*.md.j2 (package data). Jinja's own autoescape
# writes HTML entities, which markdown does not turn into literal text; instead every
# `{{ value }}` goes through `finalize`, which escapes it with gates.safety.md, unless it is
# `Markdown`: what the `md` filter escaped (with its own limit), one of our `Link`s, `ours` (our
# enum values, formatted numbers, the templates' own macros) or a `cell` of a table of numbers.
# A template that forgets a filter escapes too much, never too little.


class Markdown(str):
    """Markdown built here (escaped values, our links): the templates print it as is."""


def _escaped(value: Any, limit: int = 300) -> Markdown:
    if isinstance(value, Markdown):
        return value
    if isinstance(value, Link):
        return Markdown(value.markdown())
    return Markdown(_md(value, limit))


def _ours(value: Any) -> Markdown:
    """A value the pipeline made itself (an enum's value, a formatted number, a template's own
    macro): shown as is."""
    return Markdown(value.value if isinstance(value, Enum) else str(value))


def _table_cell(value: Any) -> Markdown:
    """A cell of a table of numbers and data: a number formatted here (NaN: n/a), any other value
    (a segment, a feature, a class) escaped."""
    if isinstance(value, numbers.Number):
        if isinstance(value, float) and math.isnan(value):
            return Markdown("n/a")
        return Markdown(f"{value:.4g}" if isinstance(value, float) else str(value))
    return _escaped(value)


@functools.cache
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gates", "templates"), autoescape=False, finalize=_escaped,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.filters.update(md=_escaped, ours=_ours, kv=_kv, cell=_table_cell)
    env.globals["icons"] = ICONS
    return env


def _template(name: str):
    return _environment().get_template(name)


def render(name: str, **values: Any) -> str:
    """Another section's template (gates/templates/`name`) with this module's escaping."""
    return _template(name).render(**values)


def _kv(values: dict[str, Any], limit: int = 6) -> str:
    items = list(values.items())
    text = ", ".join(f"{k}={_fmt(v)}" for k, v in items[:limit])
    return text + (f", +{len(items) - limit} more" if len(items) > limit else "")


def headline(report: GateReport) -> str:
    """One sentence: what blocked, or that everything passed."""
    if not report.blocked:
        warns = len(report.warnings)
        return "All blocking gates passed" + (f" ({warns} warning(s))" if warns else "")
    first = report.blocking[0]
    others = [r.name for r in report.blocking[1:]]
    tail = f" (also blocked: {', '.join(others)})" if others else ""
    return f"Blocked by gate '{first.name}' ({first.family.value}): {first.summary}{tail}"


def table_rows(report: GateReport) -> list[dict[str, str]]:
    """Rows for the Prefect table artifact."""
    return [
        {"gate": r.name, "family": r.family.value, "status": r.status.value,
         "severity": r.severity.value, "summary": cell(r.summary),
         "measured": cell(_kv(r.measured)), "threshold": cell(_kv(r.threshold)),
         "seconds": f"{r.seconds:.2f}"}
        for r in report.results
    ]


def markdown(report: GateReport, context: dict[str, Any] | None = None, diagnosis=None,
             verdict: str | None = None) -> str:
    """The report (gates/templates/report.md.j2); `verdict` overrides the gates' own (an
    interrupted run is neither). `context` values are escaped text, except a `Link` (ours:
    rendered as a link)."""
    first = diagnosis.root_cause if diagnosis is not None else headline(report)
    return _template("report.md.j2").render(report=report, context=context or {}, diagnosis=diagnosis,
                                            first=first, verdict=verdict or report.verdict)


def diagnosis_markdown(d) -> list[str]:
    """Ranked causes, what changed, what is ruled out, what to check next: the report's lines."""
    return _template("diagnosis.md.j2").render(diagnosis=d).split("\n")[:-1]


def rich_diagnosis(d):
    from rich.panel import Panel
    from rich.text import Text

    text = Text()
    for i, h in enumerate(d.hypotheses[:5], 1):
        text.append(plain(f"{i}. [{h.bucket}] {h.cause}"), style="bold")
        text.append(plain(f"  ({h.strength}, gate {h.gate})") + "\n")
        text.append(f"   {plain(h.evidence[0] if h.evidence else '')}\n", style="dim")
    changes = [c for c in d.changes if c.what != "data content"]
    if d.compared_with:
        text.append(plain(f"Changed since {d.compared_with}: "), style="bold")
        text.append(plain(", ".join(c.what for c in changes[:8]) or "nothing") + "\n")
    for i, c in enumerate(d.next_checks[:3], 1):
        text.append(plain(f"next {i}: {c}") + "\n")
    return Panel(text, title=rich(d.root_cause, 120), title_align="left")


def rich_table(report: GateReport):
    from rich.table import Table

    colors = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.ERROR: "magenta"}
    table = Table(title=f"Gates: {report.verdict}", show_lines=False)
    for col in ("gate", "family", "status", "summary"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        table.add_row(rich(r.name), r.family.value, f"[{colors[r.status]}]{r.status.value}[/]",
                      rich(r.summary, 160))
    return table
