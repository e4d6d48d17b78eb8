"""Nothing runs, renders or leaks that should not (issue 15 items 1-3, issue 17 item 4).

- a champion whose files were rewritten after promotion is never loaded (a malicious pickle's
  marker never appears), the run blocks with champion_integrity, the alias stays;
- hostile data values render as literal text in every report (checked with a real markdown
  renderer), and a 5 MB value neither crashes nor slows the plots;
- a password in the tracking URI appears in no MLflow artifact, tag or param, nor in the Prefect
  logs and artifacts of the run;
- an unreachable tracking server stops the run within seconds, exit 3, one redacted line.
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import pickle
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from gates import model_integrity, safety, tracking
from gates.config import load_config
from gates.errors import EXIT_INFRASTRUCTURE, InfrastructureError
from gates.results import Status
from tests.conftest import REPO, RUN_DATE, harness_env, run_flow

HOSTILE = [
    "![x](http://example.invalid/p.png)",
    "<img src=x onerror=alert(1)>",
    "[t](javascript:alert(1))",
    "[nan, nan]",
    "[bold red]markup[/bold red]",
    "<script>alert(1)</script>",
    "line\nbreak | cell # heading",
]
PASSWORD = "s3cretPassw0rd"


def _render(markdown: str) -> str:
    """What a GFM-ish renderer (markdown-it, tables on, raw HTML allowed) makes of it."""
    return MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table").render(markdown)


def _assert_inert(html: str, ours: tuple[str, ...] = ()) -> None:
    """Nothing live in the HTML but the links we built ourselves (`ours`: our run's page, whose
    anchor is `<a href="url">run id</a>`, and its Data Docs; markup on purpose, not a data value)."""
    from flows.publisher import DATA_DOCS_LINK

    for url in ours:
        html = re.sub(rf'<a href="{re.escape(url)}">(?:[0-9a-f]+|{re.escape(DATA_DOCS_LINK)})</a>', "", html)
    assert "<a " not in html and "<img" not in html and "<script" not in html, html[:3000]
    assert not re.search(r"<(?!/?(p|h\d|ul|ol|li|strong|em|table|thead|tbody|tr|th|td|code|pre|br|hr)\b)"
                         r"[a-z]", html), html[:3000]


# --------------------------------------------------------------------------- escaping, unit


@pytest.mark.parametrize("value", [*HOSTILE, b"\xff\xfe not utf-8", "lone \udcff surrogate",
                                   "\x1b[31mred\x1b[0m \u202eevil", "x" * 100_000])
def test_untrusted_values_render_as_literal_text(value):
    html = _render(f"| a | b |\n|---|---|\n| {safety.md(value)} | ok |\n\n{safety.md(value)}\n")
    _assert_inert(html)
    assert "\x1b" not in html and "\u202e" not in html
    assert len(safety.md(value)) < 1000  # clipped before escaping
    if isinstance(value, str) and len(value) < 100 and value.isprintable():
        assert safety.clip(value) in html.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") \
            .replace("&quot;", '"')  # the text itself survives, as text


def test_rich_output_shows_markup_literally():
    from rich.console import Console

    console = Console(record=True, width=200, color_system=None)
    for value in HOSTILE:
        console.print(f"[red]{safety.rich(value)}[/]")
    text = console.export_text()
    assert "[nan, nan]" in text and "[bold red]markup[/bold red]" in text


def test_a_5mb_category_value_plots_in_seconds():
    from gates.plots import drift_figure

    huge = "W" * 5_000_000
    data = {"kind": "categorical", "categories": [huge, "$\\frac{1}{0}$", *map(str, range(200))],
            "reference": [5, 1, *range(200)], "current": [1, 5, *range(200)]}
    started = time.monotonic()
    fig = drift_figure(huge, data, reason=huge)
    fig.savefig(os.devnull, format="png")
    assert time.monotonic() - started < 60  # unclipped it overflowed the rasterizer after minutes
    assert len(fig.axes[0].get_xticklabels()) <= 30


def test_credentials_are_redacted_everywhere_in_text():
    text = f"postgresql://user:{PASSWORD}@db:5432/m http://a:{PASSWORD}@h/x?token={PASSWORD}&a=1"
    out = safety.redact(text)
    assert PASSWORD not in out and "postgresql://user:***@db:5432/m" in out and "a=1" in out
    assert PASSWORD not in str(safety.redact_tree({"k": [text], text: 1}))


# --------------------------------------------------------------------------- fail fast


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_unreachable_tracking_server_fails_fast_with_exit_3(make_config, tmp_path):
    uri = f"http://user:{PASSWORD}@127.0.0.1:{_closed_port()}"
    cfg = load_config(make_config(**{"mlflow.tracking_uri": uri}))
    started = time.monotonic()
    with pytest.raises(InfrastructureError) as info:
        tracking.configure(cfg)
    assert time.monotonic() - started < 30
    assert PASSWORD not in str(info.value) and "user:***@127.0.0.1" in str(info.value)

    config = make_config(name="cli.yaml", **{"mlflow.tracking_uri": uri})
    env = harness_env()
    done = subprocess.run([sys.executable, "-m", "gates.cli", "run", "--config", str(config),
                           "--run-date", RUN_DATE.isoformat()], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=env)
    assert done.returncode == EXIT_INFRASTRUCTURE, done.stdout + done.stderr
    out = (done.stdout + done.stderr).strip()
    assert PASSWORD not in out and "Traceback" not in out and len(out.splitlines()) <= 3, out
    assert "unreachable" in out and "user:***@" in out


# --------------------------------------------------------------------------- champion integrity


class _Payload:
    """Unpickling it writes a marker file: proof that the pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "the pickle ran"))


