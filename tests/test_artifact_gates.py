"""Artifact gates (issue #5): the exported files are whole, load in a fresh process, match the
data contract, and were pickled by the library versions that load them.

One real export (MLflow model + joblib, MLflow on SQLite in a temp dir) is made per module; each
test damages a private copy of it. One test runs the real flow with an after_export hook.
"""

from __future__ import annotations

import dataclasses
import shutil

import joblib
import mlflow
import pytest

from gates import faults, tracking
from gates.artifact_gates import (LoadProbes, WarmInterpreter, check_fresh_load, check_integrity, check_library_versions,
                                  check_signature, contract_types, signature_inputs)
from gates.config import parse_config
from gates.export import export_model
from gates.ingest import ingest
from gates.results import Status
from gates.split import split_data
from gates.training import build_pipeline, fit
from tests.conftest import RUN_DATE, demo_config, run_flow


@pytest.fixture(scope="module")
def exported(clean_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("artifact-gates")
    raw = demo_config(tmp, clean_data, **{"model.params.max_iter": 20})
    cfg = parse_config(raw)
    split = split_data(ingest(cfg, RUN_DATE).combined(), cfg, RUN_DATE)
    model = fit(build_pipeline(cfg), split.train, cfg)
    experiment = tracking.configure(cfg)
    with mlflow.start_run(experiment_id=experiment) as run:
        out = export_model(model, split.test, cfg, run.info.run_id, cfg.gates.artifact_loads.golden_rows)
    return cfg, model, out


def private_copy(exported, tmp_path):
    """The export copied to tmp_path, so a test can break it without touching the others."""
    cfg, model, out = exported
    joblib_dir, mlflow_dir = tmp_path / "export", tmp_path / "mlflow-model"
    shutil.copytree(out.dir, joblib_dir)
    shutil.copytree(out.mlflow_model_dir, mlflow_dir)
    return cfg, model, dataclasses.replace(out, dir=joblib_dir, joblib_path=joblib_dir / "model.joblib",
                                           mlflow_model_dir=mlflow_dir,
                                           golden_path=joblib_dir / "golden.parquet")


def test_clean_export_passes_every_artifact_gate(exported):
    cfg, _, out = exported
    settings = cfg.gates.artifact_loads
    assert check_integrity(out, settings).status is Status.PASS
    probes = LoadProbes(out, cfg, settings)
    loads = check_fresh_load(probes, settings)
    assert loads.status is Status.PASS, loads.summary
    assert loads.measured["joblib_max_abs_diff"] <= settings.atol
    assert loads.measured["mlflow-pyfunc_max_abs_diff"] <= settings.atol
    versions = check_library_versions(probes, out)
    assert versions.status is Status.PASS, versions.summary
    assert versions.details["recorded"]["scikit-learn"] == versions.details["runtime"]["scikit-learn"]
    signature = check_signature(signature_inputs(out.mlflow_model_dir), contract_types(cfg.expectations),
                                cfg.data.features.all, out.mlflow_model_dir)
    assert signature.status is Status.PASS, signature.summary
    assert (out.mlflow_model_dir / "requirements.txt").read_text().count("==") >= 5


def test_emptied_and_truncated_files_block_naming_them(exported, tmp_path):
    cfg, _, out = private_copy(exported, tmp_path)
    pickled = next(out.mlflow_model_dir.glob("model.*"))
    pickled.write_bytes(b"")
    data = out.joblib_path.read_bytes()
    out.joblib_path.write_bytes(data[: len(data) // 2])
    result = check_integrity(out, cfg.gates.artifact_loads)
    assert result.status is Status.FAIL and result.measured["bad_files"] == 2
    assert any(str(pickled) in e and "empty" in e for e in result.evidence)
    assert any(str(out.joblib_path) in e and "truncated" in e for e in result.evidence)
    loads = check_fresh_load(LoadProbes(out, cfg, cfg.gates.artifact_loads), cfg.gates.artifact_loads)
    assert loads.status is Status.FAIL
    assert any(str(out.joblib_path) in e for e in loads.evidence)
    assert any(str(out.mlflow_model_dir) in e for e in loads.evidence)


def test_warm_interpreter_started_before_the_export_reads_the_files_written_after(exported, tmp_path):
    """The interpreter the flow starts before training loads what is on disk when asked: a clean
    copy reproduces the predictions, a copy emptied after it started blocks, as a cold probe."""
    cfg, _, _ = exported
    settings = cfg.gates.artifact_loads
    warm_clean, warm_broken = WarmInterpreter(("sklearn.ensemble",)), WarmInterpreter()
    try:
        _, _, clean = private_copy(exported, tmp_path / "clean")  # written after both started
        _, _, broken = private_copy(exported, tmp_path / "broken")
        broken.joblib_path.write_bytes(b"")
        loads = check_fresh_load(LoadProbes(clean, cfg, settings, warm=warm_clean), settings)
        assert loads.status is Status.PASS, loads.summary
        assert loads.measured["joblib_max_abs_diff"] <= settings.atol
        assert warm_clean.proc.returncode == 0  # it answered, then exited
        failed = check_fresh_load(LoadProbes(broken, cfg, settings, warm=warm_broken), settings)
        assert failed.status is Status.FAIL
        assert any(str(broken.joblib_path) in e and "load" in e for e in failed.evidence), failed.evidence
    finally:
        warm_clean.close()
        warm_broken.close()


def test_a_dead_warm_interpreter_falls_back_to_a_cold_probe_and_closing_one_ends_it(exported, tmp_path):
    cfg, _, out = private_copy(exported, tmp_path)
    settings = cfg.gates.artifact_loads
    dead = WarmInterpreter()
    dead.proc.kill()
    dead.proc.wait(timeout=30)
    loads = check_fresh_load(LoadProbes(out, cfg, settings, warm=dead), settings)
    assert loads.status is Status.PASS, loads.summary  # loaded by a new, cold interpreter
    idle = WarmInterpreter()
    idle.proc.stdin.close()  # what the flow's exit does: EOF, no request
    assert idle.proc.wait(timeout=120) == 0
    assert idle.proc.stdout.read() == ""


def test_corrupted_bytes_block_on_checksum(exported, tmp_path):
    cfg, _, out = private_copy(exported, tmp_path)
    data = bytearray(out.joblib_path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    out.joblib_path.write_bytes(bytes(data))
    result = check_integrity(out, cfg.gates.artifact_loads)
    assert result.status is Status.FAIL
    assert result.evidence == [f"{out.joblib_path}: checksum changed since export (corrupted or rewritten)"]


def test_signature_that_differs_from_the_contract_blocks_naming_the_column(exported):
    cfg, _, out = exported
    inputs = signature_inputs(out.mlflow_model_dir)
    inputs["tenure_months"] = "double"
    del inputs["region"]
    result = check_signature(inputs, contract_types(cfg.expectations), cfg.data.features.all)
    assert result.status is Status.FAIL
    assert any("'tenure_months'" in e and "'int64'" in e for e in result.evidence)
    assert any("region" in e and "lacks" in e for e in result.evidence)


def test_model_pickled_under_another_sklearn_version_blocks(exported, tmp_path):
    cfg, model, out = private_copy(exported, tmp_path)
    faults.pickle_as_old_sklearn(None)  # scikit-learn's own pickled version field says 1.5.2
    try:
        joblib.dump(model, out.joblib_path)
    finally:
        faults.restore_sklearn_version(None)
    import sklearn

    result = check_library_versions(LoadProbes(out, cfg, cfg.gates.artifact_loads), out)
    assert result.status is Status.FAIL
    expected = (f"scikit-learn: the model was pickled by scikit-learn {faults.OLD_SKLEARN_VERSION}, "
                f"loaded with {sklearn.__version__}")
    assert any(e.startswith(expected) and str(out.joblib_path) in e for e in result.evidence), result.evidence


def test_emptied_model_file_blocks_the_flow_before_promotion(make_config):
    config = make_config(**{"hooks.after_export": ["gates.faults:empty_mlflow_model_file"],
                            "model.params.max_iter": 20,
                            # a cheap model: the bar over the simple baseline is not what is tested
                            "gates.baseline.enabled": False})
    state, summary = run_flow(config)
    assert state.is_failed()
    result = summary.report.by_name("artifact_integrity")
    assert result.status is Status.FAIL and "empty (0 bytes" in result.summary
    assert "model.pkl" in result.summary or "model." in result.evidence[0]
    assert summary.promoted_version is None and "promote" not in summary.stages_run
