"""Errors that are not a gate's verdict, and the exit codes the CLI gives them.

A blocked run is a verdict (exit 1). A config that cannot be used (exit 2) or a server that cannot
be reached (exit 3) is not: the run never judged the data or the model, so it must not look like a
block in a scheduler's history.
"""

from __future__ import annotations

EXIT_PROMOTED = 0
EXIT_BLOCKED = 1
EXIT_BAD_CONFIG = 2
EXIT_INFRASTRUCTURE = 3


class InfrastructureError(RuntimeError):
    """A tracking server, Prefect API or store that cannot be reached or written (exit 3).

    The message names the URI with credentials redacted and says what was tried.
    """
