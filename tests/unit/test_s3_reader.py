"""The serving function's S3 reader: botocore's signatures, boto-style answers."""

from datetime import UTC, datetime

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from serving import bundle
from serving.s3 import EMPTY_SHA256, S3Error, S3Reader, signing_headers

from tests.unit.conftest import BUCKET


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("https://models.s3.eu-west-1.amazonaws.com/models/bc/versions/000001/model.npz", None),
        ("http://127.0.0.1:4566/b/models/x%20y/champion.json", {"if-none-match": '"abc"'}),
        ("https://b.s3.eu-west-1.amazonaws.com/k?versionId=3&a=b%2Fc", None),
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


def test_reads_objects_and_answers_not_modified(s3):
    s3.put_object(Bucket=BUCKET, Key="models/a b/c.json", Body=b'{"x": 1}')
    reader = S3Reader.from_env()
    first = reader.get_object(Bucket=BUCKET, Key="models/a b/c.json")
    assert first["Body"].read() == b'{"x": 1}'
    with pytest.raises(S3Error) as caught:
        reader.get_object(Bucket=BUCKET, Key="models/a b/c.json", IfNoneMatch=first["ETag"])
    assert caught.value.response["Error"]["Code"] == "304"


def test_a_missing_key_is_a_boto_style_no_such_key(s3):
    with pytest.raises(S3Error) as caught:
        S3Reader.from_env().get_object(Bucket=BUCKET, Key="models/none.json")
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"
    assert bundle.read_champion(S3Reader.from_env(), BUCKET, "none") is None


def test_without_credentials_it_says_which_are_missing():
    with pytest.raises(S3Error, match="AWS_SECRET_ACCESS_KEY"):
        S3Reader.from_env({"AWS_ACCESS_KEY_ID": "x"})


def test_aws_endpoints_are_https_and_virtual_hosted():
    reader = S3Reader("eu-west-1", "a", "b")
    assert reader.url("bucket", "models/x y.json") == (
        "https://bucket.s3.eu-west-1.amazonaws.com/models/x%20y.json")
