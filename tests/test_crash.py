"""Crash safety and overlapping runs, with real `gates run` processes and real signals.

The runs share one MLflow store and registry. A pause point (GATES_PAUSE_AT, gates/pause.py)
holds a run at an exact step so the signal lands there every time. Tests wait on files (the
pause marker, the lock's waiting file), process exits and registry state, never on log lines
within a fixed time; bounds are generous (a loaded CI machine).

Invariants after every signal: the champion is the version it was, or a version whose run wrote
`gates.verdict=passed` and whose files have recorded checksums (never an unverified model); an
interrupted run (SIGINT, SIGTERM) is tagged `interrupted`, has a report and is KILLED in MLflow.
"""

from __future__ import annotations

import contextlib
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
from tests.conftest import RUN_DATE, harness_env

pytestmark = pytest.mark.slow
TIMEOUT = 900  # seconds: a bound for a loaded machine, not a wait
_STARTED: list[subprocess.Popen] = []  # every run this module started, killed at teardown if alive


@pytest.fixture(autouse=True, scope="module")
def _no_orphan_runs():
    """Runs live in their own session (a signal to pytest must not reach them), so a failed or
    interrupted test would leave them running: kill every process group still alive at the end."""
    yield
    for proc in _STARTED:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in harness_env().items() if not k.startswith("GATES_PAUSE")}
    return env | {"PREFECT_HOME": str(tmp_path / "prefect-home")} | extra


def _start(config: Path, tmp_path: Path, name: str, **extra: str) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / f"{name}.json"
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "gates.cli", "run", "--config", str(config),
         "--run-date", RUN_DATE.isoformat(), "--json", str(out)],
        env=_env(tmp_path, **extra), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_default_sigint)
    _STARTED.append(proc)
    return proc, out


def _default_sigint() -> None:
    """A run started from a background job inherits SIGINT ignored (shells do that), and Python
    then never installs its handler: the run a user stops with Ctrl-C is started in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


def _wait_for_any(folder: Path, name: str, proc: subprocess.Popen, timeout: float) -> None:
    """Until `folder/name` exists (a state on disk), or fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not (folder / name).exists():
        if proc.poll() is not None:
            pytest.fail(f"process exited {proc.returncode} before {name} appeared")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{name} did not appear within {timeout} s")
        time.sleep(0.2)


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
    timeout = TIMEOUT

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
    _wait_for_any(lock_file(cfg).parent, f"{lock_file(cfg).name}.waiting.{run_b.pid}", run_b, timeout)
    _kill(run_a)  # B is waiting on the lock (its waiting file is there): A dies holding it
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


