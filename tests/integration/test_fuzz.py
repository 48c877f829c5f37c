"""An outside fuzzer against the deployed API's own /openapi.json: no server error, nothing undocumented.

schemathesis generates valid and invalid requests from the document the API
serves (through LocalStack's API Gateway, with the usage plan's key) and checks
every answer: not a 5xx, a status the document lists for that route, a body
that matches the documented schema, the documented content type, valid input
accepted and invalid input refused.

Left out, with the reason: ``unsupported_method`` (API Gateway itself answers a
method a resource does not have, before the function runs: AWS's answer, not
this API's document to describe) and the stateful checks for created resources
(``use_after_free``, ``ensure_resource_availability``): this API creates none.
The statuses that count as refusing invalid input are in schemathesis.toml;
the one check left out for /models/{name}/predict and /explain, and for the
console's batch routes (fuzzed with a signed-in user's token), is explained below.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
MIN_CASES = 1000


def schemathesis(stack, report: Path, *options: str, token: str | None = None) -> dict:
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    command = [
        str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{stack['api_url']}/openapi.json",
        "--url", stack["api_url"], "-H", f"x-api-key: {stack['api_key']}", *headers, "--checks", "all",
        "--seed", "20261126", "--workers", "2", "--continue-on-failure",
        "--phases", "examples,coverage,fuzzing", "--suppress-health-check", "too_slow",
        "--request-timeout", "30", "--report", "json", "--report-json-path", str(report), *options,
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-6000:]
    return json.loads(report.read_text())


def test_a_thousand_generated_requests_find_no_server_error_and_nothing_undocumented(stack, trained, trained_penguins,
                                                                                  issuer, artifacts):
    stateless = "unsupported_method,use_after_free,ensure_resource_availability"
    named_routes = ["/models/{name}/predict", "/models/{name}/explain"]
    batch_routes = ["/models/{name}/batches", "/models/{name}/batches/{id}"]
    # Every route but the named model's predictions and explanations and the batches, with every check.
    fixed = schemathesis(stack, artifacts / "schemathesis.json", "--max-examples", "150",
                         "--exclude-checks", stateless, *(arg for path in named_routes + batch_routes
                                                          for arg in ("--exclude-path", path)))
    # The named model's predictions and explanations: which features a body needs depends on the name in the path,
    # which one document cannot tie to the body, so a body valid for one model can be refused (422)
    # by another: every check but "valid input is accepted".
    named = schemathesis(stack, artifacts / "schemathesis-named.json", "--max-examples", "150",
                         "--exclude-checks", f"{stateless},positive_data_acceptance",
                         *(arg for path in named_routes for arg in ("--include-path", path)))
    # The console's batch routes, as a signed-in user: an upload form is only a signature (nothing is
    # written until a file is posted to S3), a batch id nobody uploaded is waiting for its file. Every
    # check but "valid input is accepted": the largest file a form takes (UploadMaxMegabytes) is the
    # console function's setting, which the document does not know, so a valid size can be a 413.
    pool = issuer.pool()
    issuer.add_user(pool, "fuzzer", "Fuzzer-pass-123")
    token = issuer.sign_in(pool, "fuzzer", "Fuzzer-pass-123")["IdToken"]
    batches = schemathesis(stack, artifacts / "schemathesis-batches.json", "--max-examples", "100",
                           "--exclude-checks", f"{stateless},positive_data_acceptance",
                           *(arg for path in batch_routes for arg in ("--include-path", path)), token=token)
    assert _cases(batches) >= 100
    cases = _cases(fixed) + _cases(named)
    assert cases >= MIN_CASES, f"only {cases} generated cases"


def _cases(summary: dict) -> int:
    """How many requests schemathesis generated and checked, from its JSON report."""
    return summary["test_cases"]["generated"] - summary["test_cases"]["without_checks"]
