"""Batch scoring from the console: an upload URL for one file, then its progress and results.

    POST /models/{name}/batches        {"filename", "bytes"} → a batch id and a presigned
                                       upload (POST form) for batch/input/<name>/<id>.<ext>
    GET  /models/{name}/batches/{id}   where that batch is: waiting for its file, queued,
                                       running (parts done, rows so far), succeeded (the
                                       manifest's counts, presigned downloads), refused, failed

The upload starts the scoring as any file under batch/input/ does (S3 → EventBridge
→ Step Functions, serving/batch/steps.py); nothing here starts paid work itself.
URLs are presigned for one key each and expire after PRESIGNED_URL_SECONDS; the
upload form also bounds the size (S3 refuses a body outside its content-length-range).
"""

from __future__ import annotations

import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from serving.api.openapi import UPLOAD_NAME_PATTERN
from serving.batch.rows import FORMATS, INPUT_PREFIX, OUTPUT_PREFIX, WORK_PREFIX
from serving.model.bundle import champion_key, check_name
from serving.model.features import RequestError
from serving.settings import ConsoleSettings

BATCH_ID = re.compile(r"[0-9a-f]{32}")
FILENAME = re.compile(UPLOAD_NAME_PATTERN)
LOOK_BACK = timedelta(minutes=2)  # an execution starts after its upload; their clocks may differ this much
EXECUTIONS_SEEN = 50  # the newest executions searched for a batch's own
FILENAME_FIELD = "x-amz-meta-filename"


