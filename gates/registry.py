"""The gate registry: one declared object per gate, and everything derived from it.

A gate is declared once, beside its check (`GATES = [Gate(...), ...]` in a gate module listed
in GATE_MODULES): its name, family, the stage it runs in, its settings model (with
its defaults), the run's values it reads, the check, what its failure means for the diagnosis,
its hint, what a reader of the README is told it blocks, and the faults that prove it.

Derived from here, never written again: the stage plans (`plan`), the config's `gates:` section
(`gates_config`), the diagnosis' cause table (`causes`), the README gates table (`readme_table`)
and the fault catalogue's expected gates (tests/test_registry.py keeps them in step).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from gates.results import Family, GateResult, GateSpec
from gates.settings import GateSettings, Strict

Bucket = Literal["data", "model", "pipeline"]
# The gate stages, in the order the flow runs them (each after the step that feeds it).
GATE_STAGES = ("data", "leakage", "model", "artifact")
# Modules that declare gates; their order is the order gates run and are reported within a stage.
GATE_MODULES = ("gates.data_gates", "gates.leakage_gates", "gates.preprocessing_fit", "gates.model_gates",
                "gates.artifact_gates", "gates.serving_skew")


class Cause(BaseModel):
    """What a gate's failure means, where it sits in the causal order, and what to check."""

    bucket: Bucket
    depth: int  # 0 = furthest upstream; symptoms of several causes sit deepest
    meaning: str
    rules_out: str
    next_check: str


@dataclass(frozen=True)
class Gate:
    """One gate, declared once.

    `check` is called with keyword arguments: each name in `inputs` (a value of the run, see
    RunContext) and `settings` (this gate's block of the config).
    """

    name: str
    family: Family
    stage: Literal["data", "leakage", "model", "artifact"]
    settings: type[GateSettings]
    inputs: tuple[str, ...]
    check: Callable[..., GateResult]
    cause: Cause
    hint: str
    blocks_when: str  # one line for the README's gates table
    faults: tuple[str, ...] = ()
    default: Callable[[], GateSettings] | None = None  # default settings, if not the model's own
    description: str = ""  # the config block's description, if any

    def settings_of(self, cfg: Any) -> GateSettings:
        return getattr(cfg.gates, self.name)

    def judge(self, values: Mapping[str, Any], settings: GateSettings | None = None) -> GateResult:
        """The check on the values it declares (settings: the config's, from values["cfg"])."""
        missing = [n for n in self.inputs if n not in values]
        if missing:
            raise LookupError(f"gate {self.name} needs {missing}, which the run has not produced")
        settings = settings if settings is not None else self.settings_of(values["cfg"])
        return self.check(**{n: values[n] for n in self.inputs}, settings=settings)

    def spec(self, values: Mapping[str, Any], settings: GateSettings) -> GateSpec:
        """This gate ready to run on the run's values (fail closed: a missing value is an error)."""
        return GateSpec(self.name, self.family, settings.severity, lambda: self.judge(values, settings))


@dataclass(frozen=True)
class Declared:
    """A cause the diagnosis knows that is not a gate: a crashed step, the promotion lock."""

    name: str
    family: Family
    cause: Cause


# A step that crashes is a finding too (stage_<step>), and so is a promotion refused by the lock.
NON_GATES: tuple[Declared, ...] = (
    Declared("stage_ingest", Family.DATA, Cause(
        bucket="pipeline", depth=0, meaning="the ingest step crashed", rules_out="",
        next_check="Read the flow run's logs for the traceback.")),
    Declared("stage_split", Family.LEAKAGE, Cause(
        bucket="pipeline", depth=1, meaning="the split step crashed", rules_out="",
        next_check="Check split settings against the window length.")),
    Declared("stage_train", Family.MODEL, Cause(
        bucket="model", depth=3, meaning="training crashed", rules_out="",
        next_check="Read the traceback; check model params and the training frame.")),
    Declared("stage_evaluate", Family.MODEL, Cause(
        bucket="model", depth=3, meaning="evaluation crashed", rules_out="",
        next_check="Read the traceback; check the test split and the champion model.")),
    Declared("stage_export", Family.ARTIFACT, Cause(
        bucket="pipeline", depth=3, meaning="the export step crashed", rules_out="",
        next_check="Check disk space and the export folder's permissions.")),
    Declared("stage_promote", Family.ARTIFACT, Cause(
        bucket="pipeline", depth=3, meaning="promotion crashed", rules_out="",
        next_check="Check the registry; the alias was not moved.")),
    Declared("promotion_lock", Family.ARTIFACT, Cause(
        bucket="pipeline", depth=4, meaning="another run of this pipeline promoted first (promotion lock)",
        rules_out="", next_check="Rerun to compare the candidate with the new champion.")),
)


