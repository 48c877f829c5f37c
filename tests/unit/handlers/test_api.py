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