class BatchConsole:
    def __init__(self, settings: ConsoleSettings, s3: Any, stepfunctions: Any) -> None:
        self.settings, self.s3, self.sfn = settings, s3, stepfunctions

    # ---- POST /models/{name}/batches

    def create(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        self._model(name)
        filename, size = request.get("filename"), request.get("bytes")
        if not isinstance(filename, str):
            raise RequestError(400, "filename: the file's name, for example rides.csv")
        extension = next((f for f in FORMATS if filename.lower().endswith(f)), None)
        if extension is None:
            raise RequestError(400, f"filename: {filename[:200]} is not a table this API scores: use "
                                    f"{', '.join(FORMATS)}")
        if not FILENAME.fullmatch(filename):
            raise RequestError(400, "filename: the file's name (letters, digits, spaces and ._()-, at most "
                                    "200 in all), for example rides.csv")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise RequestError(400, "bytes: the file's size in bytes, a positive integer")
        limit = int(self.settings.upload_max_megabytes * 1024 * 1024)
        if size > limit:
            raise RequestError(413, f"bytes: {size} is over the {limit} a browser upload takes here; "
                                    f"upload it with `aws s3 cp {filename} s3://{self.settings.data_bucket}/"
                                    f"{INPUT_PREFIX}{name}/` (a multipart upload), which scores it the same "
                                    "way")
        batch = uuid.uuid4().hex
        key = f"{INPUT_PREFIX}{name}/{batch}{extension}"
        # the user's name for the file rides along (the downloads are named after it)
        upload = self.s3.generate_presigned_post(
            self.settings.data_bucket, key, Fields={FILENAME_FIELD: filename},
            Conditions=[["content-length-range", 1, limit], {FILENAME_FIELD: filename}],
            ExpiresIn=self.settings.url_seconds)
        return {"id": batch, "model": name, "filename": filename, "input": key,
                "upload": {"method": "POST", "url": upload["url"], "fields": upload["fields"],
                           "max_bytes": limit, "expires_in": self.settings.url_seconds},
                "status": f"/models/{name}/batches/{batch}"}

    # ---- GET /models/{name}/batches/{id}

    def status(self, name: str, batch: str) -> dict[str, Any]:
        check = self._valid_name(name)
        if not isinstance(batch, str) or not BATCH_ID.fullmatch(batch):
            raise RequestError(400, "id: a batch id is 32 hexadecimal digits, as POST /models/{name}/batches "
                                    "answered")
        self._model(name)
        prefix = f"{INPUT_PREFIX}{check}/{batch}."
        found = self.s3.list_objects_v2(Bucket=self.settings.data_bucket, Prefix=prefix,
                                        MaxKeys=1).get("Contents") or []
        answer: dict[str, Any] = {"id": batch, "model": name}
        if not found:
            return {**answer, "state": "waiting_for_upload"}
        key = found[0]["Key"]
        # the name the upload form carried (a file copied in another way has none: the batch id names it)
        filename = self.s3.head_object(Bucket=self.settings.data_bucket, Key=key)["Metadata"].get("filename")
        answer.update(input=key, bytes=found[0]["Size"], filename=filename)
        stem = f"{OUTPUT_PREFIX}{name}/{batch}"
        downloaded = filename.rsplit(".", 1)[0] if filename and FILENAME.fullmatch(filename) else batch
        manifest = self._json(f"{stem}.manifest.json")
        if manifest is not None:
            return {**answer, **self._succeeded(manifest, stem, downloaded)}
        execution = self._execution(key, found[0]["LastModified"])
        if execution is None:
            return {**answer, "state": "queued"}
        answer["started"] = execution["startDate"].isoformat()
        if execution["status"] == "RUNNING":
            return {**answer, "state": "running", **self._progress(execution)}
        if execution["status"] == "SUCCEEDED":  # done without a manifest: the file could not be scored at all
            return {**answer, "state": "refused", "reason": json.loads(execution["output"])["unreadable"],
                    "downloads": {"errors": self._download(f"{stem}.errors.csv", f"{downloaded}.errors.csv")}}
        return {**answer, "state": "failed", "error": execution.get("error") or execution["status"],
                "cause": (execution.get("cause") or "")[:2000]}

    # ---- helpers

    def _valid_name(self, name: str) -> str:
        try:
            return check_name(name)
        except ValueError as error:
            raise RequestError(400, str(error)) from None

    def _model(self, name: str) -> None:
        """A model with a champion: uploads for any other name would be scored into an errors file."""
        key = champion_key(self._valid_name(name))
        try:
            self.s3.head_object(Bucket=self.settings.model_bucket, Key=key)
        except self.s3.exceptions.ClientError as error:
            if error.response["Error"]["Code"] == "404":  # (a HEAD's error has no body: the status)
                raise RequestError(404, f"no model named {name!r} has a champion: GET /models lists "
                                        "them") from None
            raise

    def _json(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.s3.get_object(Bucket=self.settings.data_bucket, Key=key)["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return None

    def _download(self, key: str, name: str) -> str:
        """A short-lived link to ``key`` that saves it as ``name``."""
        return self.s3.generate_presigned_url("get_object", ExpiresIn=self.settings.url_seconds, Params={
            "Bucket": self.settings.data_bucket, "Key": key,
            "ResponseContentDisposition": f'attachment; filename="{name}"'})

    def _succeeded(self, manifest: dict[str, Any], output: str, named: str) -> dict[str, Any]:
        """The manifest's counts and links to the outputs under ``output`` (<output>.predictions.csv...),
        saved as <named>.predictions.csv..."""
        files = [f for f in ("predictions.csv", "errors.csv", "manifest.json")
                 if f == "manifest.json" or f"{output}.{f}" in manifest["outputs"]]
        return {"state": "succeeded", "model_version": manifest["model_version"],
                **{k: manifest[k] for k in ("rows", "predicted", "invalid")},
                "seconds": manifest["timings"]["seconds"], "evaluation": manifest.get("evaluation"),
                "downloads": {f.split(".")[0]: self._download(f"{output}.{f}", f"{named}.{f}")
                              for f in files}}

    def _execution(self, key: str, uploaded) -> dict[str, Any] | None:
        """The execution that scores ``key``: the newest ones started since its upload, described
        until one's input names it."""
        listed = self.sfn.list_executions(stateMachineArn=self.settings.state_machine_arn,
                                          maxResults=EXECUTIONS_SEEN)["executions"]
        for item in listed:  # (a batch's key is new: one execution at most has it)
            if item["startDate"] >= uploaded - LOOK_BACK:
                described = self.sfn.describe_execution(executionArn=item["executionArn"])
                if json.loads(described["input"])["detail"]["object"]["key"] == key:
                    return described
        return None

    def _progress(self, execution: dict[str, Any]) -> dict[str, Any]:
        """Parts done of the latest map run (rows are counted first when the file has many parts,
        then scored), and the rows of the parts scored so far."""
        runs = self.sfn.list_map_runs(executionArn=execution["executionArn"]).get("mapRuns") or []
        parts = None
        if runs:
            latest = max(runs, key=lambda r: r["startDate"])
            counts = self.sfn.describe_map_run(mapRunArn=latest["mapRunArn"])["itemCounts"]
            # the Map states' Labels name their runs: Count, then Score
            parts = {"done": counts["succeeded"], "total": counts["total"],
                     "stage": "counting rows" if "/Count:" in latest["mapRunArn"] else "scoring"}
        work = f"{WORK_PREFIX}{execution['name']}/part-"
        listed = self.s3.list_objects_v2(Bucket=self.settings.data_bucket, Prefix=work).get("Contents") or []
        records = [item["Key"] for item in listed if item["Key"].endswith(".json")]
        with ThreadPoolExecutor(8) as pool:  # a part's record is written once, whole: it is there to read
            rows = sum(pool.map(lambda k: self._json(k)["rows"], records))
        return {"parts": parts, "rows_scored": rows}
