"""SIGINT and SIGTERM while a run is under way: the run ends with a verdict, never half-published.

Prefect turns SIGTERM into `TerminationSignal` and Python turns SIGINT into KeyboardInterrupt;
the flow catches both, publishes the verdict `interrupted` and re-raises. A few steps must not
be cut in the middle (moving the champion alias and tagging its version, writing the verdict):
they run with the signals held, and a signal that arrived meanwhile is delivered right after.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(exc: BaseException) -> str:
    """SIGINT for KeyboardInterrupt, the signal's name for Prefect's TerminationSignal."""
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT"
    number = getattr(exc, "signal", None)
    try:
        return signal.Signals(number).name
    except (TypeError, ValueError):
        return type(exc).__name__


def interruption_types() -> tuple[type[BaseException], ...]:
    from prefect.exceptions import TerminationSignal

    return (KeyboardInterrupt, TerminationSignal)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block; deliver the first one that arrived afterwards.

    Only the main thread can set handlers; elsewhere (a Prefect worker thread) this is a no-op,
    since signals are delivered to the main thread anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum, frame) -> None:  # noqa: ARG001 - the signal handler signature
        received.append(signum)

    previous = {s: signal.signal(s, hold) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            signal.raise_signal(received[0])  # now, to the handler that was there before
