"""The one place reports are rendered: markdown for Prefect and MLflow, rich for the CLI.

Every value interpolated here (gate summaries and evidence carry data values, file names and
exception text) goes through gates.safety: rendered as literal text, clipped, credentials redacted.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gates.results import GateReport, GateResult, Status
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


def _cell(value: Any) -> str:
    return value.markdown() if isinstance(value, Link) else _md(value, 1000)


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
    """The report; `verdict` overrides the gates' own (an interrupted run is neither).
    `context` values are escaped text, except a `Link` (ours: rendered as a link)."""
    context = context or {}
    first = diagnosis.root_cause if diagnosis is not None else headline(report)
    verdict = verdict or report.verdict
    lines = [f"# Retrain gates: **{_md(verdict.upper())}**", "", f"**{_md(first, 1000)}**", ""]
    if context:
        lines += ["| | |", "|---|---|"] + [f"| {_md(k)} | {_cell(v)} |" for k, v in context.items()] + [""]
    if diagnosis is not None:
        lines += diagnosis_markdown(diagnosis)
    if report.blocking:
        lines += ["## What blocked", ""]
        for r in report.blocking:
            lines += _detail(r)
    if report.warnings:
        lines += ["## Warnings", ""]
        for r in report.warnings:
            lines += _detail(r)
    lines += ["## Every gate", "", "| gate | family | status | summary | seconds |",
              "|---|---|---|---|---|"]
    for r in report.results:
        lines.append(f"| {_md(r.name)} | {r.family.value} | {ICONS[r.status]} {r.status.value} | "
                     f"{_md(r.summary, 200)} | {r.seconds:.2f} |")
    return "\n".join(lines) + "\n"


def diagnosis_markdown(d) -> list[str]:
    """Ranked causes, what changed, what is ruled out, what to check next."""
    lines: list[str] = []
    if d.hypotheses:
        lines += ["## Causes, ranked by evidence", ""]
        for i, h in enumerate(d.hypotheses, 1):
            lines.append(f"{i}. **\\[{_md(h.bucket)}\\] {_md(h.cause)}** ({_md(h.strength)}, "
                         f"gate {_md(h.gate)})")
            lines += [f"   - {_md(e)}" for e in h.evidence]
            lines += [f"   - against: {_md(e)}" for e in h.against]
            if h.explains:
                lines.append(f"   - explains: {_md('; '.join(h.explains), 600)}")
        lines.append("")
    lines += [f"## What changed since the last good run", ""]
    if d.compared_with is None:
        lines += ["First run (no champion yet): nothing to compare with.", ""]
    else:
        lines += [f"Compared with {_md(d.compared_with)}.", ""]
        real = [c for c in d.changes if c.what != "data content"]
        if real:
            lines += ["| what | before | after |", "|---|---|---|"]
            lines += [f"| {_md(c.what)} | {_md(c.before)} | {_md(c.after)} |" for c in real[:30]]
            if len(real) > 30:
                lines.append(f"| … {len(real) - 30} more | | |")
        else:
            lines.append("Nothing changed in data window, schema, code, parameters or libraries.")
        lines.append("")
    if d.ruled_out:
        lines += ["## Ruled out (gates that passed)", ""] + [f"- {_md(r)}" for r in d.ruled_out] + [""]
    if d.next_checks:
        lines += ["## Next checks", ""] + [f"{i}. {_md(c)}" for i, c in enumerate(d.next_checks, 1)] + [""]
    return lines


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


def _detail(r: GateResult) -> list[str]:
    out = [f"### {ICONS[r.status]} {_md(r.name)} ({r.family.value}, severity {r.severity.value})", "",
           _md(r.summary, 1000), ""]
    out += [f"- {_md(e, 1000)}" for e in r.evidence[:12]]  # a file path or column list and its partitions
    if r.measured:
        out.append(f"- measured: {_md(_kv(r.measured, 12), 1000)}")
    if r.threshold:
        out.append(f"- threshold: {_md(_kv(r.threshold, 12), 1000)}")
    if r.hint:
        out += ["", f"**Next:** {_md(r.hint, 1000)}"]
    return out + [""]


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
