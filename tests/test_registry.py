"""Everything derived from the gate registry agrees with it (issue #10): the config's `gates:`
section, the diagnosis' causes, the README table, the fault catalogue, configs/demo.yaml, and
the stage plans. No flow runs here: these are cheap and fail the moment a gate is wired twice."""

from __future__ import annotations

import re

import pytest
import yaml

from flows.stages import STAGES, run_until
from gates import diagnosis, registry
from gates.config import ConfigError, GatesConfig, PipelineConfig, load_config, parse_config
from gates.faults import FAULTS
from gates.results import Family, GateReport, GateResult, Status
from tests.conftest import REPO, demo_config

# Values configs/demo.yaml deliberately sets away from the default (each says why in a comment).
DEMO_OVERRIDES = {("baseline", "min_improvement")}


def test_every_gate_has_one_config_block_with_its_declared_settings():
    fields = GatesConfig.model_fields
    assert list(fields) == [g.name for g in registry.gates()]
    for gate in registry.gates():
        assert fields[gate.name].annotation is gate.settings, gate.name
    assert GatesConfig.model_config["extra"] == "forbid"
    assert PipelineConfig.model_fields["gates"].annotation is GatesConfig


def test_split_drift_keeps_its_own_default_severity():
    assert GatesConfig().split_drift.severity.value == "warn"
    assert GatesConfig().drift.severity.value == "block"


def test_unknown_gate_block_is_rejected_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"gates\.no_such_gate: unknown field"):
        parse_config(demo_config(tmp_path, tmp_path, **{"gates.no_such_gate": {}}), "x.yaml")


def test_causes_are_declared_for_every_gate_crashed_step_and_the_promotion_lock():
    causes = diagnosis.causes()
    assert set(causes) == {g.name for g in registry.gates()} | {f"stage_{s.name}" for s in STAGES} \
        | {"promotion_lock"}
    for gate in registry.gates():
        assert causes[gate.name] is gate.cause and gate.hint, gate.name


def test_one_fallback_for_a_gate_nobody_declared():
    unknown = GateResult(name="brand_new", family=Family.MODEL, status=Status.FAIL, hint="look here")
    cause = diagnosis.cause_of(unknown)
    assert (cause.bucket, cause.depth, cause.next_check) == ("model", 6, "look here")
    ranked = diagnosis.diagnose(GateReport(results=[
        unknown, GateResult(name="contract", family=Family.DATA, status=Status.FAIL, summary="x")]))
    assert [h.gate for h in ranked.hypotheses] == ["contract", "brand_new"]
    assert ranked.hypotheses[0].explains == ["brand_new: gate brand_new failed"]


def test_readme_gates_table_is_the_registry_s():
    readme = (REPO / "README.md").read_text()
    table = re.search(r"^\| family \| gate \| blocks when \|\n(?:\|.*\n?)+", readme, re.M).group(0)
    assert table.strip() == registry.readme_table(), "run: python -m gates.registry"


def test_every_fault_is_proved_by_exactly_one_declared_gate():
    listed = [f for g in registry.gates() for f in g.faults]
    assert sorted(listed) == sorted(FAULTS), "a gate lists a fault that does not exist, or one is unclaimed"
    for fault in FAULTS.values():
        declared = registry.by_name()[fault.expected_gate]
        assert fault.name in declared.faults
        assert fault.declared_gate in (None, fault.expected_gate), fault.name


def test_demo_config_shows_every_gate_with_its_defaults():
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())["gates"]
    assert set(raw) == set(GatesConfig.model_fields)
    defaults = GatesConfig()
    for key, block in raw.items():
        default = getattr(defaults, key).model_dump(mode="json")
        for name, value in block.items():
            if (key, name) not in DEMO_OVERRIDES:
                assert value == default[name], f"configs/demo.yaml gates.{key}.{name}: {value} vs default {default[name]}"
    load_config(REPO / "configs" / "demo.yaml")


def test_each_gate_declares_inputs_the_run_provides():
    from gates.context import RunContext

    cfg = load_config(REPO / "configs" / "demo.yaml")
    provided = set(RunContext(cfg=cfg, run_date=__import__("datetime").date(2026, 7, 1)).values())
    for gate in registry.gates():
        assert set(gate.inputs) <= provided, (gate.name, set(gate.inputs) - provided)
        assert gate.stage in registry.GATE_STAGES and gate.stage in {s.gates for s in STAGES}


def test_a_gate_missing_an_input_blocks_instead_of_passing():
    gate = registry.by_name()["time_order"]
    spec = gate.spec({"cfg": None}, gate.settings())
    result = spec.run()
    assert result.status is Status.ERROR and result.blocks and "split" in result.summary


def test_run_until_names_the_stages():
    with pytest.raises(ValueError, match="unknown stage 'deploy'.*ingest, split, train"):
        run_until(None, "deploy")  # type: ignore[arg-type]


def test_an_old_shared_artifact_block_still_reads(tmp_path):
    raw = demo_config(tmp_path, tmp_path)
    for block in ("artifact_integrity", "library_versions", "signature", "artifact_loads"):
        raw["gates"].pop(block, None)
    raw["gates"]["artifact"] = {"severity": "warn", "enabled": False, "timeout_seconds": 60}
    g = parse_config(raw).gates
    assert {g.artifact_integrity.severity.value, g.signature.severity.value,
            g.library_versions.severity.value, g.artifact_loads.severity.value} == {"warn"}
    assert not g.artifact_loads.enabled and g.artifact_loads.timeout_seconds == 60
    raw["gates"]["artifact_loads"] = {"timeout_seconds": 30}
    with pytest.raises(ConfigError, match=r"gates\.artifact\.timeout_seconds and gates\.artifact_loads\.timeout_seconds"):
        parse_config(raw, "x.yaml")


def test_run_until_runs_the_steps_and_their_gates_in_registry_order(clean_data, tmp_path):
    from flows.stages import Progress
    from gates.context import RunContext
    from tests.conftest import RUN_DATE

    ctx = RunContext(cfg=parse_config(demo_config(tmp_path, clean_data)), run_date=RUN_DATE)
    report, progress = GateReport(), Progress()
    assert run_until(ctx, "split", report=report, progress=progress)
    assert progress.stages_run == ["ingest", "split"] and ctx.split is not None and ctx.model is None
    expected = [g.name for g in registry.gates() if g.stage in ("data", "leakage")]
    assert [r.name for r in report.results] == expected
    assert not report.blocked and {"ingest", "gates.data", "split", "gates.leakage"} <= set(progress.seconds)


def test_run_until_stops_at_the_first_stage_whose_gates_block(data_dir, tmp_path):
    from flows.stages import Progress
    from gates.context import RunContext
    from gates.faults import FaultTarget
    from tests.conftest import RUN_DATE

    raw = demo_config(tmp_path, data_dir)
    FAULTS["missing_partition"].apply(FaultTarget(data_dir, raw, RUN_DATE))
    ctx = RunContext(cfg=parse_config(raw), run_date=RUN_DATE)
    report, progress = GateReport(), Progress()
    assert not run_until(ctx, "promote", report=report, progress=progress)
    assert progress.stages_run == ["ingest"] and ctx.split is None
    assert [r.name for r in report.blocking] == ["partitions"]