def _stored_model_file(cfg, version: str) -> Path:
    import mlflow

    tracking.configure(cfg)
    stored = Path(mlflow.artifacts.download_artifacts(f"models:/{cfg.mlflow.registered_model}/{version}"))
    return next(stored.glob("model.pkl"))


@pytest.mark.xdist_group("security-integrity")
def test_a_rewritten_champion_is_never_loaded(make_config, tmp_path):
    config = make_config()
    cfg = load_config(config)
    state, first = run_flow(config)
    assert state.is_completed(), state.message
    client = tracking.client(cfg)
    mv = client.get_model_version(cfg.mlflow.registered_model, "1")
    recorded = model_integrity.recorded_checksums
    assert mv.tags[model_integrity.CHECKSUM_TAG], mv.tags
    assert client.get_run(first.mlflow_run_id).data.tags["gates.verdict"] == "passed"

    # a clean champion verifies and is compared with
    verified = model_integrity.verify(cfg, "1", tmp_path / "check")
    assert verified.ok and set(verified.recorded) >= {"MLmodel", "model.pkl"}, verified
    assert model_integrity.check_champion_integrity(verified, None).status is Status.PASS

    # an attacker with write access to the artifact store replaces the model pickle
    marker = tmp_path / "pwned.txt"
    _stored_model_file(cfg, "1").write_bytes(pickle.dumps(_Payload(marker)))
    state, second = run_flow(config)
    assert not state.is_completed()
    gate = second.report.by_name("champion_integrity")
    assert gate is not None and gate.status is Status.FAIL and "model.pkl" in gate.summary, gate
    assert "modified after promotion" in second.headline, second.headline
    assert not marker.exists(), "the replaced champion pickle was executed"
    assert str(client.get_model_version_by_alias(cfg.mlflow.registered_model, "champion").version) == "1"
    with pytest.raises(model_integrity.IntegrityError):
        model_integrity.load_verified(cfg, "1", tmp_path / "load")
    assert not marker.exists()
    del recorded

    # a champion promoted before checksums were recorded: stated, not loaded; or blocked if asked
    client.delete_model_version_tag(cfg.mlflow.registered_model, "1", model_integrity.CHECKSUM_TAG)
    unverified = model_integrity.verify(cfg, "1", tmp_path / "old")
    assert unverified.recorded is None and not unverified.ok
    warned = model_integrity.check_champion_integrity(
        unverified, None, model_integrity.ChampionIntegrityGate(unverified="warn"))
    assert warned.status is Status.WARN and "before checksums were recorded" in warned.summary
    assert model_integrity.check_champion_integrity(
        unverified, None, model_integrity.ChampionIntegrityGate(unverified="block")).status is Status.FAIL
    with pytest.raises(model_integrity.IntegrityError, match="no recorded checksums"):
        model_integrity.load_verified(cfg, "1", tmp_path / "load2")
    assert not marker.exists()


