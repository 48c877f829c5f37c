"""S3 misbehaving under the deployed functions: mitmproxy (tests/faults/) between the functions and
LocalStack's S3 answers 500 and 503 SlowDown, resets connections, stalls past the clients' timeouts
and cuts bodies short, on a chosen share of requests. The serving function keeps answering from
the model it has, a cold one says why it cannot, and batch scoring accounts for every row once or
fails leaving nothing under the final names; a worker killed or timed out mid-part is retried
without duplicates."""

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
import requests
from serving.store import bundles
from serving.store.capture import WRITE_SECONDS
from serving.store.champion import CHECK_SECONDS

from tests.conftest import TEST_CLOUD_DIR, client
from tests.faults.proxy import FaultProxy
from tests.integration.test_batch_scoring import (
    bad_rows_csv,
    finish,
    one_process,
    predictor_of,
    start,
    wait_for,
)
from tests.models import case

pytestmark = pytest.mark.integration
ALL_KINDS = ("500", "503", "reset", "stall", "truncate")
SERVED = "faults-served"  # the models of these tests' own: promoting them moves no other test
BATCHED = "faults-batched"


@pytest.fixture(scope="module")
def proxy(cloud):
    with FaultProxy(cloud.endpoint, TEST_CLOUD_DIR / "mitmproxy.log") as running:
        yield running


def physical_name(stack, logical_id: str) -> str:
    cfn = client("cloudformation", stack["endpoint"])
    return cfn.describe_stack_resource(StackName=stack["stack_name"], LogicalResourceId=logical_id)[
        "StackResourceDetail"]["PhysicalResourceId"]


@contextlib.contextmanager
def through(stack, proxy, *logical_ids: str, timeout: int | None = None, **variables: str):
    """The functions reach S3 through the proxy (AWS_ENDPOINT_URL_S3, read by boto3 and the serving
    reader), with ``variables`` set and their timeout changed if asked; as they were afterwards.
    A function's configuration changed, its containers start anew; a function behind an alias
    (the API's ``live``) gets a new version and the alias follows it."""
    functions = client("lambda", stack["endpoint"])
    names = [physical_name(stack, logical_id) for logical_id in logical_ids]
    saved = {name: functions.get_function_configuration(FunctionName=name) for name in names}
    aliases = {name: functions.list_aliases(FunctionName=name)["Aliases"] for name in names}

    def configure(name: str, environment: dict, seconds: int, versions: dict | None = None) -> None:
        functions.update_function_configuration(FunctionName=name, Environment={"Variables": environment},
                                                Timeout=seconds)
        functions.get_waiter("function_updated_v2").wait(FunctionName=name)
        for alias in aliases[name]:
            version = (versions or {}).get(alias["Name"]) or functions.publish_version(FunctionName=name)["Version"]
            functions.update_alias(FunctionName=name, Name=alias["Name"], FunctionVersion=version)

    for name in names:
        environment = {**saved[name]["Environment"]["Variables"], "AWS_ENDPOINT_URL_S3": proxy.endpoint,
                       **variables}
        configure(name, environment, timeout or saved[name]["Timeout"])
    try:
        yield names
    finally:
        proxy.faults(0)
        for name in names:
            configure(name, saved[name]["Environment"]["Variables"], saved[name]["Timeout"],
                      {alias["Name"]: alias["FunctionVersion"] for alias in aliases[name]})


def publish(stack, name: str, case_name: str) -> int:
    s3 = client("s3", stack["endpoint"])
    model = case(case_name)
    version = bundles.publish(s3, stack["model_bucket"], name, model.arrays, model.manifest_fields())["version"]
    bundles.set_champion(s3, stack["model_bucket"], name, version, "fault tests")
    return version


def predict(stack, name: str, row: dict) -> requests.Response:
    return requests.post(f"{stack['api_url']}/models/{name}/predict", json={"instances": [row]},
                         headers={"x-api-key": stack["api_key"]}, timeout=30)


def health(stack) -> dict:
    return requests.get(f"{stack['api_url']}/health", timeout=30).json()


# ---- serving


