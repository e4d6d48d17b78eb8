"""Shared fixtures: real Prefect (test harness), real MLflow on SQLite in a temp dir, real data."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

# Two test workers share two cores: a second OpenMP/BLAS thread per worker oversubscribes them, and
# scikit-learn's spinning threads then train the demo model 20x slower (13.9 s against 0.7 s per
# flow run, measured at load 4). Set before numpy and scikit-learn load; subprocesses inherit it.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

import pytest  # noqa: E402
import yaml  # noqa: E402

from gates.demo_data import write_demo_data  # noqa: E402
from gates.scenarios import ChampionCache, scratch_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUN_DATE = dt.date(2026, 6, 30)
DAYS = 45  # window 30 + headroom
ROWS_PER_DAY = 1000


@pytest.fixture(scope="session", autouse=True)
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    # a loaded 2-core machine can take minutes to start the API: the same generous bound as the CLI
    timeout = int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "600"))
    with prefect_test_harness(server_startup_timeout=timeout):
        yield


@pytest.fixture(scope="session")
def clean_data(tmp_path_factory) -> Path:
    """Demo partitions up to the day before RUN_DATE, written once per test worker."""
    root = tmp_path_factory.mktemp("clean") / "churn"
    write_demo_data(root, RUN_DATE - dt.timedelta(days=1), days=DAYS, rows_per_day=ROWS_PER_DAY)
    return root


@pytest.fixture(scope="session")
def champions(tmp_path_factory) -> ChampionCache:
    """Champions trained once per test worker and restored for every scenario that needs one."""
    return ChampionCache(tmp_path_factory.mktemp("champions"))


@pytest.fixture
def data_dir(clean_data, tmp_path) -> Path:
    """A private copy of the clean data that a test may break."""
    target = tmp_path / "data" / "churn"
    shutil.copytree(clean_data, target)
    return target


def demo_config(tmp_path: Path, data_path: Path, **overrides) -> dict:
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["data"]["window_days"] = 30
    raw["expectations"] = str(REPO / "expectations" / "churn.json")
    raw = scratch_config(raw, tmp_path, data_path)
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return raw


@pytest.fixture
def make_config(tmp_path, data_dir):
    """Write a config for this test's data and temp MLflow store; overrides use dotted keys."""

    def make(data_path: Path | None = None, name: str = "pipeline.yaml", **overrides) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(demo_config(tmp_path, data_path or data_dir, **overrides)))
        return path

    return make


def harness_env(**extra: str) -> dict[str, str]:
    """The environment for a `gates` subprocess that should talk to this session's Prefect test
    server rather than boot an ephemeral API of its own (16 s of CPU each, on a shared machine).
    The standalone path (its own ephemeral API) has its own tests (test_cli_standalone.py)."""
    from prefect.settings import get_current_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    api = get_current_settings().api.url
    if api:
        env["PREFECT_API_URL"] = str(api)
    return env | extra


def run_flow(config_path: Path, run_date: dt.date = RUN_DATE):
    """Run the real flow; return (Prefect state, RunSummary)."""
    from flows.retrain import retrain

    state = retrain(str(config_path), run_date.isoformat(), return_state=True)
    return state, state.result(raise_on_failure=False)
