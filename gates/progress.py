"""Stage and gate events from the flow to whoever listens (the CLI's live display).

The flow calls `emit` as stages start and finish and as gates give their verdicts; a listener
registered with `listening` (in the same process: `gates run` runs the flow in-process) receives
each event. No listener, nothing happens; a listener that raises never breaks a run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str  # "stage-started" | "stage-finished" | "gate"
    name: str
    info: dict[str, Any] = field(default_factory=dict)


_listeners: list[Callable[[Event], None]] = []
_lock = threading.Lock()


def emit(kind: str, name: str, **info: Any) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(Event(kind, name, info))
        except Exception:  # noqa: BLE001 - a display must not fail a run
            pass


@contextlib.contextmanager
def listening(listener: Callable[[Event], None]) -> Iterator[None]:
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)
