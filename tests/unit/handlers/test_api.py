"""The API function's wiring: what its import pulls in, a bad setting failing the init, the events
`sam local invoke` is given."""

import base64
import json
import subprocess
import sys
from pathlib import Path

from serving.model import bundle

from tests.unit.fakes import ROOT, event

# the folder the code under test is imported from (functions/, or the mutation tester's copy)
FUNCTIONS = Path(bundle.__file__).resolve().parents[2]


def test_the_handler_path_does_not_import_the_training_stack():
    code = (
        f"import sys; sys.path.insert(0, {str(FUNCTIONS)!r}); import handlers.api; "
        "bad = [m for m in ('pandas', 'sklearn', 'mlflow', 'catboost', 'lightgbm', 'optuna', "
        "'boto3', 'botocore.client', 'aws_xray_sdk', 'pydantic') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={"MODEL_BUCKET": "x", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_bad_setting_fails_the_container_at_init_naming_it():
    code = f"import sys; sys.path.insert(0, {str(FUNCTIONS)!r}); import handlers.api"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={"MODEL_BUCKET": "x", "MAX_ROWS": "many", "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "MAX_ROWS must be an integer, not 'many'" in result.stderr


def test_the_events_are_in_the_sam_cli_shape():
    e = event("predict")
    assert e["isBase64Encoded"] is True
    assert json.loads(base64.b64decode(e["body"]))["instances"]
    assert e["requestContext"]["resourcePath"] == "/predict"


def test_the_functions_handler_answers_through_its_app_with_its_logger_and_metrics(s3, monkeypatch, capsys):
    """handlers.api.handler, what Lambda calls: the module's app, logging as the predict service and
    sending its metrics to the project's namespace (not the environment's)."""
    from tests.unit.conftest import BUCKET

    monkeypatch.setenv("MODEL_BUCKET", BUCKET)
    monkeypatch.setenv("DEFAULT_MODEL", "breast-cancer")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Test")
    import handlers.api  # its import makes the app the module serves with: the environment first

    from tests.models import case
    from tests.unit.fakes import Context, metrics_of
    from tests.unit.serving.api.conftest import fresh_container, publish

    publish(s3)
    monkeypatch.setattr(handlers.api, "app", fresh_container())
    model = case("bc-lightgbm")
    capsys.readouterr()
    response = handlers.api.handler(event("predict", {"instances": model.instances[:2]}), Context())
    assert response["statusCode"] == 200 and len(json.loads(response["body"])["predictions"]) == 2
    output = capsys.readouterr().out
    emf = [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' in line]
    assert {d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in emf} == {"TabularServerless"}
    assert metrics_of(output)["_dims"]["service"] == "predict"
    assert handlers.api.app.logger.service == "predict"  # what every log line of the function names


def test_with_tracing_on_the_handler_answers_inside_the_predict_services_trace(s3, monkeypatch):
    """POWERTOOLS_TRACE_DISABLED=false: the handler is wrapped by Powertools' Tracer, named for the
    service (outside Lambda the tracer records nothing, so the answer is what is checked)."""
    from aws_lambda_powertools import Tracer

    from tests.unit.conftest import BUCKET
    from tests.unit.fakes import Context
    from tests.unit.serving.api.conftest import fresh_container, publish

    for name, value in (("MODEL_BUCKET", BUCKET), ("DEFAULT_MODEL", "breast-cancer"),
                        ("POWERTOOLS_TRACE_DISABLED", "false"), ("POWERTOOLS_METRICS_NAMESPACE", "Test")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(Tracer, "_config", dict(Tracer._default_config))
    publish(s3)
    app = fresh_container()
    assert app.handler.__wrapped__.__name__ == "handle" and Tracer._config["service"] == "predict"
    assert app.handler(event("predict"), Context())["statusCode"] == 200