# --------------------------------------------------------------------------- hostile values, secrets


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server on loopback (no auth: it ignores the URI's userinfo)."""
    port = _free_port()
    root = tmp_path / "server"
    root.mkdir()
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    deadline = time.monotonic() + 300
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield f"http://gates:{PASSWORD}@127.0.0.1:{port}", root
    os.killpg(proc.pid, 15)
    proc.wait(timeout=60)
    log.close()


def _plant_hostile_values(data_dir: Path) -> None:
    """The newest partition's region column carries hostile category values (and a 5 MB one)."""
    newest = sorted(data_dir.glob("*/part-0.parquet"))[-1]
    frame = pd.read_parquet(newest)
    values = [*HOSTILE, "W" * 5_000_000]
    column = frame["region"].astype(object)
    for i, value in enumerate(values):
        column.iloc[i * 3] = value
    frame["region"] = column.astype(str)
    frame.to_parquet(newest, index=False)


def _prefect_logs_and_artifacts(flow_run_id: str) -> tuple[str, list[str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, \
        LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    text = "\n".join(log.message for log in logs)
    return text, {a.type: str(a.data) for a in artifacts}


@pytest.mark.xdist_group("security-server")
def test_hostile_values_render_inert_and_the_password_leaks_nowhere(make_config, data_dir, mlflow_server,
                                                                    tmp_path):
    import mlflow

    uri, server_root = mlflow_server
    _plant_hostile_values(data_dir)
    config = make_config(**{"mlflow.tracking_uri": uri, "promotion.lock": "prefect"})
    state, summary = run_flow(config)
    assert not state.is_completed(), "the hostile categories must block (contract)"
    assert summary.report.by_name("contract").status is Status.FAIL
    assert PASSWORD not in summary.model_dump_json() and "127.0.0.1" in summary.tracking_uri

    # the rendered report: the values are there, as text, and nothing is live
    html = _render(summary.report_markdown)
    docs = f"{summary.mlflow_run_url}/artifacts/gates/data_docs/index.html"
    ours = (summary.mlflow_run_url, docs)  # the report links to the run's page and its Data Docs
    assert summary.mlflow_run_url.startswith("http") and f'<a href="{summary.mlflow_run_url}">' in html
    assert f'<a href="{docs}">' in html
    _assert_inert(html, ours)
    assert "![x](http" in html.replace("&quot;", '"') or "!\\[x" in summary.report_markdown

    # MLflow: every tag, param and artifact of the run
    cfg = load_config(config)
    tracking.configure(cfg)
    client = tracking.client(cfg)
    run = client.get_run(summary.mlflow_run_id)
    assert run.data.tags["gates.verdict"] == "blocked"
    assert PASSWORD not in repr(run.data.tags) and PASSWORD not in repr(run.data.params)
    assert len(run.data.params) < 40, sorted(run.data.params)  # not ~140 params any more
    local = Path(mlflow.artifacts.download_artifacts(run_id=summary.mlflow_run_id, dst_path=str(tmp_path / "a")))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert any(p.name == "pipeline.yaml" for p in files) and any(p.name == "report.md" for p in files)
    for path in files:
        assert PASSWORD.encode() not in path.read_bytes(), path
    config_text = (local / "config" / "pipeline.yaml").read_text()
    assert "gates:***@127.0.0.1" in config_text
    pages = [p.read_text() for p in (local / "gates" / "data_docs").rglob("*.html")]
    assert len(pages) >= 2 and any("&lt;img src=x onerror=alert(1)&gt;" in p for p in pages)  # sampled
    assert not any("<script>alert(1)" in p or "<img src=x" in p or "W" * 400 in p for p in pages)
    report_md = (local / "gates" / "report.md").read_text()
    _assert_inert(_render(report_md), ours)
    assert len(report_md) < 300_000, "the 5 MB value is clipped in the report"

    # Prefect: the run's logs and artifacts
    logs, artifacts = _prefect_logs_and_artifacts(run.data.tags["prefect.flow_run_id"])
    assert logs and PASSWORD not in logs
    assert {"markdown", "table"} <= set(artifacts), artifacts.keys()
    assert all(PASSWORD not in data for data in artifacts.values())
    _assert_inert(_render(artifacts["markdown"]), ours)
    # and the server's own store never saw it in a param, tag or artifact either
    for path in (server_root / "artifacts").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert dt.date.fromisoformat(summary.run_date) == RUN_DATE
