"""Fixtures shared by the suites.

The integration and browser tests run against their own LocalStack (port 4567,
state in .local/test-cloud) with template.yaml deployed by the SAM CLI and a
model trained and promoted by the training job: the same path as `make demo`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import Phase, settings

# `make mutation` (tests/mutation/run.py) runs each mutant against the tests that reach it: a
# generated example that fails is enough to kill the mutant, shrinking it to the smallest one is
# not (it took most of a mutant's time). The same examples are generated as in `make test`.
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate], database=None)
if os.environ.get("TESTS_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["TESTS_HYPOTHESIS_PROFILE"])


CLOUD_SUITES = ("tests/integration/", "tests/e2e/")
# The local-cloud tests in two groups, each on a worker with a LocalStack of its own (tests are
# slow there mostly by waiting: an outage, a timeout, the fuzzer's requests through API Gateway):
# the second takes the tests that break or rebuild things (S3 outages, killed workers, the deploy
# workflow's build, containers), the first the ones that read (the fuzzer, the browser).
SECOND_CLOUD = tuple(f"tests/integration/test_{name}.py" for name in (
    "faults", "deploy_workflow", "train_batch", "sam_local", "package", "batch_scoring", "process_executor",
    "local_cloud", "same_rows"))


def cloud_group(nodeid: str) -> str | None:
    """Which local cloud a test runs on (None: it needs none)."""
    if nodeid.startswith(SECOND_CLOUD):
        return "the second local cloud"
    return "the local cloud" if nodeid.startswith(CLOUD_SUITES) else None


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's: unknown where it is not loaded
def pytest_xdist_make_scheduler(config, log):
    """`make test` runs two pytest-xdist workers: each group of local-cloud tests (``cloud_group``)
    is one unit of work, so a worker starts one LocalStack and deploys one stack for it; the unit
    tests go a file at a time to whichever worker is free. The two groups are the first units
    handed out (the browser tests come first in the collection, the second group's first file
    before any unit test), one to each worker. (pytest-xdist's own ``--dist loadgroup`` would do
    it by a mark, but it marks the groups in node ids, which pytest 9.2 no longer lets it change:
    pytest-dev/pytest-xdist#1386.)"""
    from xdist.scheduler import LoadScopeScheduling

    class CloudGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return cloud_group(nodeid) or nodeid.split("::", 1)[0]

    return CloudGroups(config, log)


def pytest_collection_modifyitems(config, items):
    """`make mutation`: a mutant's tests run its module's own test files first (tests mirror the
    source tree), and within each group quickest first (by the durations mutmut measured), so that
    a mutant a quick test kills does not wait for the slow ones; `-x` stops at the first."""
    stats = Path("mutmut-stats.json")  # mutmut runs the tests in its mutants/ folder
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if "__mutmut_" in mutant and stats.exists():
        seconds = json.loads(stats.read_text())["duration_by_test"]
        own = mirror_of(mutant)
        items.sort(key=lambda item: (not item.nodeid.startswith(own), seconds.get(item.nodeid, 0.0)))


def mirror_of(mutant: str) -> str:
    """serving.batch.steps.x_plan__mutmut_3 → tests/unit/serving/batch/test_steps (a prefix of the
    node ids of test_steps.py and test_steps_failures.py)."""
    module = re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0].split(".")
    return "/".join(["tests", "unit", *module[:-1], f"test_{module[-1]}"])


ROOT = Path(__file__).resolve().parent.parent
# Each pytest-xdist worker that runs local-cloud tests has a cloud of its own: its ports, its state
# and its build folder (gw0 takes the base ports, gw1 ten above...).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_INDEX = int(WORKER.removeprefix("gw") or 0)
_SUFFIX = f"-{WORKER}" if _INDEX else ""
TEST_CLOUD_DIR = ROOT / ".local" / f"test-cloud{_SUFFIX}"
TEST_BUILDS = ROOT / ".aws-sam" / f"test{_SUFFIX}"
TEST_PORT = int(os.environ.get("TEST_LOCALSTACK_PORT", "4567")) + 10 * _INDEX
FORM_PORT = int(os.environ.get("TEST_FORM_PORT", "8766")) + _INDEX
TEST_ISSUER_PORT = int(os.environ.get("TEST_ISSUER_PORT", "4568")) + 10 * _INDEX
FORM_ORIGIN = f"http://127.0.0.1:{FORM_PORT}"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def cloud():
    """A LocalStack of the tests' own; fails loudly when it cannot start."""
    from infra import local_cloud

    local_cloud.install()
    instance = local_cloud.Instance(port=TEST_PORT, state_dir=TEST_CLOUD_DIR)
    instance.stop(remove_state=True)  # a leftover from an interrupted run
    instance.start()
    yield instance
    instance.stop(remove_state=True)


