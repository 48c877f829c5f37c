"""The batch tests' fixture: the steps as a new container runs them, with a champion published."""

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

    steps_module.configure(Settings.from_env())
    return steps_module
