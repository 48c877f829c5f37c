"""The in-process S3 (tests/unit/fake_s3.py) answers as moto's S3 server does, call for call, for the
calls the batch steps make: each case runs against both and compares what they say."""

import pytest
from serving.store.s3 import error_status

from tests.unit.conftest import BUCKET
from tests.unit.fake_s3 import MIN_PART, FakeS3


@pytest.fixture(params=["moto", "fake"])
def both(request):
    if request.param == "moto":
        return request.getfixturevalue("moto_s3")
    fake = FakeS3()
    fake.create_bucket(Bucket=BUCKET)
    return fake


def failure(call, **kwargs) -> tuple[int | None, str]:
    with pytest.raises(Exception) as caught:
        call(Bucket=BUCKET, **kwargs)
    return error_status(caught.value), caught.value.response["Error"]["Code"]


def test_objects_ranges_and_missing_keys(both):
    both.put_object(Bucket=BUCKET, Key="a/1", Body=b"0123456789")
    got = both.get_object(Bucket=BUCKET, Key="a/1", Range="bytes=2-4")
    assert got["Body"].read() == b"234" and got["ContentLength"] == 3
    assert both.get_object(Bucket=BUCKET, Key="a/1", Range="bytes=8-20")["Body"].read() == b"89"  # clipped
    assert list(both.get_object(Bucket=BUCKET, Key="a/1")["Body"].iter_chunks(4)) == [b"0123", b"4567", b"89"]
    assert both.head_object(Bucket=BUCKET, Key="a/1")["ContentLength"] == 10
    assert failure(both.get_object, Key="a/1", Range="bytes=10-12") == (416, "InvalidRange")
    assert failure(both.get_object, Key="a/2") == (404, "NoSuchKey")
    assert failure(both.head_object, Key="a/2") == (404, "404")
    with pytest.raises(both.exceptions.NoSuchKey):
        both.get_object(Bucket=BUCKET, Key="a/2")
    etag = both.get_object(Bucket=BUCKET, Key="a/1")["ETag"]
    assert failure(both.get_object, Key="a/1", IfNoneMatch=etag)[0] == 304


def test_conditional_writes_versions_and_deletes(both):
    first = both.put_object(Bucket=BUCKET, Key="k", Body=b"one", IfNoneMatch="*")
    assert failure(both.put_object, Key="k", Body=b"two", IfNoneMatch="*") == (412, "PreconditionFailed")
    second = both.put_object(Bucket=BUCKET, Key="k", Body=b"two")
    assert first["VersionId"] != second["VersionId"]
    assert both.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"two"
    assert both.get_object(Bucket=BUCKET, Key="k", VersionId=first["VersionId"])["Body"].read() == b"one"
    both.delete_object(Bucket=BUCKET, Key="k")
    assert failure(both.get_object, Key="k") == (404, "NoSuchKey")
    both.put_object(Bucket=BUCKET, Key="k", Body=b"three", IfNoneMatch="*")  # deleted: free again


def test_listings_prefixes_delimiters_pages_and_batch_deletes(both):
    for key in ("w/b", "w/a", "w/d/1", "w/d/2", "x"):
        both.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    page = both.list_objects_v2(Bucket=BUCKET, Prefix="w/", Delimiter="/")
    assert [o["Key"] for o in page["Contents"]] == ["w/a", "w/b"]
    assert page["CommonPrefixes"] == [{"Prefix": "w/d/"}] and page["KeyCount"] == 3
    assert [o["Size"] for o in page["Contents"]] == [3, 3]
    first = both.list_objects_v2(Bucket=BUCKET, Prefix="w/", MaxKeys=3)
    assert first["IsTruncated"] and [o["Key"] for o in first["Contents"]] == ["w/a", "w/b", "w/d/1"]
    rest = both.list_objects_v2(Bucket=BUCKET, Prefix="w/", ContinuationToken=first["NextContinuationToken"])
    assert not rest["IsTruncated"] and [o["Key"] for o in rest["Contents"]] == ["w/d/2"]
    pages = list(both.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="w/d/"))
    both.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": o["Key"]} for o in pages[0]["Contents"]],
                                               "Quiet": True})
    assert "Contents" not in both.list_objects_v2(Bucket=BUCKET, Prefix="w/d/")
    assert both.list_objects_v2(Bucket=BUCKET, Prefix="nothing/")["KeyCount"] == 0


def test_multipart_uploads_copies_and_their_smallest_part(both):
    both.put_object(Bucket=BUCKET, Key="src", Body=b"s" * MIN_PART + b"tail")
    upload = both.create_multipart_upload(Bucket=BUCKET, Key="out")["UploadId"]
    copied = both.upload_part_copy(Bucket=BUCKET, Key="out", UploadId=upload, PartNumber=1,
                                   CopySource={"Bucket": BUCKET, "Key": "src"},
                                   CopySourceRange=f"bytes=0-{MIN_PART - 1}")
    sent = both.upload_part(Bucket=BUCKET, Key="out", UploadId=upload, PartNumber=2, Body=b"end")
    both.complete_multipart_upload(Bucket=BUCKET, Key="out", UploadId=upload, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": copied["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": sent["ETag"]}]})
    assert both.get_object(Bucket=BUCKET, Key="out")["Body"].read() == b"s" * MIN_PART + b"end"
    small = both.create_multipart_upload(Bucket=BUCKET, Key="small")["UploadId"]
    parts = [{"PartNumber": n, "ETag": both.upload_part(Bucket=BUCKET, Key="small", UploadId=small,
                                                        PartNumber=n, Body=b"x")["ETag"]} for n in (1, 2)]
    assert failure(both.complete_multipart_upload, Key="small", UploadId=small,
                   MultipartUpload={"Parts": parts}) == (400, "EntityTooSmall")
    both.abort_multipart_upload(Bucket=BUCKET, Key="small", UploadId=small)
    assert failure(both.get_object, Key="small") == (404, "NoSuchKey")
