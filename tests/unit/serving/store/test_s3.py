"""The serving function's S3 reader: botocore's signatures, boto-style answers and errors."""

import http.client
import time
from datetime import UTC, datetime

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from serving.store import bundles
from serving.store.s3 import (
    EMPTY_SHA256,
    ConfigurationError,
    S3Error,
    S3Reader,
    error_status,
    signing_headers,
)

from tests.unit.conftest import BUCKET
from tests.unit.serving.store.servers import Recorder, local_server


@pytest.fixture
def s3(moto_s3):
    """What the bucket's HTTP answers are (boto3 writes, the functions' reader reads): moto's server."""
    return moto_s3


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("https://models.s3.eu-west-1.amazonaws.com/models/bc/versions/000001/model.npz", None),
        ("http://127.0.0.1:4566/b/models/x%20y/champion.json", {"if-none-match": '"abc"'}),
        ("https://b.s3.eu-west-1.amazonaws.com/k?versionId=3&a=b%2Fc&empty=&x~y=1", None),
        ("https://b.s3.eu-west-1.amazonaws.com", None),
    ],
)
def test_signatures_equal_botocores(url, extra):
    request = AWSRequest(method="GET", url=url,
                         headers={"x-amz-content-sha256": EMPTY_SHA256, **(extra or {})})
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "se/cret+", "token"), "s3", "eu-west-1").add_auth(request)
    when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = signing_headers("GET", url, "eu-west-1", "AKIDEXAMPLE", "se/cret+", "token",
                           now=when, extra_headers=extra)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-security-token"] == "token"
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]


def test_without_a_session_token_none_is_signed():
    headers = signing_headers("GET", "https://b.s3.us-east-1.amazonaws.com/k", "us-east-1", "a", "b")
    assert "x-amz-security-token" not in headers
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in headers["authorization"]
    assert headers["x-amz-date"].endswith("Z") and len(headers["x-amz-date"]) == 16


ENV = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "se/cret", "AWS_SESSION_TOKEN": "tok",
       "AWS_REGION": "eu-west-2"}


def test_a_get_is_signed_for_the_environments_credentials_and_region(fake_s3):
    endpoint, recorder = fake_s3
    recorder.answers = [(200, {"ETag": '"e1"'}, b"hello")]
    reader = S3Reader.from_env({**ENV, "AWS_ENDPOINT_URL": endpoint + "/"})
    answer = reader.get_object(Bucket="bkt", Key="models/a b/c.json", IfNoneMatch='"e0"')
    assert answer["Body"].read() == b"hello" and answer["ETag"] == '"e1"'
    [request] = recorder.seen
    assert request["method"] == "GET"
    assert request["path"] == "/bkt/models/a%20b/c.json"
    headers = request["headers"]
    assert headers["if-none-match"] == '"e0"'
    assert headers["x-amz-security-token"] == "tok"
    # the signature a correct signer (checked against botocore's above) gives these credentials
    when = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expected = signing_headers("GET", endpoint + request["path"], "eu-west-2", "AKID", "se/cret", "tok", now=when,
                               extra_headers={"if-none-match": '"e0"'})
    assert headers["authorization"] == expected["authorization"]
    assert "Credential=AKID/" in expected["authorization"] and "/eu-west-2/s3/aws4_request" in expected["authorization"]


