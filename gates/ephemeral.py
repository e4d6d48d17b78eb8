"""Prefect's ephemeral API server dies with the process that started it.

With no PREFECT_API_URL, Prefect 3.8 starts a temporary API server as a child process
(`SubprocessASGIServer._run_uvicorn_command`, a plain `subprocess.Popen`) and stops it at exit
(atexit). A SIGKILLed `gates run` never reaches atexit, and the server lived on. Here the child
is started with Linux's PR_SET_PDEATHSIG: the kernel sends it SIGTERM when its parent dies.

PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so `start_ephemeral_api`
starts the server from the calling (main) thread before any flow runs; Prefect then reuses it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib
import signal
import subprocess
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class _PopenDyingWithParent:
    """`subprocess` as Prefect's server module sees it, with Popen tied to the parent's life."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    Popen = staticmethod(functools.partial(subprocess.Popen, preexec_fn=_die_with_parent))


def tie_ephemeral_server_to_this_process() -> bool:
    """Make Prefect's ephemeral server child die with us (Linux); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import prefect.server.api.server as server_module

    server_module.subprocess = _PopenDyingWithParent()
    return True


def start_ephemeral_api() -> str | None:
    """Start the ephemeral API now, from this thread, tied to this process; None with a server."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE

    if PREFECT_API_URL.value() or not PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value():
        return None
    tie_ephemeral_server_to_this_process()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server.api_url


def import_while_starting_api(modules: list[str]) -> dict[str, float]:
    """Start the ephemeral API (from this thread, see above) while `modules` import in another.

    The API server boots in its own process (its imports, the database check) while this process
    imports the flow's libraries; on two cores the two overlap instead of adding up (issue 13.3).
    Returns the seconds each part took; an import error is raised here, after the API started.
    """
    seconds: dict[str, float] = {}
    failed: list[BaseException] = []

    def load() -> None:
        started = time.perf_counter()
        try:
            for name in modules:
                importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failed.append(exc)
        seconds["imports"] = time.perf_counter() - started

    started = time.perf_counter()
    # The server module first (the parent needs it to spawn the server): imported alongside the
    # flow's libraries it would only share this process's GIL with them and spawn later. With a
    # server (PREFECT_API_URL) nothing starts, and the module is not needed at all.
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        import prefect.server.api.server  # noqa: F401

    loader = threading.Thread(target=load, name="gates-imports", daemon=True)
    loader.start()
    start_ephemeral_api()  # spawns at once, then polls /health (sleeping: the loader runs)
    seconds["api_start"] = time.perf_counter() - started
    loader.join()
    seconds["both"] = time.perf_counter() - started
    if failed:
        raise failed[0]
    return seconds
