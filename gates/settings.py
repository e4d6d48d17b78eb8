"""The base of every config block: strict (unknown fields are errors) and, for a gate, on/off
and block/warn.

A leaf module (it imports nothing of the pipeline), so each gate module can declare its own
settings model beside its check and gates/config.py can assemble them without an import cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from gates.results import Severity


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class GateSettings(Strict):
    enabled: bool = True
    severity: Severity = Severity.BLOCK