def test_a_warm_container_answers_through_60_s_of_failing_s3_then_takes_the_new_champion(stack, proxy):
    row = case("bc-lightgbm").instances[0]
    first = publish(stack, SERVED, "bc-lightgbm")
    with through(stack, proxy, "PredictFunction"):
        answer = predict(stack, SERVED, row)
        assert answer.status_code == 200 and answer.json()["model"]["version"] == first
        proxy.faults(1.0, ALL_KINDS, stall_seconds=5)
        second = publish(stack, SERVED, "bc-lightgbm-short")  # promoted while the function cannot see it
        statuses, slowest, ends = {}, 0.0, time.monotonic() + 60
        while time.monotonic() < ends:
            asked = time.monotonic()
            answer = predict(stack, SERVED, row)
            slowest = max(slowest, time.monotonic() - asked)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            assert answer.status_code == 200, answer.text
            assert answer.json()["model"]["version"] == first
        failing = proxy.report()
        served = health(stack)["models"][SERVED]
        # the checks failed and were counted; each waited at most its 1 s budget
        assert served["failed_checks"] >= 10 and "could not read the champion pointer" in \
            served["last_load_failure"]["reason"]
        # a request waits on S3 at most a check's budget and a capture write's (the stack captures every
        # row), beside the local gateway's own second or so
        assert sum(failing["faults"].values()) >= 10, failing
        assert slowest < CHECK_SECONDS + WRITE_SECONDS + 1.5, slowest
        proxy.faults(0)
        back = time.monotonic()
        while (answer := predict(stack, SERVED, row)).json()["model"]["version"] != second:
            assert time.monotonic() - back < 2 + 1 + 1.5, "the new champion was not taken in one interval"
        print(json.dumps({"outage_requests": statuses, "slowest_s": round(slowest, 3),
                          "faults": failing["faults"], "new_champion_after_s": round(time.monotonic() - back, 2)}))


def test_a_cold_container_answers_503_naming_the_cause_and_recovers_with_s3(stack, proxy):
    row = case("bc-lightgbm").instances[0]
    publish(stack, SERVED, "bc-lightgbm")
    proxy.faults(1.0, ("503", "reset"))
    with through(stack, proxy, "PredictFunction"):  # a new configuration: new, cold containers
        for _ in range(3):
            asked = time.monotonic()
            answer = predict(stack, SERVED, row)
            assert answer.status_code == 503, answer.text
            assert "the model store did not answer for model 'faults-served'" in answer.json()["error"]
            assert time.monotonic() - asked < 12  # a cold start's init included
        proxy.faults(0)
        back = time.monotonic()
        while (answer := predict(stack, SERVED, row)).status_code != 200:
            assert answer.status_code == 503
            assert time.monotonic() - back < 8, "the function did not recover with S3"


# ---- batch scoring


@pytest.fixture(scope="module")
def batched(stack, proxy):
    """A model of these tests' own, and the S3 → EventBridge trigger paused (the tests start executions)."""
    from infra import deploy

    version = publish(stack, BATCHED, "bc-lightgbm")
    with deploy.batch_trigger_paused(stack["endpoint"], stack["stack_name"]):
        yield version


def first_failure(stack, execution: str) -> str:
    """The first failed step's error, with its stack trace: what a failed execution's test says."""
    sfn = client("stepfunctions", stack["endpoint"])
    for item in sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]:
        for details in item.values():
            if isinstance(details, dict) and "cause" in details and item["type"].endswith("Failed"):
                return f"{item['type']}: {details.get('error')}: {details['cause'][:3000]}"
    return "no failed step in the history"


def scored_exactly(stack, key: str, data: bytes, version: int, described: dict) -> dict:
    """The execution succeeded and its outputs equal one process scoring the file; the manifest."""
    s3 = client("s3", stack["endpoint"])
    assert described["status"] == "SUCCEEDED", first_failure(stack, described["executionArn"])
    stem = key.replace("batch/input/", "batch/output/").rsplit(".", 1)[0]
    manifest = json.loads(wait_for(s3, stack["data_bucket"], f"{stem}.manifest.json"))
    result, predictions, errors = one_process(predictor_of(stack, BATCHED, version), data, key.rsplit("/", 1)[1])
    assert (manifest["rows"], manifest["predicted"], manifest["invalid"]) == (
        result.rows, result.predicted, result.invalid)
    assert wait_for(s3, stack["data_bucket"], f"{stem}.predictions.csv") == predictions
    assert wait_for(s3, stack["data_bucket"], f"{stem}.errors.csv") == errors
    assert s3.list_objects_v2(Bucket=stack["data_bucket"], Prefix="batch/work/").get("KeyCount") == 0
    return manifest


def nothing_final(stack, key: str) -> None:
    s3 = client("s3", stack["endpoint"])
    stem = key.replace("batch/input/", "batch/output/").rsplit(".", 1)[0]
    listed = s3.list_objects_v2(Bucket=stack["data_bucket"], Prefix=stem).get("Contents", [])
    assert [item["Key"] for item in listed] == []


