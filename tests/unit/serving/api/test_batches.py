"""Batch scoring from the console: the upload form S3 takes, and each state a batch reports.

S3 is moto's server (the upload form is posted to it as a browser would); Step Functions is a
fake with the executions and map runs the routes read.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests
from botocore.config import Config
from serving.api.batches import LOOK_BACK, BatchConsole
from serving.model.features import RequestError
from serving.settings import ConsoleSettings

DATA, MODELS = "data", "models"
MACHINE = "arn:aws:states:us-east-1:000000000000:stateMachine:stack-batch-scoring"
NOW = datetime.now(UTC)


class StepFunctions:
    def __init__(self):
        self.executions: list[dict] = []
        self.map_runs: dict[str, list[dict]] = {}
        self.counts: dict[str, dict] = {}
        self.described: list[str] = []

    def add(self, key: str, status: str = "RUNNING", started=None, **extra) -> dict:
        """An execution of ``key``, started now (its file was just uploaded) unless ``started`` says."""
        name = f"exec-{len(self.executions)}"
        execution = {"executionArn": f"{MACHINE.replace('stateMachine', 'execution')}:{name}", "name": name,
                     "status": status, "startDate": started or datetime.now(UTC),
                     "input": json.dumps({"detail": {"object": {"key": key}}}), **extra}
        self.executions.append(execution)
        return execution

    def list_executions(self, stateMachineArn, maxResults):
        assert stateMachineArn == MACHINE
        return {"executions": [{k: e[k] for k in ("executionArn", "name", "status", "startDate")}
                               for e in self.executions[::-1][:maxResults]]}

    def describe_execution(self, executionArn):
        self.described.append(executionArn)
        return next(e for e in self.executions if e["executionArn"] == executionArn)

    def list_map_runs(self, executionArn):
        return {"mapRuns": self.map_runs.get(executionArn, [])}

    def describe_map_run(self, mapRunArn):
        return {"itemCounts": self.counts[mapRunArn]}


@pytest.fixture
def s3(moto_s3):
    client = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
    client.create_bucket(Bucket=DATA)  # (moto_s3 made the model bucket, "models")
    client.put_object(Bucket=MODELS, Key="models/fares/champion.json", Body=b'{"version": 3}')
    return client


@pytest.fixture
def sfn():
    return StepFunctions()


def settings(**overrides) -> ConsoleSettings:
    return ConsoleSettings(**{"model_bucket": MODELS, "data_bucket": DATA, "state_machine_arn": MACHINE,
                              "auth_issuer": "https://issuer", "auth_audience": "client",
                              "auth_jwks_url": "https://issuer/.well-known/jwks.json", **overrides})


@pytest.fixture
def console(s3, sfn):
    return BatchConsole(settings(upload_max_megabytes=1.0, url_seconds=120), s3, sfn)


def error_of(call, *args) -> RequestError:
    with pytest.raises(RequestError) as raised:
        call(*args)
    return raised.value


def post_form(batch: dict, body: bytes) -> requests.Response:
    upload = batch["upload"]
    return requests.post(upload["url"], data=upload["fields"], files={"file": ("x", body)}, timeout=10)


def test_an_upload_form_puts_the_file_under_the_models_input_folder(console, s3):
    batch = console.create("fares", {"filename": "rides (May).csv", "bytes": 20})
    assert len(batch["id"]) == 32 and int(batch["id"], 16) >= 0
    assert (batch["model"], batch["filename"]) == ("fares", "rides (May).csv")
    assert batch["input"] == f"batch/input/fares/{batch['id']}.csv"
    assert batch["status"] == f"/models/fares/batches/{batch['id']}"
    assert batch["upload"]["method"] == "POST" and batch["upload"]["max_bytes"] == 1024 * 1024
    assert batch["upload"]["expires_in"] == 120
    assert batch["upload"]["fields"]["key"] == batch["input"]
    assert post_form(batch, b"km,street\n1.5,a\n").status_code == 204
    stored = s3.head_object(Bucket=DATA, Key=batch["input"])
    assert stored["ContentLength"] == 16 and stored["Metadata"] == {"filename": "rides (May).csv"}


def test_the_forms_policy_binds_its_one_key_name_and_size_and_expires(console):
    # (moto does not enforce POST policies; LocalStack does: tests/integration/test_console_routes.py)
    batch = console.create("fares", {"filename": "rides.csv", "bytes": 20})
    policy = json.loads(base64.b64decode(batch["upload"]["fields"]["policy"]))
    assert {"key": batch["input"]} in policy["conditions"]
    assert {"bucket": DATA} in policy["conditions"]
    assert ["content-length-range", 1, 1024 * 1024] in policy["conditions"]
    assert {"x-amz-meta-filename": "rides.csv"} in policy["conditions"]
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert timedelta(seconds=110) < expires - datetime.now(UTC) <= timedelta(seconds=120)
    assert batch["upload"]["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"


@pytest.mark.parametrize("extension", [".csv", ".jsonl", ".ndjson", ".parquet"])
def test_every_batch_format_keeps_its_extension(console, extension):
    assert console.create("fares", {"filename": f"F{extension.upper()}", "bytes": 1})["input"].endswith(extension)


@pytest.mark.parametrize("request_body, status, message", [
    ({"filename": "rides.xlsx", "bytes": 5}, 400,
     "filename: rides.xlsx is not a table this API scores: use .csv, .jsonl, .ndjson, .parquet"),
    ({"filename": "../x.csv", "bytes": 5}, 400, "filename: the file's name (letters, digits, spaces and ._()-, at "
                                               "most 200 in all), for example rides.csv"),
    ({"filename": "a/b.csv", "bytes": 5}, 400, "filename: the file's name"),
    ({"filename": "a" * 200 + ".csv", "bytes": 5}, 400, "filename: the file's name"),
    ({"filename": "a" * 192 + ".parquet", "bytes": 5}, 400, "filename: the file's name"),
    ({"filename": " a.csv", "bytes": 5}, 400, "filename: the file's name"),
    ({"filename": "a.csv\n", "bytes": 5}, 400, "filename: a.csv\n is not a table"),
    ({"filename": "b" * 300 + ".xlsx", "bytes": 5}, 400, f"filename: {'b' * 200} is not a table this API scores"),
    ({"filename": 5, "bytes": 5}, 400, "filename: the file's name"),
    ({"bytes": 5}, 400, "filename: the file's name"),
    ({"filename": "a.csv", "bytes": 0}, 400, "bytes: the file's size in bytes, a positive integer"),
    ({"filename": "a.csv", "bytes": 1.5}, 400, "bytes: the file's size in bytes, a positive integer"),
    ({"filename": "a.csv", "bytes": True}, 400, "bytes: the file's size in bytes, a positive integer"),
    ({"filename": "a.csv"}, 400, "bytes: the file's size in bytes, a positive integer"),
    ({"filename": "a.csv", "bytes": 1024 * 1024 + 1}, 413,
     "bytes: 1048577 is over the 1048576 a browser upload takes here; upload it with `aws s3 cp a.csv "
     "s3://data/batch/input/fares/` (a multipart upload), which scores it the same way"),
])
def test_a_bad_request_names_its_field(console, request_body, status, message):
    error = error_of(console.create, "fares", request_body)
    assert error.status == status and error.message.startswith(message)
    assert "b" * 201 not in error.message  # a long name is cut in the answer


def test_the_longest_name_is_taken(console):
    assert console.create("fares", {"filename": "a" * 191 + ".ndjson", "bytes": 1})["filename"] == "a" * 191 + ".ndjson"


def test_the_largest_browser_upload_is_taken(console):
    assert console.create("fares", {"filename": "a.csv", "bytes": 1024 * 1024})["upload"]["max_bytes"] == 1024 * 1024


def test_a_model_without_a_champion_or_a_bad_name_gets_no_form(console):
    assert error_of(console.create, "penguins", {"filename": "a.csv", "bytes": 5}).status == 404
    bad = error_of(console.create, "../models", {"filename": "a.csv", "bytes": 5})
    assert bad.status == 400 and "model name '../models' is not valid" in bad.message


def test_a_batch_id_must_be_one_the_route_gives(console):
    for batch in ("abc", "A" * 32, "0" * 31, "0" * 33, "../" + "0" * 29):
        error = error_of(console.status, "fares", batch)
        assert (error.status, error.message) == (400, "id: a batch id is 32 hexadecimal digits, as POST "
                                                      "/models/{name}/batches answered")
    assert error_of(console.status, "a/b", "0" * 32).status == 400
    unknown = error_of(console.status, "penguins", "0" * 32)  # the fuzzer's find: no 200 for a model not served
    assert (unknown.status, unknown.message) == (404, "no model named 'penguins' has a champion: GET /models "
                                                      "lists them")


def test_a_batch_waits_for_its_file_then_for_its_execution(console, sfn, s3):
    s3.put_object(Bucket=DATA, Key="batch/input/a-file-before.csv", Body=b"x\n1\n")  # another file, listed first
    batch = console.create("fares", {"filename": "rides.csv", "bytes": 20})
    status = console.status("fares", batch["id"])
    assert status == {"id": batch["id"], "model": "fares", "state": "waiting_for_upload"}
    post_form(batch, b"km\n1\n")
    sfn.add("batch/input/fares/other.csv")  # another file's execution
    status = console.status("fares", batch["id"])
    assert status["state"] == "queued" and status["filename"] == "rides.csv" and status["bytes"] == 5
    assert status["input"] == batch["input"]


def test_executions_started_long_before_the_upload_are_not_described(console, sfn):
    batch = console.create("fares", {"filename": "rides.csv", "bytes": 20})
    post_form(batch, b"km\n1\n")
    sfn.add(batch["input"], started=datetime.now(UTC) - timedelta(minutes=10))  # an older file of the same key cannot be
    assert console.status("fares", batch["id"])["state"] == "queued"
    assert sfn.described == []


def test_an_execution_started_at_the_look_back_limit_is_the_batchs(console, sfn, s3):
    batch = console.create("fares", {"filename": "rides.csv", "bytes": 20})
    post_form(batch, b"km\n1\n")
    uploaded = s3.head_object(Bucket=DATA, Key=batch["input"])["LastModified"]
    sfn.add(batch["input"], started=uploaded - LOOK_BACK)
    assert console.status("fares", batch["id"])["state"] == "running"


def test_a_running_batch_shows_its_parts_and_the_rows_scored_so_far(console, sfn, s3):
    batch = console.create("fares", {"filename": "rides.csv", "bytes": 20})
    post_form(batch, b"km\n1\n")
    execution = sfn.add(batch["input"])
    count = f"arn:aws:states:us-east-1:0:mapRun:stack-batch-scoring/Count:{'1' * 8}"
    score = f"arn:aws:states:us-east-1:0:mapRun:stack-batch-scoring/Score:{'2' * 8}"
    sfn.map_runs[execution["executionArn"]] = [{"mapRunArn": count, "startDate": NOW},
                                               {"mapRunArn": score, "startDate": NOW + timedelta(seconds=3)}]
    sfn.counts[score] = {"succeeded": 2, "total": 5, "running": 3}
    sfn.counts[count] = {"succeeded": 5, "total": 5}
    work = f"batch/work/{execution['name']}/"
    for index, rows in ((0, 1000), (1, 998)):
        s3.put_object(Bucket=DATA, Key=f"{work}part-{index:05d}.json", Body=json.dumps({"rows": rows}).encode())
    s3.put_object(Bucket=DATA, Key=f"{work}part-00001.predictions.csv", Body=b"not a record")
    s3.put_object(Bucket=DATA, Key=f"{work}parts.json", Body=b"[]")
    s3.put_object(Bucket=DATA, Key="batch/work/exec-other/part-00000.json", Body=b'{"rows": 7}')  # not this one
    status = console.status("fares", batch["id"])
    assert status["state"] == "running" and status["started"] == execution["startDate"].isoformat()
    assert status["parts"] == {"done": 2, "total": 5, "stage": "scoring"}
    assert status["rows_scored"] == 1998
    sfn.map_runs[execution["executionArn"]] = [{"mapRunArn": count, "startDate": NOW}]
    assert console.status("fares", batch["id"])["parts"] == {"done": 5, "total": 5, "stage": "counting rows"}
    sfn.map_runs[execution["executionArn"]] = []
    assert console.status("fares", batch["id"])["parts"] is None


def test_a_finished_batch_offers_its_outputs_named_after_the_users_file(console, sfn, s3):
    batch = console.create("fares", {"filename": "rides.May.csv", "bytes": 20})
    post_form(batch, b"km\n1\n2\n")
    sfn.add(batch["input"], status="SUCCEEDED")
    stem = f"batch/output/fares/{batch['id']}"
    s3.put_object(Bucket=DATA, Key=f"{stem}.predictions.csv", Body=b"row_id,prediction\n1,9.5\n")
    s3.put_object(Bucket=DATA, Key=f"{stem}.errors.csv", Body=b"row_id,field,message\n2,km,bad\n")
    manifest = {"outputs": [f"{stem}.predictions.csv", f"{stem}.errors.csv"], "rows": 2, "predicted": 1,
                "invalid": 1, "model_version": 3, "timings": {"seconds": 1.25}, "evaluation": {"rmse": 1.0}}
    s3.put_object(Bucket=DATA, Key=f"{stem}.manifest.json", Body=json.dumps(manifest).encode())
    status = console.status("fares", batch["id"])
    assert {k: status[k] for k in ("state", "rows", "predicted", "invalid", "model_version", "seconds",
                                   "evaluation")} == {"state": "succeeded", "rows": 2, "predicted": 1, "invalid": 1,
                                                      "model_version": 3, "seconds": 1.25,
                                                      "evaluation": {"rmse": 1.0}}
    assert sorted(status["downloads"]) == ["errors", "manifest", "predictions"]
    for kind, body in (("predictions", b"row_id,prediction\n1,9.5\n"), ("errors", b"row_id,field,message\n2,km,bad\n")):
        got = requests.get(status["downloads"][kind], timeout=10)
        assert got.status_code == 200 and got.content == body
        assert got.headers["Content-Disposition"] == f'attachment; filename="rides.May.{kind}.csv"'
        assert "X-Amz-Expires=120" in status["downloads"][kind]
    assert json.loads(requests.get(status["downloads"]["manifest"], timeout=10).content)["rows"] == 2


def test_a_clean_batch_has_no_errors_file_and_a_file_copied_in_is_named_after_its_batch(console, sfn, s3):
    batch = console.create("fares", {"filename": "rides.csv", "bytes": 20})
    s3.put_object(Bucket=DATA, Key=batch["input"], Body=b"km\n1\n")  # `aws s3 cp`: no name of the user's
    stem = f"batch/output/fares/{batch['id']}"
    manifest = {"outputs": [f"{stem}.predictions.csv"], "rows": 1, "predicted": 1, "invalid": 0,
                "model_version": 2, "timings": {"seconds": 0.5}}
    s3.put_object(Bucket=DATA, Key=f"{stem}.manifest.json", Body=json.dumps(manifest).encode())
    status = console.status("fares", batch["id"])
    assert status["filename"] is None and status["evaluation"] is None
    assert sorted(status["downloads"]) == ["manifest", "predictions"]
    assert f'filename%3D%22{batch["id"]}.predictions.csv%22' in status["downloads"]["predictions"]
    assert f'{stem}.manifest.json' in status["downloads"]["manifest"]
    assert f'filename%3D%22{batch["id"]}.manifest.json%22' in status["downloads"]["manifest"]


def test_a_file_that_could_not_be_scored_says_why(console, sfn, s3):
    batch = console.create("fares", {"filename": "rides.csv", "bytes": 20})
    post_form(batch, b"\x00\x01")
    sfn.add(batch["input"], status="SUCCEEDED", output=json.dumps({"done": True, "unreadable": "no header"}))
    s3.put_object(Bucket=DATA, Key=f"batch/output/fares/{batch['id']}.errors.csv", Body=b"why\n")
    status = console.status("fares", batch["id"])
    assert status["state"] == "refused" and status["reason"] == "no header"
    assert 'filename%3D%22rides.errors.csv%22' in status["downloads"]["errors"]


def test_a_failed_execution_says_its_error_and_cause(console, sfn):
    batch = console.create("fares", {"filename": "rides.csv", "bytes": 20})
    post_form(batch, b"km\n1\n")
    sfn.add(batch["input"], status="FAILED", error="RowsNotAccountedFor", cause="x" * 5000)
    status = console.status("fares", batch["id"])
    assert status["state"] == "failed" and status["error"] == "RowsNotAccountedFor"
    assert status["cause"] == "x" * 2000
    sfn.executions[-1].update(status="TIMED_OUT", error=None, cause=None)
    status = console.status("fares", batch["id"])
    assert (status["state"], status["error"], status["cause"]) == ("failed", "TIMED_OUT", "")
