"""An in-process S3 for the tests of code that makes many S3 calls (the batch steps): the calls those
modules make, answered from a dict with S3's rules, in microseconds instead of moto's milliseconds
over HTTP. The same object stands in for boto3's client and for ``serving.store.s3.S3Reader``.

S3's rules kept here: versioned buckets (a write adds a version, a delete adds a marker), conditional
writes (``IfNoneMatch="*"`` refuses an existing key with 412), ETags (``IfNoneMatch`` on a read of
an unchanged object answers 304), inclusive byte ranges clipped to the object, listings in key order
with prefixes, delimiters and continuation, and multipart uploads whose parts but the last are at
least 5 MiB. Every call's parameters are checked against S3's model, as botocore checks them. Errors are botocore's ``ClientError`` with S3's codes and statuses, as the client
raises them. ``down`` makes every call fail as an unreachable S3 does (``ConnectionRefusedError``);
``within`` is the reader's time budget, written down in ``budgets``. What the fake does not model (signatures, throttling, eventual listings) is tested
against moto and LocalStack (tests/unit/serving/store/test_s3.py, tests/integration/).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import itertools
import re
import threading
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

MIN_PART = 5 << 20


class NoSuchKey(ClientError):
    pass


class NoSuchBucket(ClientError):
    pass


class Exceptions:
    ClientError = ClientError
    NoSuchKey = NoSuchKey
    NoSuchBucket = NoSuchBucket


def _error(kind: type[ClientError], status: int, code: str, operation: str) -> ClientError:
    return kind({"Error": {"Code": code, "Message": code},
                 "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class Body(io.BytesIO):
    """botocore's StreamingBody, as far as the code reads it."""

    def iter_chunks(self, chunk_size: int = 1024):
        while chunk := self.read(chunk_size):
            yield chunk


@dataclass
class Version:
    data: bytes | None  # None: a delete marker
    version_id: str
    content_type: str = "binary/octet-stream"

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.data or b"", usedforsecurity=False).hexdigest() + '"'


@dataclass
class Upload:
    key: str
    parts: dict[int, bytes] = field(default_factory=dict)