def test_the_region_falls_back_to_the_default_region_then_us_east_1():
    base = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    assert S3Reader.from_env({**base, "AWS_DEFAULT_REGION": "ap-south-1"}).region == "ap-south-1"
    assert S3Reader.from_env({**base, "AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "x"}).region == "eu-north-1"
    assert S3Reader.from_env(base).region == "us-east-1"
    reader = S3Reader.from_env({**base, "AWS_SESSION_TOKEN": "t", "AWS_ENDPOINT_URL_S3": "http://s3.local:1",
                                "AWS_ENDPOINT_URL": "http://other:2"})
    assert (reader.access_key, reader.secret_key, reader.session_token) == ("a", "b", "t")
    assert reader.endpoint == "http://s3.local:1"
    assert S3Reader.from_env(base).session_token is None and S3Reader.from_env(base).endpoint is None


def test_not_modified_and_missing_objects_are_errors_with_their_status(fake_s3):
    endpoint, recorder = fake_s3
    recorder.answers = [
        (304, {}, b""),
        (404, {"Content-Type": "application/xml"},
         b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>The key does not exist</Message></Error>"),
        (503, {}, b"upstream down " * 30),
        (403, {}, b"<Error><Code>AccessDenied</Code></Error>"),
        (500, {}, b"\xff broken \xfe"),
        (300, {}, b""),  # any status from 300 up is not the object
    ]
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint, attempts=1)  # (5xx are tried again)
    for status, code, message in ((304, "304", ""), (404, "NoSuchKey", "The key does not exist"),
                                  (503, "503", ("upstream down " * 30)[:200]), (403, "AccessDenied", ""),
                                  (500, "500", "\ufffd broken \ufffd"), (300, "300", "")):
        with pytest.raises(S3Error) as caught:
            reader.get_object(Bucket="b", Key="k")
        assert error_status(caught.value) == status
        assert caught.value.response["Error"] == {"Code": code, "Message": message}
        assert str(caught.value) == f"{code} ({status}): {message}"


def test_reads_objects_and_answers_not_modified_from_moto(s3):
    s3.put_object(Bucket=BUCKET, Key="models/a b/c.json", Body=b'{"x": 1}')
    reader = S3Reader.from_env()
    first = reader.get_object(Bucket=BUCKET, Key="models/a b/c.json")
    assert first["Body"].read() == b'{"x": 1}'
    with pytest.raises(S3Error) as caught:
        reader.get_object(Bucket=BUCKET, Key="models/a b/c.json", IfNoneMatch=first["ETag"])
    assert error_status(caught.value) == 304


def test_a_missing_key_is_a_404_no_such_key(s3):
    with pytest.raises(S3Error) as caught:
        S3Reader.from_env().get_object(Bucket=BUCKET, Key="models/none.json")
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"
    assert error_status(caught.value) == 404
    assert bundles.read_champion(S3Reader.from_env(), BUCKET, "none") is None


def test_the_status_of_boto3_errors_and_of_others(s3):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=BUCKET, Key="missing")
    assert error_status(caught.value) == 404
    assert error_status(ValueError("x")) is None
    assert error_status(type("E", (Exception,), {"response": None})()) is None
    assert error_status(type("E", (Exception,), {"response": {}})()) is None


@pytest.mark.parametrize(("env", "words"), [
    ({"AWS_ACCESS_KEY_ID": "x"}, "missing AWS_SECRET_ACCESS_KEY in the environment"),
    ({"AWS_SECRET_ACCESS_KEY": "x", "AWS_ACCESS_KEY_ID": ""}, "missing AWS_ACCESS_KEY_ID in the environment"),
    ({}, "missing AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"),
])
def test_without_credentials_it_says_which_are_missing(env, words):
    with pytest.raises(ConfigurationError) as caught:
        S3Reader.from_env(env)
    assert str(caught.value) == words


def test_the_environment_is_read_when_none_is_given(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    assert S3Reader.from_env().access_key == "from-env"
    assert S3Reader.from_env({"AWS_ACCESS_KEY_ID": "given", "AWS_SECRET_ACCESS_KEY": "s"}).access_key == "given"


@pytest.mark.parametrize("endpoint", ["ftp://x", "file:///etc/passwd", "s3.local:9000"])
def test_an_endpoint_that_is_not_http_is_refused(endpoint):
    with pytest.raises(ConfigurationError) as caught:
        S3Reader("us-east-1", "a", "b", endpoint=endpoint)
    assert str(caught.value) == f"the S3 endpoint must be http(s): {endpoint!r}"


def test_endpoints_keep_their_path_and_lose_trailing_slashes():
    assert S3Reader("r", "a", "b", endpoint="https://s3.local//").endpoint == "https://s3.local"
    assert S3Reader("r", "a", "b", endpoint="https://S3.BOX/").endpoint == "https://S3.BOX"
    assert S3Reader("r", "a", "b", endpoint="https://s3.local/base/").url("b", "k") == "https://s3.local/base/b/k"


def test_aws_endpoints_are_https_and_virtual_hosted():
    reader = S3Reader("eu-west-1", "a", "b")
    assert reader.url("bucket", "models/x y~(1).json") == (
        "https://bucket.s3.eu-west-1.amazonaws.com/models/x%20y~%281%29.json")

    # spoken to over TLS (a connection opens on its first request: none is made here)
    assert isinstance(reader._connection("https", "bucket.s3.eu-west-1.amazonaws.com"), http.client.HTTPSConnection)
    assert not isinstance(reader._connection("http", "localhost:4566"), http.client.HTTPSConnection)


def test_the_signing_time_is_utc_whatever_the_machines_time_zone(monkeypatch):

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        before = datetime.now(UTC)
        stamp = signing_headers("GET", "https://b.s3.us-east-1.amazonaws.com/k", "us-east-1", "a", "b")["x-amz-date"]
        after = datetime.now(UTC)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    signed = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before.replace(microsecond=0) <= signed <= after


def test_a_put_is_signed_with_its_bodys_hash_as_botocore_signs_it():
    import hashlib

    url = "https://b.s3.eu-west-1.amazonaws.com/capture/m/date=2026-11-26/x.jsonl"
    body = b'{"row":[1,2]}\n'
    payload = hashlib.sha256(body).hexdigest()
    request = AWSRequest(method="PUT", url=url, data=body,
                         headers={"x-amz-content-sha256": payload, "content-type": "application/x-ndjson"})
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "secret", None), "s3", "eu-west-1").add_auth(request)
    when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = signing_headers("PUT", url, "eu-west-1", "AKIDEXAMPLE", "secret", now=when,
                           extra_headers={"content-type": "application/x-ndjson"}, payload_sha256=payload)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-content-sha256"] == payload


