"""The API as a new container runs it: the `api` fixture calls the handler as API Gateway does."""

import json

import pytest
from serving.settings import Settings
from serving.store import bundles

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.fakes import Context, metrics_of

ORIGIN = "http://127.0.0.1:8765"


@pytest.fixture
def api(s3, monkeypatch, capsys):
    monkeypatch.setenv("MODEL_BUCKET", BUCKET)
    monkeypatch.setenv("DEFAULT_MODEL", "breast-cancer")
    monkeypatch.setenv("CHAMPION_REFRESH_SECONDS", "0")
    monkeypatch.setenv("MAX_ROWS", "200")
    monkeypatch.setenv("MAX_BODY_BYTES", "300000")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Test")
    monkeypatch.setenv("ALLOWED_ORIGIN", ORIGIN)
    module = fresh_container()

    def call(e):
        capsys.readouterr()
        response = module.handler(e, Context())
        call.metrics = metrics_of(capsys.readouterr().out)
        return response["statusCode"], json.loads(response["body"]), response

    call.module = module
    return call


def fresh_container():
    """The API as a new container starts it, with the environment as it is now."""
    import handlers.api

    return handlers.api.init(Settings.from_env())


def publish(s3, name="bc-lightgbm", promote=True, model_name="breast-cancer"):
    model = case(name)
    manifest = bundles.publish(s3, BUCKET, model_name, model.arrays, model.manifest_fields())
    if promote:
        bundles.set_champion(s3, BUCKET, model_name, manifest["version"], "test")
    return manifest
