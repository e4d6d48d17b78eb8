"""Crash safety and overlapping runs, with real `gates run` processes and real signals.

The runs share one MLflow store and registry. A pause point (GATES_PAUSE_AT, gates/pause.py)
holds a run at an exact step so SIGKILL lands there every time.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gates import tracking
from gates.config import load_config
from gates.promotion import lock_file, promote
from tests.conftest import RUN_DATE

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    from prefect.settings import get_current_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATES_PAUSE", "PYTEST"))}
    api = get_current_settings().api.url  # the test harness's server: no ephemeral start per process
    if api:
        env["PREFECT_API_URL"] = str(api)
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env.update(extra)
    return env


def _start(config: Path, tmp_path: Path, name: str, **extra: str) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / f"{name}.json"
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "gates.cli", "run", "--config", str(config),
         "--run-date", RUN_DATE.isoformat(), "--json", str(out)],
        env=_env(tmp_path, **extra), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, out


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float, text: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (text is None or text in path.read_text()):
            return
        if proc.poll() is not None:
            pytest.fail(f"process exited {proc.returncode} before {path.name} showed {text or 'up'}")
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"{path.name} did not show {text or 'up'} within {timeout} s")


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _registry(cfg) -> tuple[str | None, dict[str, dict]]:
    client = tracking.client(cfg)
    versions = {str(mv.version): dict(mv.tags) | {"run_id": mv.run_id}
                for mv in client.search_model_versions(f"name = '{cfg.mlflow.registered_model}'")}
    try:
        alias = str(client.get_model_version_by_alias(cfg.mlflow.registered_model, "champion").version)
    except Exception:  # noqa: BLE001 - no champion yet
        alias = None
    return alias, versions


def test_killed_runs_leave_the_registry_alone_and_overlapping_runs_take_turns(make_config, tmp_path):
    config = make_config(**{"promotion.wait_seconds": 300})
    cfg = load_config(config)
    timeout = 400

    # 1. a first run makes version 1 the champion
    first, first_out = _start(config, tmp_path, "first")
    assert first.wait(timeout=timeout) == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert _registry(cfg)[0] == "1"

    # 2. killed during export: files written, nothing verified or registered
    marker = tmp_path / "export.marker"
    killed, _ = _start(config, tmp_path, "export-kill", GATES_PAUSE_AT="export",
                       GATES_PAUSE_MARKER=str(marker))
    _wait_for(marker, killed, timeout)
    _kill(killed)
    alias, versions = _registry(cfg)
    assert alias == "1" and list(versions) == ["1"], versions

    # 3. two overlapping runs: A is killed mid-promotion (registered, alias not moved) while
    #    B waits for the lock; B then discards A's half-promotion and promotes.
    marker = tmp_path / "promote.marker"
    run_a, _ = _start(config, tmp_path, "a", GATES_PAUSE_AT="promote", GATES_PAUSE_MARKER=str(marker))
    _wait_for(marker, run_a, timeout)
    run_b, b_out = _start(config, tmp_path, "b")
    alias, versions = _registry(cfg)
    assert alias == "1" and versions["2"]["gates.promotion"] == "pending", versions
    holder = json.loads(lock_file(cfg).read_text())
    assert holder["pid"] == int(marker.read_text())
    _wait_for(tmp_path / "b.log", run_b, timeout, text="waiting up to")  # B waits for A's lock
    time.sleep(1)
    _kill(run_a)
    assert run_b.wait(timeout=timeout) == 0, (tmp_path / "b.log").read_text()[-3000:]

    summary = json.loads(b_out.read_text())
    alias, versions = _registry(cfg)
    assert summary["promoted_version"] == alias == "3"
    assert sorted(versions) == ["1", "3"], "the crashed run's pending version 2 is discarded"
    assert versions["3"]["gates.promotion"] == "done"
    assert any("promotion waited" in n for n in summary["notes"]), summary["notes"]
    assert any("discarded version(s) 2" in n for n in summary["notes"]), summary["notes"]


def _hold_file_lock(path: Path, ready: threading.Event, release: threading.Event) -> None:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write('{"pid": "other-process"}')
        handle.flush()
        ready.set()
        release.wait(30)


def test_second_promotion_is_refused_when_the_lock_wait_runs_out(make_config):
    cfg = load_config(make_config(**{"promotion.wait_seconds": 0.5}))
    path = lock_file(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    ready, release = threading.Event(), threading.Event()
    # flock locks belong to the open file, so a second open in this process contends like a process
    holder = threading.Thread(target=_hold_file_lock, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        outcome = promote(cfg, "models:/m-unused", "run-x", compared_with=None)
    finally:
        release.set()
        holder.join()
    assert outcome.version is None
    assert "another run is promoting" in outcome.refused and "other-process" in outcome.refused
    assert str(path) in outcome.refused and "0.5 s" in outcome.refused


def test_prefect_concurrency_limit_refuses_a_second_promotion(make_config):
    from gates.promotion import PromotionRefused, promotion_lock

    cfg = load_config(make_config(**{"promotion.lock": "prefect", "promotion.wait_seconds": 0.5}))
    with promotion_lock(cfg, "run-a") as (lock, waited):
        assert "promote-churn-demo" in lock and waited < 5
        with pytest.raises(PromotionRefused, match="Prefect global concurrency limit"):
            with promotion_lock(cfg, "run-b"):
                pass
    with promotion_lock(cfg, "run-c") as (_, waited):  # released: the next one gets it at once
        assert waited < 5