def aws_env(endpoint: str) -> dict[str, str]:
    from infra import deploy

    return deploy.local_env(endpoint)


def client(service: str, endpoint: str):
    import boto3

    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )


@pytest.fixture(scope="session")
def docker():
    """A Docker engine (infra/docker_engine.py installs and starts one where it can: Debian/Ubuntu,
    as root) and the Lambda base image; where there is none, the test fails with the reason, unless
    TESTS_WITHOUT_DOCKER=1 leaves these tests out."""
    from infra import docker_engine, lambda_image

    if os.environ.get("TESTS_WITHOUT_DOCKER") == "1":
        pytest.skip("TESTS_WITHOUT_DOCKER=1: the tests on Docker (sam local, the training containers) were asked not to run")
    try:
        docker_engine.ensure()
    except SystemExit as error:
        pytest.fail(f"the tests on Docker (sam local, the training containers) need an engine: {error} "
                    "(TESTS_WITHOUT_DOCKER=1 leaves them out)")
    return lambda_image.ensure()


@pytest.fixture(scope="session")
def issuer():
    """The tests' own local sign-in (moto's Cognito), whose tokens the console's routes accept."""
    from infra import local_issuer

    instance = local_issuer.Instance(port=TEST_ISSUER_PORT, state_dir=TEST_CLOUD_DIR / "issuer")
    instance.stop()  # a leftover from an interrupted run
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def stack(cloud, issuer):
    """template.yaml deployed to the test cloud with sam build + sam deploy."""
    from infra import deploy

    return deploy.deploy_local(
        cloud.endpoint, stack_file=TEST_CLOUD_DIR / "stack.json", origin=FORM_ORIGIN, issuer=issuer,
        builds=TEST_BUILDS,
        # a short refresh so tests that move the champion see it quickly
        # and captured rows written every 100, so that drift sees them without waiting
        parameters={"ChampionRefreshSeconds": "2", "CaptureFlushRows": "100"},
    )


def train(stack, store: Path, *overrides: str) -> dict:
    """The training job run against the deployed stack, as `make train` runs it; returns its summary."""
    env = aws_env(stack["endpoint"])
    env["MODEL_BUCKET"] = stack["model_bucket"]
    env["MLFLOW_S3_ENDPOINT_URL"] = stack["endpoint"]  # MLflow's artifacts in the local S3
    settings = ["tuning.n_trials=4", "tuning.cv_folds=3", f"mlflow.tracking_uri=sqlite:///{store}/mlflow.db",
                f"mlflow.artifact_location=s3://{stack['model_bucket']}/mlflow", *overrides]
    result = subprocess.run(
        [sys.executable, "-m", "training", "train", *[arg for item in settings for arg in ("--set", item)]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="session")
def trained(stack, mlflow_store):
    """The default model (breast cancer) trained, published and promoted on the deployed stack."""
    return train(stack, mlflow_store)


@pytest.fixture(scope="session")
def trained_penguins(stack, mlflow_store, trained):
    """A second model, with categorical features and missing values, on the same stack; LightGBM, so
    that with the CatBoost regression model both families are served (the default model's may be either)."""
    return train(stack, mlflow_store, "dataset=penguins", "model_name=penguins", "tuning.families=[lightgbm]")


def fares_table(n: int = 2500):
    """A regression table as a user's CSV has it: a row counter, a street name of more than 1,000
    distinct values, a distance with gaps and an ISO timestamp."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    street = rng.integers(0, 1300, n)
    start = pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.integers(0, 60 * 24 * 120, n), unit="min")
    km = rng.gamma(2.0, 3.0, n)
    fare = 3 + 2.5 * km + (street % 9) * 1.2 + (start.hour >= 22) * 4 + rng.normal(0, 1, n)
    return pd.DataFrame({
        "ride_id": np.arange(1, n + 1),
        "street": [f"street-{k}" for k in street],
        "km": np.where(rng.random(n) < 0.05, np.nan, km).round(3),
        "start": start.strftime("%Y-%m-%dT%H:%M:%S"),
        "fare": fare.round(2),
    })


@pytest.fixture(scope="session")
def trained_regression(stack, mlflow_store, trained, tmp_path_factory):
    """A regression model trained from a CSV (ID column, >1,000-value categorical, timestamps) on the
    same stack; CatBoost, so its target statistics are what is served."""
    path = tmp_path_factory.mktemp("fares") / "fares.csv"
    fares_table().to_csv(path, index=False)
    summary = train(stack, mlflow_store, f"dataset={path}", "target=fare", "model_name=fares",
                    "tuning.families=[catboost]")
    return {**summary, "csv": path}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
