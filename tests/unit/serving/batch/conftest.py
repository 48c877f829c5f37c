"""The batch tests' fixtures: the steps as a new container runs them, with a champion published, on
the in-process S3 of tests/unit/fake_s3.py (a file's run makes a hundred S3 calls); the state
machine runs them on LocalStack's S3 in tests/integration/."""

import pytest
from serving.batch import steps as steps_module
from serving.settings import Settings
from serving.store import bundles

from tests.models import case
from tests.unit.conftest import BUCKET


@pytest.fixture
def steps(s3, monkeypatch):
    model = case("bc-lightgbm")
    manifest = bundles.publish(s3, BUCKET, "breast-cancer", model.arrays, model.manifest_fields())
    bundles.set_champion(s3, BUCKET, "breast-cancer", manifest["version"], "test")
    monkeypatch.setenv("MODEL_BUCKET", BUCKET)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Test")

    import handlers.batch  # noqa: F401 - its import configures the steps: before the fixture does

    steps_module.configure(Settings.from_env())
    monkeypatch.setattr(steps_module, "s3", lambda: s3)
    return steps_module