@contextlib.contextmanager
def _lock_held_elsewhere(path: Path):
    """Another holder of the promotion's file lock until the block ends (or sets the yielded
    event). flock locks belong to the open file, so a second open in this process contends like
    a process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ready, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_file_lock, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        yield release
    finally:
        release.set()
        holder.join()


def test_second_promotion_is_refused_when_the_lock_wait_runs_out(make_config):
    cfg = load_config(make_config(**{"promotion.wait_seconds": 0.5}))
    path = lock_file(cfg)
    with _lock_held_elsewhere(path):
        outcome = promote(cfg, "models:/m-unused", "run-x", compared_with=None)
    assert outcome.version is None
    assert "another run is promoting" in outcome.refused and "other-process" in outcome.refused
    assert str(path) in outcome.refused and "0.5 s" in outcome.refused


def test_a_second_promotion_waits_for_the_file_lock_and_then_holds_it(make_config):
    from gates.promotion import promotion_lock, waiting_file

    cfg = load_config(make_config(**{"promotion.wait_seconds": 60}))
    path = lock_file(cfg)

    def release_once_waiting(release: threading.Event) -> None:  # the other run lets go once this one waits
        deadline = time.monotonic() + 30
        while not waiting_file(path).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        release.set()

    with _lock_held_elsewhere(path) as release:
        releaser = threading.Thread(target=release_once_waiting, args=(release,))
        releaser.start()
        try:
            with promotion_lock(cfg, "run-b") as (lock, waited):
                assert lock == f"file lock {path}" and 0 < waited < 30
                assert json.loads(path.read_text())["mlflow_run_id"] == "run-b"  # the holder says who
                assert not waiting_file(path).exists()
        finally:
            release.set()
            releaser.join()
    with promotion_lock(cfg, "run-c") as (_, waited):  # released: the next one gets it at once
        assert waited == 0.0


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


# --------------------------------------------------------------------------- a signal at every step
# One shared store per test worker: a first run makes the champion, then each test stops one run
# at one pause point. Two xdist groups spread the points over CI's two workers.

INTERRUPTS = [  # (point, signal): the run publishes `interrupted` and exits
    ("start", signal.SIGINT), ("ingest", signal.SIGINT), ("gates.data", signal.SIGINT),
    ("split", signal.SIGTERM), ("train", signal.SIGINT), ("gates.model", signal.SIGINT),
    ("export", signal.SIGINT), ("gates.artifact", signal.SIGTERM), ("promote", signal.SIGINT),
    ("promoted", signal.SIGINT),
]
KILLS = ["gates.leakage", "evaluate", "promote", "promoted", "publish"]  # SIGKILL: nothing runs after
# `make test` stops runs at ten points (eight interrupts, two kills, every stage boundary that
# touches the registry); `make test-all` at all fifteen.
EXTENDED = {("ingest", "SIGINT"), ("gates.model", "SIGINT"), ("gates.leakage", "SIGKILL"),
            ("evaluate", "SIGKILL"), ("promoted", "SIGKILL")}


def _points(points: list[tuple[str, signal.Signals]]) -> list:
    return [pytest.param(point, sig, id=point, marks=[pytest.mark.extended] if (point, sig.name) in EXTENDED else [])
            for point, sig in points]


@pytest.fixture(scope="module")
def store(tmp_path_factory, clean_data):
    """A config, data and MLflow store shared by the signal tests of this worker, with a champion."""
    import shutil

    import yaml

    from tests.conftest import demo_config

    root = tmp_path_factory.mktemp("signals")
    data = root / "data" / "churn"
    shutil.copytree(clean_data, data)
    config = root / "pipeline.yaml"
    config.write_text(yaml.safe_dump(demo_config(root, data, **{"promotion.wait_seconds": 300})))
    proc, _ = _start(config, root, "champion")
    assert proc.wait(timeout=TIMEOUT) == 0, (root / "champion.log").read_text()[-3000:]
    return config, root


def _latest_run(cfg):
    client = tracking.client(cfg)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=1)[0]


def _assert_champion_verified(cfg, before: str | None) -> str | None:
    """The champion is the one before, or a version whose run passed and whose files are recorded."""
    from gates.model_integrity import CHECKSUM_TAG

    alias, versions = _registry(cfg)
    if alias != before:
        run = tracking.client(cfg).get_run(versions[alias]["run_id"])
        assert run.data.tags.get("gates.verdict") == "passed", (alias, run.data.tags)
        assert versions[alias].get(CHECKSUM_TAG), versions[alias]
    return alias


def _stop_at(store, point: str, sig: signal.Signals, label: str):
    config, root = store
    cfg = load_config(config)
    before, _ = _registry(cfg)
    marker = root / f"{label}.marker"
    proc, _ = _start(config, root, label, GATES_PAUSE_AT=point, GATES_PAUSE_MARKER=str(marker),
                     GATES_PAUSE_SECONDS="600")
    _wait_for(marker, proc, TIMEOUT)
    if sig is signal.SIGKILL:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)  # the run's own process, as a scheduler or Ctrl-C would
    code = proc.wait(timeout=TIMEOUT)
    return cfg, before, code, (root / f"{label}.log").read_text()


def _signal_test(store, point, sig):
    cfg, before, code, log = _stop_at(store, point, sig, f"{sig.name}-{point}")
    # SIGINT: the CLI exits 130; SIGTERM: 143, or Prefect re-delivers it once the run is over
    assert code in ((130,) if sig is signal.SIGINT else (143, -signal.SIGTERM)), (code, log[-3000:])
    run = _latest_run(cfg)
    tags = run.data.tags
    after = _assert_champion_verified(cfg, before)
    if point == "promoted":  # the alias had moved: the promotion is complete and says so
        assert tags["gates.verdict"] == "passed" and after != before, tags
    else:
        assert tags["gates.verdict"] == "interrupted", (point, tags.get("gates.verdict"), log[-3000:])
        assert after == before, f"an interrupted run moved the champion ({before} -> {after})"
        import mlflow

        report = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/gates/report.json")
        stopped = next(r for r in report["results"] if r["name"] == "interrupted")
        assert stopped["measured"]["stopped_at"] == point and stopped["measured"]["signal"] == sig.name
        assert "gates/report.md" in {a.path for a in tracking.client(cfg).list_artifacts(run.info.run_id, "gates")}
    assert run.info.status == "KILLED", run.info.status
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.xdist_group("crash-signals-a")
@pytest.mark.parametrize(("point", "sig"), _points(INTERRUPTS[:5]))
def test_a_signal_early_in_a_run_publishes_interrupted(store, point, sig):
    _signal_test(store, point, sig)


@pytest.mark.xdist_group("crash-signals-b")
@pytest.mark.parametrize(("point", "sig"), _points(INTERRUPTS[5:]))
def test_a_signal_late_in_a_run_publishes_interrupted(store, point, sig):
    _signal_test(store, point, sig)


@pytest.mark.xdist_group("crash-signals-a")
@pytest.mark.parametrize(("point", "sig"), _points([(k, signal.SIGKILL) for k in KILLS]))
def test_sigkill_never_leaves_an_unverified_champion(store, point, sig):
    cfg, before, code, log = _stop_at(store, point, sig, f"KILL-{point}")
    assert code == -signal.SIGKILL
    after = _assert_champion_verified(cfg, before)
    if point in ("gates.leakage", "evaluate", "promote"):
        assert after == before
    if point == "publish":  # killed after the verdict tag, before the report: the verdict is there
        assert _latest_run(cfg).data.tags.get("gates.verdict") in ("passed", "blocked")


@pytest.mark.xdist_group("crash-signals-b")
def test_read_only_artifact_store_blocks_with_a_verdict_then_the_next_run_promotes(store):
    import shutil
    import subprocess as sp

    config, root = store
    cfg = load_config(config)
    before, _ = _registry(cfg)
    experiment_dir = Path(cfg.mlflow.artifact_root).resolve() / cfg.mlflow.experiment
    if shutil.which("chattr") is None or sp.run(["chattr", "+i", str(experiment_dir)]).returncode != 0:
        pytest.skip("needs chattr +i (root on ext4) to make the artifact store read-only")
    try:
        proc, out = _start(config, root, "read-only")
        code = proc.wait(timeout=TIMEOUT)
    finally:
        sp.run(["chattr", "-i", str(experiment_dir)], check=True)
    log = (root / "read-only.log").read_text()
    assert code == 1, log[-3000:]
    run = _latest_run(cfg)
    assert run.data.tags["gates.verdict"] == "blocked", run.data.tags
    assert "gates.publish_failures" in run.data.tags  # the report could not be stored; it says so
    assert _registry(cfg)[0] == before

    proc, out = _start(config, root, "after-read-only")
    assert proc.wait(timeout=TIMEOUT) == 0, (root / "after-read-only.log").read_text()[-3000:]
    summary = json.loads(out.read_text())
    assert _registry(cfg)[0] == summary["promoted_version"] != before
    assert _assert_champion_verified(cfg, before) == summary["promoted_version"]