class FakeS3:
    exceptions = Exceptions

    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, list[Version]]] = {}
        self.uploads: dict[str, Upload] = {}
        self.calls: list[str] = []  # operation names, in order: what a test may count
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.down = False  # every call fails, as when S3 cannot be reached
        self.budgets: list[float] = []  # the reader's within(seconds), in order

    @contextlib.contextmanager
    def within(self, seconds: float):
        self.budgets.append(seconds)
        yield

    # ---- buckets -------------------------------------------------------------------------------

    def create_bucket(self, Bucket: str, **_) -> dict:  # noqa: N803 - boto3's names
        self.buckets.setdefault(Bucket, {})
        return {}

    def put_bucket_versioning(self, Bucket: str, **_) -> dict:  # noqa: N803
        self._bucket(Bucket, "PutBucketVersioning")  # the fake's buckets are always versioned
        return {}

    def _bucket(self, name: str, operation: str) -> dict[str, list[Version]]:
        self.calls.append(operation)
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")
        if name not in self.buckets:
            raise _error(NoSuchBucket, 404, "NoSuchBucket", operation)
        return self.buckets[name]

    def _current(self, bucket: str, key: str, operation: str, version_id: str | None = None) -> Version:
        versions = self._bucket(bucket, operation).get(key, [])
        if version_id is not None:
            found = [v for v in versions if v.version_id == version_id]
            if not found:
                raise _error(ClientError, 404, "NoSuchVersion", operation)
            return found[0]
        if not versions or versions[-1].data is None:
            code = "404" if operation == "HeadObject" else "NoSuchKey"
            raise _error(NoSuchKey, 404, code, operation)
        return versions[-1]

    # ---- objects -------------------------------------------------------------------------------

    def put_object(self, Bucket: str, Key: str, Body: bytes | str = b"",  # noqa: N803
                   ContentType: str = "binary/octet-stream", IfNoneMatch: str | None = None, **_) -> dict:
        data = Body.encode() if isinstance(Body, str) else bytes(Body)
        with self._lock:
            versions = self._bucket(Bucket, "PutObject").setdefault(Key, [])
            if IfNoneMatch == "*" and versions and versions[-1].data is not None:
                raise _error(ClientError, 412, "PreconditionFailed", "PutObject")
            version = Version(data, str(next(self._ids)), ContentType)
            versions.append(version)
        return {"ETag": version.etag, "VersionId": version.version_id}

    def upload_fileobj(self, Fileobj, Bucket: str, Key: str, **_) -> None:  # noqa: N803
        self.put_object(Bucket=Bucket, Key=Key, Body=Fileobj.read())

    def get_object(self, Bucket: str, Key: str, Range: str | None = None,  # noqa: N803
                   VersionId: str | None = None, IfNoneMatch: str | None = None) -> dict:  # noqa: N803
        version = self._current(Bucket, Key, "GetObject", VersionId)
        if IfNoneMatch is not None and IfNoneMatch == version.etag:
            raise _error(ClientError, 304, "304", "GetObject")
        data = version.data or b""
        if Range is not None:
            first, last = self._range(Range, len(data), "GetObject")
            data = data[first:last + 1]
        return {"Body": Body(data), "ContentLength": len(data), "ETag": version.etag,
                "VersionId": version.version_id, "ContentType": version.content_type}

    def head_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict:  # noqa: N803
        version = self._current(Bucket, Key, "HeadObject", VersionId)
        return {"ContentLength": len(version.data or b""), "ETag": version.etag,
                "VersionId": version.version_id, "ContentType": version.content_type}

    @staticmethod
    def _range(header: str, size: int, operation: str) -> tuple[int, int]:
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", header)
        if not match or int(match[1]) >= size:
            raise _error(ClientError, 416, "InvalidRange", operation)
        first = int(match[1])
        last = min(int(match[2]), size - 1) if match[2] else size - 1
        if last < first:
            raise _error(ClientError, 416, "InvalidRange", operation)
        return first, last

    def delete_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803
        with self._lock:
            versions = self._bucket(Bucket, "DeleteObject").setdefault(Key, [])
            versions.append(Version(None, str(next(self._ids))))
        return {"DeleteMarker": True}

    def delete_objects(self, Bucket: str, Delete: dict) -> dict:  # noqa: N803
        for item in Delete["Objects"]:
            self.delete_object(Bucket=Bucket, Key=item["Key"])
        return {} if Delete.get("Quiet") else {"Deleted": [{"Key": o["Key"]} for o in Delete["Objects"]]}

    # ---- listings ------------------------------------------------------------------------------

    def list_objects_v2(self, Bucket: str, Prefix: str = "", Delimiter: str | None = None,  # noqa: N803
                        ContinuationToken: str | None = None, MaxKeys: int | None = None,  # noqa: N803
                        StartAfter: str | None = None) -> dict:  # noqa: N803
        bucket = self._bucket(Bucket, "ListObjectsV2")
        after = ContinuationToken or StartAfter or ""
        entries: list[tuple[str, dict | None]] = []
        seen_prefixes = set()
        for key in sorted(bucket):
            versions = bucket[key]
            if not key.startswith(Prefix) or not versions or versions[-1].data is None:
                continue
            rest = key[len(Prefix):]
            if Delimiter and Delimiter in rest:
                common = Prefix + rest.split(Delimiter, 1)[0] + Delimiter
                if common not in seen_prefixes:
                    seen_prefixes.add(common)
                    entries.append((common, None))
                continue
            entries.append((key, {"Key": key, "Size": len(versions[-1].data), "ETag": versions[-1].etag}))
        entries = [(name, item) for name, item in entries if name > after]
        limit = 1000 if MaxKeys is None else MaxKeys
        page, rest_entries = entries[:limit], entries[limit:]
        answer: dict = {"KeyCount": len(page), "IsTruncated": bool(rest_entries)}
        contents = [item for _, item in page if item is not None]
        prefixes = [{"Prefix": name} for name, item in page if item is None]
        if contents:
            answer["Contents"] = contents
        if prefixes:
            answer["CommonPrefixes"] = prefixes
        if rest_entries:
            answer["NextContinuationToken"] = page[-1][0]
        return answer

    def get_paginator(self, operation: str) -> Paginator:
        assert operation == "list_objects_v2", operation
        return Paginator(self)

    # ---- multipart uploads ---------------------------------------------------------------------

    def create_multipart_upload(self, Bucket: str, Key: str, **_) -> dict:  # noqa: N803
        self._bucket(Bucket, "CreateMultipartUpload")
        upload_id = f"upload-{next(self._ids)}"
        self.uploads[upload_id] = Upload(Key)
        return {"UploadId": upload_id}

    def _upload(self, upload_id: str, key: str, operation: str) -> Upload:
        self.calls.append(operation)
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")
        upload = self.uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise _error(ClientError, 404, "NoSuchUpload", operation)
        return upload

    def upload_part(self, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes) -> dict:  # noqa: N803
        upload = self._upload(UploadId, Key, "UploadPart")
        with self._lock:
            upload.parts[PartNumber] = bytes(Body)
        return {"ETag": Version(bytes(Body), "").etag}

    def upload_part_copy(self, Bucket: str, Key: str, UploadId: str, PartNumber: int,  # noqa: N803
                         CopySource: dict, CopySourceRange: str | None = None) -> dict:  # noqa: N803
        upload = self._upload(UploadId, Key, "UploadPartCopy")
        data = self.get_object(Bucket=CopySource["Bucket"], Key=CopySource["Key"], Range=CopySourceRange)
        body = data["Body"].read()
        with self._lock:
            upload.parts[PartNumber] = body
        return {"CopyPartResult": {"ETag": Version(body, "").etag}}

    def complete_multipart_upload(self, Bucket: str, Key: str, UploadId: str,  # noqa: N803
                                  MultipartUpload: dict) -> dict:  # noqa: N803
        upload = self._upload(UploadId, Key, "CompleteMultipartUpload")
        numbers = [part["PartNumber"] for part in MultipartUpload["Parts"]]
        if numbers != sorted(numbers) or any(n not in upload.parts for n in numbers):
            raise _error(ClientError, 400, "InvalidPart", "CompleteMultipartUpload")
        if any(len(upload.parts[n]) < MIN_PART for n in numbers[:-1]):
            raise _error(ClientError, 400, "EntityTooSmall", "CompleteMultipartUpload")
        del self.uploads[UploadId]
        return self.put_object(Bucket=Bucket, Key=Key, Body=b"".join(upload.parts[n] for n in numbers))

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str) -> dict:  # noqa: N803
        self._upload(UploadId, Key, "AbortMultipartUpload")
        del self.uploads[UploadId]
        return {}


