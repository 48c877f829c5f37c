"""Batch scoring on LocalStack: a file under batch/input/ runs the batch-scoring state machine
(S3 → EventBridge → Step Functions Distributed Maps → Lambda) and its outputs equal one
process scoring the whole file."""

import csv
import io
import json
import time

import numpy as np
import pytest
from serving.batch import lines, parquet, rows
from serving.model.predictor import Predictor, served_predictions
from serving.store import bundles

from tests.conftest import client
from tests.models import case
from training import data as D

pytestmark = pytest.mark.integration


def wait_for(s3, bucket, key, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        except s3.exceptions.NoSuchKey:
            time.sleep(1)
    raise AssertionError(f"s3://{bucket}/{key} did not appear in {timeout} s")


def start(stack, key: str, **options) -> str:
    """An execution started as the EventBridge rule starts one, with options only StartExecution can give."""
    sfn = client("stepfunctions", stack["endpoint"])
    detail = {"bucket": {"name": stack["data_bucket"]}, "object": {"key": key}}
    return sfn.start_execution(stateMachineArn=stack["batch_state_machine"],
                               input=json.dumps({"detail": detail, "options": options}))["executionArn"]


def finish(stack, execution: str, timeout=180) -> dict:
    sfn = client("stepfunctions", stack["endpoint"])
    deadline = time.monotonic() + timeout
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{execution} still running after {timeout} s"
        time.sleep(0.5)
    return described


def one_process(predictor, data: bytes, name: str) -> tuple[rows.BatchResult, str, str]:
    predictions, errors = io.StringIO(), io.StringIO()
    result = lines.score_lines(io.BytesIO(data), name, predictor, predictions, errors)
    return result, predictions.getvalue(), errors.getvalue()


def bad_rows_csv(model, copies: int) -> bytes:
    """Held-out rows repeated, with rows a spreadsheet user gets wrong spread through the file."""
    header, *rows = model.csv().splitlines()
    lines = [header]
    for i in range(copies):
        for j, row in enumerate(rows):
            if (i * len(rows) + j) % 97 == 5:
                row = "oops," + row.split(",", 1)[1]
            elif (i * len(rows) + j) % 131 == 7:
                row = row.rsplit(",", 1)[0]
            lines.append(row)
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()


@pytest.fixture(scope="module")
def direct_only(stack):
    """The tests below start executions themselves, with options (parts, workers, faults), as an
    operator would: the S3 → EventBridge trigger (the test above) is paused meanwhile, or dropping
    their files would start a second execution of each."""
    from infra import deploy

    with deploy.batch_trigger_paused(stack["endpoint"], stack["stack_name"]):
        yield


@pytest.fixture(scope="module")
def pinned_model(stack, direct_only):
    """A model of the tests' own (test models, published as a user would): promoting it moves no other test."""
    s3 = client("s3", stack["endpoint"])
    first, second = case("bc-lightgbm"), case("bc-catboost")
    versions = []
    for model in (first, second):
        manifest = bundles.publish(s3, stack["model_bucket"], "batch-pinned", model.arrays, model.manifest_fields())
        versions.append(manifest["version"])
    bundles.set_champion(s3, stack["model_bucket"], "batch-pinned", versions[0], "batch tests")
    return {"name": "batch-pinned", "versions": versions, "cases": (first, second)}


def predictor_of(stack, name: str, version: int) -> Predictor:
    loaded = bundles.load(client("s3", stack["endpoint"]), stack["model_bucket"], name, version)
    return Predictor(loaded, unknown_category="reject")


def test_a_dropped_csv_is_scored_with_errors_reported(stack, trained):
    s3 = client("s3", stack["endpoint"])
    champion = bundles.load_champion(s3, stack["model_bucket"], "breast-cancer")
    data = D.load("breast_cancer")
    rows = data.X.iloc[:200].copy().astype(object)
    rows.iloc[7, 0] = "oops"  # row id 8: mean radius
    buffer = io.StringIO()
    rows.to_csv(buffer, index=False)
    s3.put_object(Bucket=stack["data_bucket"], Key="batch/input/sample.csv", Body=buffer.getvalue().encode())

    manifest = json.loads(wait_for(s3, stack["data_bucket"], "batch/output/sample.manifest.json"))
    predictions = list(csv.DictReader(io.StringIO(
        wait_for(s3, stack["data_bucket"], "batch/output/sample.predictions.csv"))))
    errors = list(csv.DictReader(io.StringIO(
        wait_for(s3, stack["data_bucket"], "batch/output/sample.errors.csv"))))
    assert (manifest["rows"], manifest["predicted"], manifest["invalid"]) == (200, 199, 1)
    assert manifest["model_version"] == champion.version
    assert len(predictions) == 199
    assert [(e["row_id"], e["field"]) for e in errors] == [("8", "mean radius")]
    kept = [i for i in range(200) if i != 7]
    expected = served_predictions(champion.arrays,
        D.to_matrix(data.X.iloc[kept], champion.feature_schema))
    served = np.array([[float(r[f"probability_{c}"]) for c in champion.classes] for r in predictions])
    assert np.max(np.abs(served - expected)) <= 1e-12


def test_a_file_in_many_parts_with_bad_rows_equals_one_process_scoring(stack, pinned_model):
    s3 = client("s3", stack["endpoint"])
    model = pinned_model["cases"][0]
    data = bad_rows_csv(model, copies=40)  # ~4,500 rows
    key = "batch/input/batch-pinned/parts.csv"
    s3.put_object(Bucket=stack["data_bucket"], Key=key, Body=data)
    described = finish(stack, start(stack, key, part_megabytes=80_000 / (1 << 20), concurrency=4))
    assert described["status"] == "SUCCEEDED", described.get("cause")
    manifest = json.loads(wait_for(s3, stack["data_bucket"], "batch/output/batch-pinned/parts.manifest.json"))
    result, predictions, errors = one_process(
        predictor_of(stack, "batch-pinned", pinned_model["versions"][0]), data, "parts.csv")
    assert len(manifest["parts"]) >= 8
    assert (manifest["rows"], manifest["predicted"], manifest["invalid"]) == (
        result.rows, result.predicted, result.invalid)
    assert manifest["rows"] == manifest["predicted"] + manifest["invalid"] and result.invalid > 40
    assert sum(p["rows"] for p in manifest["parts"]) == result.rows
    out = "batch/output/batch-pinned/parts"
    assert wait_for(s3, stack["data_bucket"], f"{out}.predictions.csv") == predictions
    assert wait_for(s3, stack["data_bucket"], f"{out}.errors.csv") == errors
    work = s3.list_objects_v2(Bucket=stack["data_bucket"], Prefix="batch/work/").get("Contents", [])
    assert work == []


def test_a_worker_made_to_fail_once_is_retried_without_duplicates(stack, pinned_model):
    s3 = client("s3", stack["endpoint"])
    data = bad_rows_csv(pinned_model["cases"][0], copies=10)
    key = "batch/input/batch-pinned/retried.csv"
    s3.put_object(Bucket=stack["data_bucket"], Key=key, Body=data)
    execution = start(stack, key, part_megabytes=40_000 / (1 << 20), concurrency=2,
                      fault={"part": 1, "attempts": 1})
    described = finish(stack, execution)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    manifest = json.loads(wait_for(s3, stack["data_bucket"], "batch/output/batch-pinned/retried.manifest.json"))
    assert [p["attempt"] for p in manifest["parts"]][:3] == [0, 1, 0]  # part 1 failed once and was retried
    _, predictions, errors = one_process(
        predictor_of(stack, "batch-pinned", pinned_model["versions"][0]), data, "retried.csv")
    served = wait_for(s3, stack["data_bucket"], "batch/output/batch-pinned/retried.predictions.csv")
    assert served == predictions  # no row twice, none lost: the retry replaced the half-written part
    assert wait_for(s3, stack["data_bucket"], "batch/output/batch-pinned/retried.errors.csv") == errors


def test_a_worker_that_keeps_failing_fails_the_file_loudly_and_leaves_no_output(stack, pinned_model):
    s3 = client("s3", stack["endpoint"])
    key = "batch/input/batch-pinned/broken.csv"
    s3.put_object(Bucket=stack["data_bucket"], Key=key, Body=bad_rows_csv(pinned_model["cases"][0], copies=4))
    described = finish(stack, start(stack, key, part_megabytes=20_000 / (1 << 20), fault={"part": 0, "attempts": 9}))
    assert (described["status"], described["error"]) == ("FAILED", "BatchScoringFailed")
    assert described["cause"].startswith(f"{key} could not be scored: ")
    outputs = s3.list_objects_v2(Bucket=stack["data_bucket"], Prefix="batch/output/batch-pinned/broken")
    assert outputs.get("Contents", []) == []
    work = s3.list_objects_v2(Bucket=stack["data_bucket"], Prefix="batch/work/").get("Contents", [])
    assert work == []


def test_a_champion_promoted_mid_run_does_not_mix_versions_in_one_file(stack, pinned_model):
    s3 = client("s3", stack["endpoint"])
    sfn = client("stepfunctions", stack["endpoint"])
    old, new = pinned_model["versions"]
    data = bad_rows_csv(pinned_model["cases"][0], copies=10)
    key = "batch/input/batch-pinned/pinned.csv"
    s3.put_object(Bucket=stack["data_bucket"], Key=key, Body=data)
    # one worker at a time, and the last part fails once: the run outlasts the promotion
    execution = start(stack, key, part_megabytes=40_000 / (1 << 20), concurrency=1,
                      fault={"part": 3, "attempts": 1})
    deadline = time.monotonic() + 60
    while not any(e["type"] == "MapStateEntered"
                  for e in sfn.get_execution_history(executionArn=execution, maxResults=100)["events"]):
        assert time.monotonic() < deadline, "the execution never got past planning"
        time.sleep(0.2)
    bundles.set_champion(s3, stack["model_bucket"], "batch-pinned", new, "promoted mid-run")
    promoted = time.time()
    try:
        described = finish(stack, execution)
    finally:
        bundles.set_champion(s3, stack["model_bucket"], "batch-pinned", old, "batch tests")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    manifest = json.loads(wait_for(s3, stack["data_bucket"], "batch/output/batch-pinned/pinned.manifest.json"))
    assert manifest["model_version"] == old
    assert max(p["finished"] for p in manifest["parts"]) > promoted  # parts were scored after the promotion
    _, predictions, _ = one_process(predictor_of(stack, "batch-pinned", old), data, "pinned.csv")
    assert wait_for(s3, stack["data_bucket"], "batch/output/batch-pinned/pinned.predictions.csv") == predictions
    _, by_new, _ = one_process(predictor_of(stack, "batch-pinned", new), data, "pinned.csv")
    assert by_new != predictions  # the two versions do disagree: the check above could fail


def test_json_lines_in_parts_are_scored_and_numbered_as_one_file(stack, pinned_model):
    s3 = client("s3", stack["endpoint"])
    model = pinned_model["cases"][0]
    lines = [json.dumps(row) for _ in range(20) for row in model.instances]
    lines[10] = "{broken"
    data = ("\n".join(lines) + "\n").encode()
    key = "batch/input/batch-pinned/rows.jsonl"
    s3.put_object(Bucket=stack["data_bucket"], Key=key, Body=data)
    described = finish(stack, start(stack, key, part_megabytes=100_000 / (1 << 20), concurrency=3))
    assert described["status"] == "SUCCEEDED", described.get("cause")
    _, predictions, errors = one_process(
        predictor_of(stack, "batch-pinned", pinned_model["versions"][0]), data, "rows.jsonl")
    assert wait_for(s3, stack["data_bucket"], "batch/output/batch-pinned/rows.predictions.csv") == predictions
    assert wait_for(s3, stack["data_bucket"], "batch/output/batch-pinned/rows.errors.csv") == errors
    assert errors.splitlines()[1].startswith("11,")


def test_a_parquet_file_is_scored_in_parts_of_row_groups_as_one_process_scores_it(stack, pinned_model):
    # the batch functions' own package reads it: pyarrow, pruned (functions/Makefile), on the host's runtime
    import pyarrow as pa
    import pyarrow.parquet as pq

    s3 = client("s3", stack["endpoint"])
    model = pinned_model["cases"][0]
    names = [f["name"] for f in model.schema]
    instances = model.instances * 10
    columns = {name: [row[name] for row in instances] for name in names}
    columns[names[0]][3] = None  # reported: the feature had no missing values
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out, row_group_size=100)
    data = out.getvalue()
    key = "batch/input/batch-pinned/rows.parquet"
    s3.put_object(Bucket=stack["data_bucket"], Key=key, Body=data)
    described = finish(stack, start(stack, key, part_megabytes=len(data) / 4 / (1 << 20), concurrency=4))
    assert described["status"] == "SUCCEEDED", described.get("cause")
    manifest = json.loads(wait_for(s3, stack["data_bucket"], "batch/output/batch-pinned/rows.manifest.json"))
    predictions, errors = io.StringIO(), io.StringIO()
    result = parquet.score_parquet(io.BytesIO(data), predictor_of(stack, "batch-pinned", pinned_model["versions"][0]),
                                 predictions, errors)
    assert len(manifest["parts"]) >= 4 and result.row_groups == pq.ParquetFile(io.BytesIO(data)).num_row_groups
    assert (manifest["rows"], manifest["predicted"], manifest["invalid"]) == (len(instances), len(instances) - 1, 1)
    assert (result.rows, result.predicted, result.invalid) == (manifest["rows"], manifest["predicted"],
                                                               manifest["invalid"])
    out_key = "batch/output/batch-pinned/rows"
    assert wait_for(s3, stack["data_bucket"], f"{out_key}.predictions.csv") == predictions.getvalue()
    assert wait_for(s3, stack["data_bucket"], f"{out_key}.errors.csv") == errors.getvalue()
    assert errors.getvalue().splitlines()[1].startswith(f"4,{names[0]},")