def _modules() -> list[Any]:
    return [importlib.import_module(name) for name in GATE_MODULES]


@cache
def gates() -> tuple[Gate, ...]:
    """Every declared gate, in run order (imported on first use: gate modules import the config)."""
    found: list[Gate] = []
    for module in _modules():
        found += module.GATES
    names = [g.name for g in found]
    if len(set(names)) != len(names):
        raise RuntimeError(f"gates declared twice: {sorted({n for n in names if names.count(n) > 1})}")
    order = {s: i for i, s in enumerate(GATE_STAGES)}
    return tuple(sorted(found, key=lambda g: order[g.stage]))  # stable: module order within a stage


def by_name() -> dict[str, Gate]:
    return {g.name: g for g in gates()}


def of_stage(stage: str) -> list[Gate]:
    return [g for g in gates() if g.stage == stage]


def plan(stage: str, cfg: Any, values: Mapping[str, Any]) -> list[GateSpec]:
    """The enabled gates of a stage, ready to run on the run's values."""
    return specs(of_stage(stage), cfg, values)


def specs(chosen: list[Gate] | list[str], cfg: Any, values: Mapping[str, Any]) -> list[GateSpec]:
    """The enabled ones of these gates (or gate names), ready to run on the run's values."""
    known = by_name()
    out = []
    for gate in (known[g] if isinstance(g, str) else g for g in chosen):
        settings = gate.settings_of(cfg)
        if settings.enabled:
            out.append(gate.spec(values, settings))
    return out


@cache
def gates_config() -> type[Strict]:
    """The config's `gates:` section: one block per gate, with its defaults.

    A gate module's CONFIG_UPGRADES (functions of the raw `gates:` mapping) keep old configs
    readable after a change of its blocks.
    """
    fields: dict[str, Any] = {
        gate.name: (gate.settings, Field(default_factory=gate.default or gate.settings,
                                         description=gate.description or None))
        for gate in gates()}
    upgrades = [u for module in _modules() for u in getattr(module, "CONFIG_UPGRADES", [])]

    def upgrade(cls: type, data: Any) -> Any:
        for fn in upgrades:
            data = fn(data)
        return data

    validators = {"_upgrade_old_blocks": model_validator(mode="before")(classmethod(upgrade))}
    return create_model("GatesConfig", __config__=ConfigDict(extra="forbid", validate_default=True),
                        __module__="gates.config", __validators__=validators, **fields)


@cache
def causes() -> dict[str, Cause]:
    """The diagnosis' cause table: every gate's, every crashed step's, the promotion lock's."""
    return {**{g.name: g.cause for g in gates()}, **{d.name: d.cause for d in NON_GATES}}


def family_of(name: str) -> Family:
    declared = {**{g.name: g.family for g in gates()}, **{d.name: d.family for d in NON_GATES}}
    return declared[name]


def readme_table() -> str:
    """The README's gates table, grouped by family."""
    lines = ["| family | gate | blocks when |", "|---|---|---|"]
    for family in Family:
        lines += [f"| {family.value} | `{g.name}` | {g.blocks_when} |" for g in gates() if g.family is family]
    return "\n".join(lines)


def gate_of_fault(fault: str) -> str:
    """The gate whose declaration says it blocks `fault`."""
    found = [g.name for g in gates() if fault in g.faults]
    if len(found) != 1:
        raise LookupError(f"fault {fault!r} is listed by {len(found)} gate declarations "
                          f"({', '.join(found) or 'none'}); exactly one gate must prove it")
    return found[0]


if __name__ == "__main__":  # python -m gates.registry > the README's gates table
    print(readme_table())
