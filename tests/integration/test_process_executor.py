"""The LocalStack executor plugin runs functions as local processes, like Lambda would."""

import base64
import io
import json
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import client

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent / "probe_function"


def package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in HERE.glob("*.py"):
            archive.write(path, path.name)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lam(cloud):
    return client("lambda", cloud.endpoint)


def create(lam, name, handler="probe.handler", timeout=3, memory=128):
    lam.create_function(
        FunctionName=name, Runtime="python3.12", Handler=handler, Timeout=timeout,
        MemorySize=memory, Role="arn:aws:iam::000000000000:role/probe",
        Code={"ZipFile": package()}, Environment={"Variables": {"GREETING": "hello"}},
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name)


def invoke(lam, name, event):
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event), LogType="Tail")
    payload = json.loads(response["Payload"].read())
    logs = base64.b64decode(response.get("LogResult", "")).decode()
    return response.get("FunctionError"), payload, logs


def test_a_function_runs_warm_with_its_environment_and_logs(lam, cloud):
    create(lam, "probe-basic")
    error, first, logs = invoke(lam, "probe-basic", {"say": "one"})
    assert error is None, first
    assert first["greeting"] == "hello"
    assert 0 < first["remaining_ms"] <= 3000
    assert "handled one" in logs
    assert "REPORT RequestId" in logs and "Init Duration" in logs
    error, second, logs = invoke(lam, "probe-basic", {"say": "two"})
    assert second["pid"] == first["pid"], "a warm environment is reused"
    assert "Init Duration" not in logs
    log_files = list((cloud.lambda_logs / "probe-basic").glob("*.log"))
    assert log_files and "handled two" in log_files[0].read_text()


def test_a_handler_exception_is_a_function_error(lam):
    create(lam, "probe-error")
    error, payload, _ = invoke(lam, "probe-error", {"fail": "boom"})
    assert error == "Unhandled"
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "boom"


def test_the_timeout_is_enforced_like_lambda_and_the_next_invoke_starts_fresh(lam):
    create(lam, "probe-timeout", timeout=1)
    _, before, _ = invoke(lam, "probe-timeout", {})
    started = time.monotonic()
    error, payload, logs = invoke(lam, "probe-timeout", {"sleep": 5})
    assert time.monotonic() - started < 4
    assert error == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in payload["errorMessage"]
    assert "Task timed out after 1.00 seconds" in logs
    error, after, _ = invoke(lam, "probe-timeout", {})
    assert error is None
    assert after["pid"] != before["pid"]


def test_memory_size_is_enforced(lam):
    create(lam, "probe-memory", memory=128, timeout=10)
    error, payload, _ = invoke(lam, "probe-memory", {"allocate_mb": 400})
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.OutOfMemory"
    error, _, _ = invoke(lam, "probe-memory", {})
    assert error is None


def test_a_runtime_that_exits_fails_the_invoke(lam):
    create(lam, "probe-exit")
    error, payload, _ = invoke(lam, "probe-exit", {"exit": True})
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"


def test_an_import_error_at_init_is_reported(lam):
    create(lam, "probe-broken", handler="broken.handler")
    error, payload, _ = invoke(lam, "probe-broken", {})
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert "not_a_module" in payload["errorMessage"]


def test_logs_reach_cloudwatch_logs(lam, cloud):
    create(lam, "probe-logs")
    invoke(lam, "probe-logs", {"say": "to-cloudwatch"})
    logs = client("logs", cloud.endpoint)
    deadline = time.monotonic() + 10
    messages = []
    while time.monotonic() < deadline:
        try:
            events = logs.filter_log_events(logGroupName="/aws/lambda/probe-logs").get("events", [])
        except logs.exceptions.ResourceNotFoundException:  # the group is created with the first log batch
            events = []
        messages = [e["message"] for e in events]
        if any("handled to-cloudwatch" in m for m in messages):
            break
        time.sleep(0.5)
    assert any("handled to-cloudwatch" in m for m in messages), messages