def test_writes_objects_to_moto_that_read_back_the_same(s3):
    reader = S3Reader.from_env()
    answer = reader.put_object(Bucket=BUCKET, Key="capture/m/a b.jsonl", Body=b"one\ntwo\n",
                               ContentType="application/x-ndjson")
    stored = s3.get_object(Bucket=BUCKET, Key="capture/m/a b.jsonl")
    assert stored["Body"].read() == b"one\ntwo\n"
    assert stored["ContentType"] == "application/x-ndjson"
    assert answer["ETag"] == stored["ETag"]


class PutRecorder(Recorder):
    """Recorder that also takes PUTs (and keeps their bodies)."""

    def do_PUT(self):  # noqa: N802 - http.server's name
        self.answer(body=self.rfile.read(int(self.headers.get("Content-Length", 0))))


@pytest.fixture
def put_s3():
    yield from local_server(PutRecorder)


def test_a_put_sends_its_body_signed_with_the_bodys_hash(put_s3):
    import hashlib

    endpoint, recorder = put_s3
    recorder.answers = [(200, {"ETag": '"p1"'}, b"")]
    reader = S3Reader("eu-west-2", "AKID", "se/cret", "tok", endpoint=endpoint)
    body = b'{"row":[1,2]}\n'
    assert reader.put_object(Bucket="bkt", Key="capture/a b.jsonl", Body=body,
                             ContentType="application/x-ndjson") == {"ETag": '"p1"'}
    [request] = recorder.seen
    assert (request["method"], request["path"], request["body"]) == ("PUT", "/bkt/capture/a%20b.jsonl", body)
    headers = request["headers"]
    payload = hashlib.sha256(body).hexdigest()
    assert headers["x-amz-content-sha256"] == payload != EMPTY_SHA256
    assert headers["content-type"] == "application/x-ndjson"
    when = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expected = signing_headers("PUT", endpoint + request["path"], "eu-west-2", "AKID", "se/cret", "tok", now=when,
                               extra_headers={"content-type": "application/x-ndjson"}, payload_sha256=payload)
    assert headers["authorization"] == expected["authorization"]


def test_a_put_without_a_content_type_stores_octet_stream(s3):
    S3Reader.from_env().put_object(Bucket=BUCKET, Key="capture/raw", Body=b"\x00\x01")
    stored = s3.get_object(Bucket=BUCKET, Key="capture/raw")
    assert stored["Body"].read() == b"\x00\x01" and stored["ContentType"] == "application/octet-stream"


def test_a_listing_without_a_prefix_lists_the_whole_bucket(s3):
    for key in ("a/1", "b/2", "c"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"xy")
    page = S3Reader.from_env().list_objects_v2(Bucket=BUCKET)
    assert page["Contents"] == [{"Key": "a/1", "Size": 2}, {"Key": "b/2", "Size": 2}, {"Key": "c", "Size": 2}]
    assert page["CommonPrefixes"] == [] and page["IsTruncated"] is False


def test_a_listing_request_percent_encodes_its_query_and_reads_the_answer_as_boto3_shapes_it(fake_s3):
    endpoint, recorder = fake_s3
    answer = (b"<?xml version='1.0'?><ListBucketResult xmlns='http://s3.amazonaws.com/doc/2006-03-01/'>"
              b"<IsTruncated>true</IsTruncated><NextContinuationToken>t2</NextContinuationToken>"
              b"<Contents><Key>models/a b/x</Key><Size>7</Size></Contents>"
              b"<Contents><Key>models/a b/empty</Key></Contents>"
              b"<CommonPrefixes><Prefix>models/a b/p/</Prefix></CommonPrefixes></ListBucketResult>")
    recorder.answers = [(200, {}, answer)]
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint)
    page = reader.list_objects_v2(Bucket="bkt", Prefix="models/a b/", Delimiter="/", ContinuationToken="t+1=",
                                  MaxKeys=5)
    assert page == {"Contents": [{"Key": "models/a b/x", "Size": 7}, {"Key": "models/a b/empty", "Size": 0}],
                    "CommonPrefixes": [{"Prefix": "models/a b/p/"}], "IsTruncated": True,
                    "NextContinuationToken": "t2"}
    [request] = recorder.seen
    assert request["path"] == ("/bkt/?continuation-token=t%2B1%3D&delimiter=%2F&list-type=2&max-keys=5"
                               "&prefix=models%2Fa%20b%2F")
