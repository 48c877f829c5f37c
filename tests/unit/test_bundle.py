"""The bundle format: immutable versions, checksums, the champion pointer."""

import json

import pytest
from serving import bundle

from tests.unit.conftest import BUCKET, trained
from training import promotion


def publish(s3, model=None, name="bc"):
    model = model or trained()
    return bundle.publish(s3, BUCKET, name, model.arrays, model.manifest_fields(),
                          {"model.txt": b"native"})


def test_a_version_is_self_describing_and_checksummed(s3):
    manifest = publish(s3)
    assert manifest["version"] == 1
    stored = bundle.read_manifest(s3, BUCKET, "bc", 1)
    assert stored == manifest
    for key in ("feature_schema", "classes", "metrics", "created_at", "framework"):
        assert key in stored
    assert set(stored["files"]) == {"model.npz", "model.txt"}
    data = s3.get_object(Bucket=BUCKET, Key="models/bc/versions/000001/model.npz")["Body"].read()
    assert stored["files"]["model.npz"]["sha256"] == bundle.sha256(data)


def test_publishing_never_overwrites_a_version(s3):
    publish(s3)
    # someone else is half-way through writing version 2
    s3.put_object(Bucket=BUCKET, Key="models/bc/versions/000002/model.npz", Body=b"theirs")
    manifest = publish(s3)
    assert manifest["version"] == 3
    theirs = s3.get_object(Bucket=BUCKET, Key="models/bc/versions/000002/model.npz")["Body"].read()
    assert theirs == b"theirs"
    with pytest.raises(bundle.VersionExists):
        bundle._put_new(s3, BUCKET, "models/bc/versions/000001/manifest.json", b"{}", "application/json")
    assert bundle.list_versions(s3, BUCKET, "bc") == [1, 3]


def test_a_tampered_file_is_refused(s3):
    publish(s3)
    s3.put_object(Bucket=BUCKET, Key="models/bc/versions/000001/model.npz", Body=b"garbage")
    with pytest.raises(bundle.BundleError, match="sha256"):
        bundle.load(s3, BUCKET, "bc", 1)


def test_the_champion_pointer_names_a_version_and_its_manifest(s3):
    publish(s3)
    assert bundle.load_champion(s3, BUCKET, "bc") is None
    pointer = bundle.set_champion(s3, BUCKET, "bc", 1, "first")
    loaded = bundle.load_champion(s3, BUCKET, "bc")
    assert loaded.version == 1
    assert pointer["previous_version"] is None
    manifest_key = "models/bc/versions/000001/manifest.json"
    manifest_bytes = s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read()
    assert pointer["manifest_sha256"] == bundle.sha256(manifest_bytes)


def test_promotion_history_is_kept_and_rollback_restores_the_previous_champion(s3):
    publish(s3)
    publish(s3)
    promotion.promote(s3, BUCKET, "bc", 1, "first")
    promotion.promote(s3, BUCKET, "bc", 2, "better")
    assert bundle.read_champion(s3, BUCKET, "bc")["version"] == 2
    pointer = promotion.rollback(s3, BUCKET, "bc")
    assert pointer["version"] == 1
    assert bundle.read_champion(s3, BUCKET, "bc")["version"] == 1
    assert [h["version"] for h in promotion.history(s3, BUCKET, "bc")] == [1, 2, 1]
    # every earlier pointer is still in the versioned bucket
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=bundle.champion_key("bc"))["Versions"]
    assert len(versions) == 3


def test_promoting_an_unpublished_version_fails(s3):
    publish(s3)
    with pytest.raises(bundle.BundleError, match="no published version 7"):
        promotion.promote(s3, BUCKET, "bc", 7, "typo")


def test_the_manifest_is_plain_json_without_nan(s3):
    manifest = publish(s3)
    raw = s3.get_object(Bucket=BUCKET, Key="models/bc/versions/000001/manifest.json")["Body"].read()
    assert json.loads(raw)["version"] == manifest["version"]
    assert b"NaN" not in raw