def put(stack, key: str, copies: int) -> bytes:
    data = bad_rows_csv(case("bc-lightgbm"), copies=copies)
    client("s3", stack["endpoint"]).put_object(Bucket=stack["data_bucket"], Key=key, Body=data)
    return data


BATCH_FUNCTIONS = ("BatchControlFunction", "BatchWorkerFunction")
FAST = {"S3_READ_TIMEOUT_SECONDS": "2"}  # so that a stall (5 s) outlasts the clients' wait


def test_with_faults_on_a_tenth_of_s3_calls_every_row_is_predicted_or_reported_once(stack, proxy, batched):
    key = f"batch/input/{BATCHED}/tenth.csv"
    data = put(stack, key, copies=30)
    with through(stack, proxy, *BATCH_FUNCTIONS, **FAST):
        proxy.faults(0.1, ALL_KINDS, stall_seconds=5, seed=7)
        described = finish(stack, start(stack, key, part_megabytes=60_000 / (1 << 20), concurrency=4),
                           timeout=400)
        faults = proxy.report()
    manifest = scored_exactly(stack, key, data, batched, described)
    assert len(manifest["parts"]) >= 8 and sum(faults["faults"].values()) >= 5, faults
    print(json.dumps({"rows": manifest["rows"], "parts": len(manifest["parts"]), "s3_requests": faults["requests"],
                      "faults": faults["faults"]}))


def test_with_most_s3_calls_failing_the_file_is_scored_exactly_or_fails_leaving_nothing(stack, proxy, batched):
    key = f"batch/input/{BATCHED}/most.csv"
    data = put(stack, key, copies=10)
    with through(stack, proxy, *BATCH_FUNCTIONS, **FAST):
        proxy.faults(0.6, ("500", "503", "reset", "truncate"), seed=3)
        described = finish(stack, start(stack, key, part_megabytes=60_000 / (1 << 20), concurrency=4),
                           timeout=400)
        faults = proxy.report()["faults"]
    print(json.dumps({"sixty_percent": described["status"], "faults": faults}))
    if described["status"] == "SUCCEEDED":
        scored_exactly(stack, key, data, batched, described)
    else:
        assert described["status"] == "FAILED" and key in described.get("cause", ""), described
        nothing_final(stack, key)


def worker_processes(name: str) -> list[int]:
    """The processes running function ``name`` (the local executor's: one per environment)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if f"AWS_LAMBDA_FUNCTION_NAME={name}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def half_written(stack, execution: str, part: int) -> bool:
    s3 = client("s3", stack["endpoint"])
    name = execution.rsplit(":", 1)[1]
    listed = s3.list_objects_v2(Bucket=stack["data_bucket"], Prefix="batch/work/").get("Contents", [])
    return any(item["Key"].endswith(f"part-{part:05d}.predictions.csv") and name in item["Key"] for item in listed)


def test_a_worker_killed_mid_part_is_retried_without_duplicates(stack, batched):
    key = f"batch/input/{BATCHED}/killed.csv"
    data = put(stack, key, copies=10)
    worker = physical_name(stack, "BatchWorkerFunction")
    execution = start(stack, key, part_megabytes=40_000 / (1 << 20), concurrency=2,
                      fault={"part": 1, "attempts": 1, "hang_seconds": 300})
    deadline = time.monotonic() + 120
    while not half_written(stack, execution, 1):
        assert time.monotonic() < deadline, "part 1 did not start"
        time.sleep(0.3)
    killed = worker_processes(worker)
    assert killed
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    manifest = scored_exactly(stack, key, data, batched, finish(stack, execution, timeout=300))
    assert manifest["parts"][1]["attempt"] >= 1  # the part that was killed ran again


def test_a_worker_that_times_out_is_retried_without_duplicates(stack, proxy, batched):
    key = f"batch/input/{BATCHED}/timed-out.csv"
    data = put(stack, key, copies=10)
    with through(stack, proxy, "BatchWorkerFunction", timeout=15):
        started = time.monotonic()
        described = finish(stack, start(stack, key, part_megabytes=40_000 / (1 << 20), concurrency=2,
                                        fault={"part": 1, "attempts": 1, "hang_seconds": 120}), timeout=300)
        took = time.monotonic() - started
    manifest = scored_exactly(stack, key, data, batched, described)
    assert manifest["parts"][1]["attempt"] == 1 and took < 100  # killed at 15 s, not after the 120 s hang