def for_the_functions(monkeypatch, bucket: str) -> FakeS3:
    """A fake S3 with ``bucket``, behind the functions' own reader (``S3Reader.from_env``)."""
    from serving.store.s3 import S3Reader

    fake = FakeS3()
    fake.create_bucket(Bucket=bucket)
    monkeypatch.setattr(S3Reader, "from_env", classmethod(lambda cls, env=None, **options: fake))
    return fake


class Paginator:
    def __init__(self, s3: FakeS3) -> None:
        self.s3 = s3

    def paginate(self, **kwargs):
        while True:
            page = self.s3.list_objects_v2(**kwargs)
            yield page
            if not page["IsTruncated"]:
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]


@functools.cache
def _s3_model():
    """S3's model, as botocore's client has it: loaded once (a load takes tens of milliseconds, and the
    fake is called thousands of times in a run)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("s3")


def _validated(method, operation: str):
    """The method, refusing what botocore's client would refuse before sending (a key S3 does not
    know, a wrong type), as ParamValidationError. A parameter of None is left out first: the
    functions' reader, which this fake also stands for, takes None as "not given"."""
    import functools

    from botocore.exceptions import ParamValidationError
    from botocore.validate import ParamValidator

    @functools.wraps(method)
    def call(self, *args, **params):
        shape = _s3_model().operation_model(operation).input_shape
        checked = {k: v for k, v in params.items() if v is not None}
        if isinstance(checked.get("CopySource"), dict):  # boto3 turns {"Bucket", "Key"} into text first
            checked["CopySource"] = "{Bucket}/{Key}".format(**checked["CopySource"])
        report = ParamValidator().validate(checked, shape)
        if report.has_errors():
            raise ParamValidationError(report=report.generate_report())
        return method(self, *args, **params)

    return call


def _check_the_fakes_calls() -> None:
    from botocore import xform_name

    operations = {xform_name(name): name for name in _s3_model().operation_names}
    for name, method in list(vars(FakeS3).items()):
        if callable(method) and name in operations and name not in ("create_bucket", "put_bucket_versioning",
                                                                    "upload_fileobj"):
            setattr(FakeS3, name, _validated(method, operations[name]))


_check_the_fakes_calls()
