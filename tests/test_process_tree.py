"""A SIGKILLed `gates run` leaves no process behind (issue 16.4): Prefect's ephemeral API server,
started as its child, dies with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from tests.conftest import REPO, RUN_DATE


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_sigkill_of_gates_run_leaves_no_ephemeral_server(make_config, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PYTEST"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    run = subprocess.Popen([sys.executable, "-m", "gates.cli", "run", "--config", str(make_config()),
                            "--run-date", RUN_DATE.isoformat()], env=env, cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        parent = psutil.Process(run.pid)

        def server_child():
            kids = [p for p in parent.children(recursive=True) if "uvicorn" in " ".join(p.cmdline())]
            return kids[0] if kids else None

        server = _wait_for(server_child, 300, "gates run to start its ephemeral Prefect API")
        descendants = parent.children(recursive=True)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL
    _wait_for(lambda: all(_gone(p.pid) for p in descendants), 60,
              f"the children of the killed run to exit (server pid {server.pid})")
