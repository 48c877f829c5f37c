"""Bundles in the bucket: immutable, checksummed, self-describing versions; checked when written and read."""

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from serving.model import bundle
from serving.model.predictor import served_predictions
from serving.store import bundles
from serving.store.s3 import S3Reader

from tests.models import case
from tests.unit.conftest import BUCKET


@pytest.fixture
def s3(moto_s3):
    """What the bucket's HTTP answers are (boto3 writes, the functions' reader reads): moto's server."""
    return moto_s3


def publish(s3, model=None, name="bc", extra=None, **fields):
    model = model or case("bc-lightgbm")
    return bundles.publish(s3, BUCKET, name, model.arrays, {**model.manifest_fields(), **fields},
                          {"model.txt": b"native"} if extra is None else extra)


def get(s3, key):
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_a_version_is_self_describing_and_checksummed(s3):
    manifest = publish(s3)
    assert manifest["version"] == 1
    assert manifest["format_version"] == bundle.FORMAT_VERSION == 2
    assert manifest["task"] == "binary" and manifest["name"] == "bc"
    stored = bundles.read_manifest(s3, BUCKET, "bc", 1)
    assert stored == manifest
    for key in ("feature_schema", "classes", "metrics", "created_at", "framework"):
        assert key in stored
    assert set(stored["files"]) == {"model.npz", "model.txt"}
    data = get(s3, "models/bc/versions/000001/model.npz")
    assert stored["files"]["model.npz"] == {"sha256": bundle.sha256(data), "size": len(data)}
    assert stored["files"]["model.txt"]["size"] == len(b"native")
    loaded = bundles.load(s3, BUCKET, "bc", 1)
    assert loaded.version == 1 and loaded.name == "bc" and loaded.task == "binary"
    assert loaded.classes == ["benign", "malignant"]
    assert set(loaded.arrays) == set(case("bc-lightgbm").arrays)
    for key, value in case("bc-lightgbm").arrays.items():
        assert np.array_equal(loaded.arrays[key], value), key


def test_the_manifest_is_strict_sorted_json_and_written_last(s3):
    publish(s3)
    raw = get(s3, "models/bc/versions/000001/manifest.json")
    assert json.loads(raw)["version"] == 1
    assert raw.startswith(b'{\n  "classes"')  # indented, keys sorted
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        publish(s3, metrics={"test": {"f1_macro": float("nan")}})
    # the failed publish left no manifest: version 2 does not exist
    assert bundles.list_versions(s3, BUCKET, "bc") == [1]


def test_publishing_never_overwrites_a_version(s3):
    publish(s3)
    # someone else is half-way through writing version 2
    s3.put_object(Bucket=BUCKET, Key="models/bc/versions/000002/model.npz", Body=b"theirs")
    manifest = publish(s3)
    assert manifest["version"] == 3
    assert get(s3, "models/bc/versions/000002/model.npz") == b"theirs"
    with pytest.raises(bundle.VersionExists, match="models/bc/versions/000001/manifest.json already exists"):
        bundles._put_new(s3, BUCKET, "models/bc/versions/000001/manifest.json", b"{}", "application/json")
    assert bundles.list_versions(s3, BUCKET, "bc") == [1, 3]


def test_publishing_gives_up_after_its_attempts(s3):
    for version in range(1, 4):  # three numbers taken by writers that never finished
        s3.put_object(Bucket=BUCKET, Key=f"models/bc/versions/{version:06d}/model.npz", Body=b"x")
    with pytest.raises(bundle.BundleError, match="could not find a free version number for bc in 3 tries"):
        bundles.publish(s3, BUCKET, "bc", case("bc-lightgbm").arrays, case("bc-lightgbm").manifest_fields(),
                       attempts=3)
    assert publish(s3)["version"] == 4


def test_other_errors_on_write_are_not_taken_for_a_taken_version(s3):
    class Denied(Exception):
        response = {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}

    class DenyingS3:
        def __getattr__(self, name):
            return getattr(s3, name)

        def put_object(self, **kwargs):
            raise Denied()

    with pytest.raises(Denied):
        bundles.publish(DenyingS3(), BUCKET, "bc", case("bc-lightgbm").arrays, case("bc-lightgbm").manifest_fields())


def test_a_conflicting_conditional_write_also_means_taken(s3):
    class Conflict(Exception):  # S3's 409 ConditionalRequestConflict: another writer is mid-way
        response = {"Error": {"Code": "ConditionalRequestConflict"}, "ResponseMetadata": {"HTTPStatusCode": 409}}

    class Busy:
        def put_object(self, **kwargs):
            raise Conflict()

    with pytest.raises(bundle.VersionExists, match="s3://models/k already exists"):
        bundles._put_new(Busy(), BUCKET, "k", b"x", "application/json")


def test_versions_are_numbered_after_the_newest_whatever_the_number_of_attempts(s3):
    for expected in range(1, 8):  # more versions than attempts: the number comes from the listing
        assert publish(s3)["version"] == expected
    publish(s3, name="other")
    assert bundles.list_versions(s3, BUCKET, "bc") == list(range(1, 8))
    assert bundles.list_versions(s3, BUCKET, "other") == [1]
    assert bundles.list_versions(s3, BUCKET, "none") == []


def test_by_default_publishing_tries_five_version_numbers(s3):
    for version in range(1, 6):  # five numbers taken by writers that never finished
        s3.put_object(Bucket=BUCKET, Key=f"models/bc/versions/{version:06d}/model.npz", Body=b"x")
    with pytest.raises(bundle.BundleError, match="in 5 tries"):
        publish(s3)


def test_objects_are_stored_with_their_type_and_an_s3_checksum(s3):
    publish(s3)
    bundles.set_champion(s3, BUCKET, "bc", 1, "first")
    for key, kind in (("versions/000001/model.npz", "application/octet-stream"),
                      ("versions/000001/model.txt", "application/octet-stream"),
                      ("versions/000001/manifest.json", "application/json"),
                      ("champion.json", "application/json")):
        head = s3.head_object(Bucket=BUCKET, Key=f"models/bc/{key}", ChecksumMode="ENABLED")
        assert head["ContentType"] == kind, key
        if key.startswith("versions/"):
            assert head["ChecksumSHA256"], key
    [history] = s3.list_objects_v2(Bucket=BUCKET, Prefix="models/bc/champion-history/")["Contents"]
    assert s3.head_object(Bucket=BUCKET, Key=history["Key"])["ContentType"] == "application/json"


def test_times_are_utc_whatever_the_machines_time_zone(s3, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        manifest = publish(s3)
        pointer = bundles.set_champion(s3, BUCKET, "bc", 1, "first")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert manifest["created_at"].endswith("+00:00") and pointer["promoted_at"].endswith("+00:00")
    [history] = s3.list_objects_v2(Bucket=BUCKET, Prefix="models/bc/champion-history/")["Contents"]
    stamp = history["Key"].rsplit("/", 1)[1][:15]  # 20261126T153012
    assert pointer["promoted_at"].replace("-", "").replace(":", "")[:15] == stamp


def test_progress_is_reported_per_file(s3):
    said = []
    model = case("bc-lightgbm")
    bundles.publish(s3, BUCKET, "bc", model.arrays, model.manifest_fields(), {"model.txt": b"n"},
                   progress=said.append)
    assert len(said) == 2
    size = len(bundle.encode_arrays(model.arrays))
    assert said == [f"uploading model.npz ({size:,} bytes) to s3://models/models/bc/versions/000001/",
                    "uploading model.txt (1 bytes) to s3://models/models/bc/versions/000001/"]


def test_a_tampered_file_is_refused(s3):
    publish(s3)
    s3.put_object(Bucket=BUCKET, Key="models/bc/versions/000001/model.npz", Body=b"garbage")
    with pytest.raises(bundle.BundleError, match="model.npz of bc v1 does not match its sha256"):
        bundles.load(s3, BUCKET, "bc", 1)


def test_a_file_the_manifest_does_not_list_is_not_read(s3):
    manifest = publish(s3)
    with pytest.raises(bundle.BundleError, match="model.cbm is not part of bc v1"):
        bundles.read_file(s3, BUCKET, manifest, "model.cbm")
    assert bundles.read_file(s3, BUCKET, manifest, "model.txt") == b"native"
    without_files = {k: v for k, v in manifest.items() if k != "files"}
    with pytest.raises(bundle.BundleError, match="model.npz is not part of bc v1"):
        bundles.read_file(s3, BUCKET, without_files, "model.npz")


def test_a_missing_object_is_a_bundle_error_that_names_it(s3):
    with pytest.raises(bundle.BundleError, match="s3://models/models/bc/versions/000009/manifest.json does not exist"):
        bundles.load(s3, BUCKET, "bc", 9)


@pytest.mark.parametrize("error", [
    type("SlowDown", (Exception,), {"response": {"ResponseMetadata": {"HTTPStatusCode": 503}}})(),
    ConnectionError("unreachable"),
])
def test_errors_other_than_not_found_are_raised_as_they_are(error):
    class Failing:
        def get_object(self, **kwargs):
            raise error

    with pytest.raises(type(error)):
        bundles.read_champion(Failing(), BUCKET, "bc")


def test_a_manifest_whose_checksum_differs_from_the_pointer_is_refused(s3):
    publish(s3)
    bundles.set_champion(s3, BUCKET, "bc", 1, "first")
    pointer = bundles.read_champion(s3, BUCKET, "bc")
    assert bundles.load(s3, BUCKET, "bc", 1, pointer["manifest_sha256"]).version == 1
    with pytest.raises(bundle.BundleError, match="manifest of bc v1 does not match the champion pointer"):
        bundles.load(s3, BUCKET, "bc", 1, "0" * 64)
    # the champion loader checks it too
    pointer["manifest_sha256"] = "0" * 64
    s3.put_object(Bucket=BUCKET, Key=bundle.champion_key("bc"), Body=json.dumps(pointer).encode())
    with pytest.raises(bundle.BundleError, match="does not match the champion pointer"):
        bundles.load_champion(s3, BUCKET, "bc")


@pytest.mark.parametrize(
    ("body", "words"),
    [(b"{not json", "manifest.json of bc v1 is not JSON"),
     (b'{"format_version": 3}', "unsupported bundle format 3; this code reads (1, 2)"),
     (b'[1, 2]', "unsupported bundle format None"),
     (b'{"name": "bc"}', "unsupported bundle format None")],
)
def test_a_manifest_that_is_not_a_readable_format_is_refused(s3, body, words):
    s3.put_object(Bucket=BUCKET, Key="models/bc/versions/000001/manifest.json", Body=body)
    with pytest.raises(bundle.BundleError, match=words.replace("(", r"\(").replace(")", r"\)")):
        bundles.read_manifest(s3, BUCKET, "bc", 1)


def test_a_format_1_bundle_is_upgraded_when_read(s3):
    # format 1 (before the task was recorded): no task, no n_outputs for CatBoost
    for name, task in (("bc-catboost", "binary"), ("digits-catboost", "multiclass")):
        model = case(name)
        old = {k: v for k, v in model.arrays.items() if k not in ("task", "n_outputs")}
        data = bundle.encode_arrays(old)
        manifest = {"format_version": 1, "name": name, "version": 1, **model.manifest_fields(),
                    "files": {"model.npz": {"sha256": bundle.sha256(data), "size": len(data)}}}
        prefix = bundle.version_prefix(name, 1)
        s3.put_object(Bucket=BUCKET, Key=prefix + "model.npz", Body=data)
        s3.put_object(Bucket=BUCKET, Key=prefix + "manifest.json", Body=json.dumps(manifest).encode())
        loaded = bundles.load(s3, BUCKET, name, 1)
        assert loaded.task == task
        assert np.array_equal(served_predictions(loaded.arrays, model.matrix),
                              served_predictions(model.arrays, model.matrix))
    lgb = {k: v for k, v in case("bc-lightgbm").arrays.items() if k != "task"}
    upgraded = bundle.upgrade_format_1(lgb)
    assert str(upgraded["task"]) == "binary" and int(upgraded["n_outputs"]) == 1


def test_arrays_that_break_the_declaration_are_refused_at_load_naming_the_array(s3):
    model = case("bc-lightgbm")
    broken = dict(model.arrays, threshold=model.arrays["threshold"].astype(np.float32))
    with pytest.raises(bundle.BundleError, match="model.npz: threshold: dtype float32, expected float64"):
        bundle.Bundle(manifest={"name": "bc", "version": 1, **model.manifest_fields()}, arrays=broken)
    with pytest.raises(bundle.BundleError, match="threshold: dtype float32"):
        bundles.publish(s3, BUCKET, "bc", broken, model.manifest_fields())
    assert bundles.list_versions(s3, BUCKET, "bc") == []  # nothing written


def test_the_champion_pointer_names_a_version_and_its_manifest(s3):
    publish(s3)
    publish(s3)
    assert bundles.load_champion(s3, BUCKET, "bc") is None
    first = bundles.set_champion(s3, BUCKET, "bc", 1, "first")
    assert first["previous_version"] is None and first["reason"] == "first" and first["name"] == "bc"
    assert bundles.load_champion(s3, BUCKET, "bc").version == 1
    manifest_bytes = get(s3, "models/bc/versions/000001/manifest.json")
    assert first["manifest_sha256"] == bundle.sha256(manifest_bytes)
    second = bundles.set_champion(s3, BUCKET, "bc", 2, "better")
    assert second["previous_version"] == 1
    assert bundles.read_champion(s3, BUCKET, "bc") == second
    history = s3.list_objects_v2(Bucket=BUCKET, Prefix="models/bc/champion-history/")["Contents"]
    import re

    for item, version in zip(history, (1, 2), strict=True):
        assert re.fullmatch(rf"models/bc/champion-history/\d{{8}}T\d{{12}}Z-00000{version}\.json", item["Key"])
    assert json.loads(get(s3, history[1]["Key"])) == second
    assert first["promoted_at"] <= second["promoted_at"] and second["promoted_at"].endswith("+00:00")


def test_the_serving_functions_own_reader_loads_what_boto3_wrote(s3):
    publish(s3)
    bundles.set_champion(s3, BUCKET, "bc", 1, "first")
    loaded = bundles.load_champion(S3Reader.from_env(), BUCKET, "bc")
    assert loaded.version == 1


def test_models_with_champions_are_listed_with_what_their_pointer_says(s3):
    publish(s3, name="bc")
    publish(s3, case("digits-lightgbm"), name="digits")
    publish(s3, case("penguins-catboost"), name="penguins", metrics={"test": {"f1_macro": 0.97, "rows": 69,
                                                                             "per_class": {"a": {}}}})
    s3.put_object(Bucket=BUCKET, Key="models/Not A Model/x", Body=b"")  # not a valid name: not a model
    bundles.set_champion(s3, BUCKET, "penguins", 1, "first")
    bundles.set_champion(s3, BUCKET, "digits", 1, "first")
    assert bundles.list_models(s3, BUCKET) == ["bc", "digits", "penguins"]
    listed = bundles.list_champions(s3, BUCKET)
    assert [m["name"] for m in listed] == ["digits", "penguins"]  # bc has versions but no champion
    penguins = listed[1]
    assert penguins == {"name": "penguins", "version": 1, "promoted_at": penguins["promoted_at"],
                        "task": "multiclass", "classes": case("penguins-catboost").classes, "target": None,
                        "metrics": {"f1_macro": 0.97, "rows": 69}}
    assert bundles.has_versions(s3, BUCKET, "bc") and not bundles.has_versions(s3, BUCKET, "none")


def test_a_pointer_without_a_summary_is_listed_from_its_manifest(s3):
    publish(s3, name="bc")
    pointer = bundles.set_champion(s3, BUCKET, "bc", 1, "first")
    del pointer["summary"]  # as pointers were written before summaries
    s3.put_object(Bucket=BUCKET, Key=bundle.champion_key("bc"), Body=json.dumps(pointer).encode())
    [listed] = bundles.list_champions(s3, BUCKET)
    assert (listed["task"], listed["classes"], listed["metrics"]) == ("binary", ["benign", "malignant"],
                                                                      {"f1_macro": 0.9})


def test_long_listings_are_followed_page_by_page(s3):
    for i in range(3):
        publish(s3, name=f"m{i}")
    pages = []

    class Paged:
        def list_objects_v2(self, **kwargs):
            pages.append(kwargs)
            return s3.list_objects_v2(**kwargs, MaxKeys=1) if "MaxKeys" not in kwargs else s3.list_objects_v2(**kwargs)

    assert bundles.list_models(Paged(), BUCKET) == ["m0", "m1", "m2"]
    assert [p.get("ContinuationToken") is None for p in pages] == [True, False, False]
    assert bundles.list_versions(Paged(), BUCKET, "m1") == [1]


def test_the_functions_reader_lists_as_boto3_does(s3):
    publish(s3, name="bc")
    publish(s3, name="bc")
    reader = S3Reader.from_env()
    assert bundles.list_versions(reader, BUCKET, "bc") == [1, 2]
    assert bundles.list_models(reader, BUCKET) == ["bc"]
    page = reader.list_objects_v2(Bucket=BUCKET, Prefix="models/bc/versions/", MaxKeys=2)
    assert page["IsTruncated"] is True and page["NextContinuationToken"]
    assert [item["Key"] for item in page["Contents"]] == ["models/bc/versions/000001/manifest.json",
                                                         "models/bc/versions/000001/model.npz"]
    assert page["Contents"][0]["Size"] > 100
    rest = reader.list_objects_v2(Bucket=BUCKET, Prefix="models/bc/versions/", MaxKeys=100,
                                  ContinuationToken=page["NextContinuationToken"])
    assert rest["IsTruncated"] is False and "NextContinuationToken" not in rest
    assert len(rest["Contents"]) == 4


def put_json(s3, key, document):
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(document).encode())


def test_a_listing_reads_the_task_target_and_promotion_time_of_a_manifest_or_derives_the_task(s3):
    # pointers written before summaries: the listing reads each manifest; format 1 manifests have no task
    manifests = {
        "two": {"classes": ["no", "yes"]},
        "three": {"classes": ["a", "b", "c"]},
        "ten": {"classes": list(range(10))},
        "sugar": {"task": "regression", "classes": [], "target": "glucose", "metrics": {"test": {"rmse": 1.5}}},
    }
    for name, fields in manifests.items():
        put_json(s3, bundle.version_prefix(name, 1) + "manifest.json",
                 {"format_version": 1, "name": name, "version": 1, **fields})
        put_json(s3, bundle.champion_key(name), {"name": name, "version": 1, "promoted_at": f"{name}-time"})
    listed = {m.pop("name"): m for m in bundles.list_champions(s3, BUCKET)}
    assert {name: m["task"] for name, m in listed.items()} == {
        "two": "binary", "three": "multiclass", "ten": "multiclass", "sugar": "regression"}
    assert listed["sugar"] == {"version": 1, "promoted_at": "sugar-time", "task": "regression", "classes": [],
                               "target": "glucose", "metrics": {"rmse": 1.5}}
    assert listed["two"]["target"] is None and listed["three"]["classes"] == ["a", "b", "c"]
    assert [m["promoted_at"] for m in listed.values()] == [f"{n}-time" for n in listed]


def test_a_regression_champion_is_listed_with_its_target(s3):
    model = case("diabetes-catboost")
    publish(s3, model, name="diabetes", extra={}, classes=[], target="progression",
            metrics={"test": {"rmse": 50.5}})
    pointer = bundles.set_champion(s3, BUCKET, "diabetes", 1, "first")
    [listed] = bundles.list_champions(s3, BUCKET)
    assert listed == {"name": "diabetes", "version": 1, "promoted_at": pointer["promoted_at"], "task": "regression",
                      "classes": [], "target": "progression", "metrics": {"rmse": 50.5}}


def test_a_listing_shows_what_the_pointer_says_without_reading_the_manifest(s3):
    publish(s3, name="bc")
    pointer = bundles.set_champion(s3, BUCKET, "bc", 1, "first")
    summary = {"task": "binary", "classes": ["no", "yes"], "target": "outcome", "metrics": {"auc": 0.5}}
    put_json(s3, bundle.champion_key("bc"), {**pointer, "summary": summary, "promoted_at": "then"})
    s3.delete_object(Bucket=BUCKET, Key=bundle.version_prefix("bc", 1) + "manifest.json")
    assert bundles.list_champions(s3, BUCKET) == [{"name": "bc", "version": 1, "promoted_at": "then", **summary}]


def test_whether_a_model_has_versions_is_one_list_of_one_key(s3):
    publish(s3, name="bc")
    publish(s3, name="bc")
    calls = []

    class Recording:
        def list_objects_v2(self, **kwargs):
            calls.append(kwargs)
            return s3.list_objects_v2(**kwargs)

    assert bundles.has_versions(Recording(), BUCKET, "bc")
    assert not bundles.has_versions(Recording(), BUCKET, "none")
    assert calls == [{"Bucket": BUCKET, "Prefix": "models/bc/versions/", "MaxKeys": 1},
                     {"Bucket": BUCKET, "Prefix": "models/none/versions/", "MaxKeys": 1}]


def test_an_empty_bucket_lists_no_models(s3):
    # boto3 leaves CommonPrefixes out of a listing that has none
    assert "CommonPrefixes" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="models/", Delimiter="/")
    assert bundles.list_models(s3, BUCKET) == []
    assert bundles.list_champions(s3, BUCKET) == []


def test_prefixes_that_are_not_valid_names_are_not_listed_as_models(s3):
    for prefix in ("abX", "a..b", "ok", "XX", "a.X"):
        s3.put_object(Bucket=BUCKET, Key=f"models/{prefix}/x", Body=b"")
    assert bundles.list_models(s3, BUCKET) == ["ok"]


def test_a_format_1_lightgbm_bundle_gets_zero_leaf_counts(s3):
    model = case("bc-lightgbm")
    old = {k: v for k, v in model.arrays.items() if k not in ("task", "count")}  # format 1 had neither
    data = bundle.encode_arrays(old)
    manifest = {"format_version": 1, "name": "old", "version": 1, **model.manifest_fields(),
                "files": {"model.npz": {"sha256": bundle.sha256(data), "size": len(data)}}}
    s3.put_object(Bucket=BUCKET, Key=bundle.version_prefix("old", 1) + "model.npz", Body=data)
    put_json(s3, bundle.version_prefix("old", 1) + "manifest.json", manifest)
    loaded = bundles.load(s3, BUCKET, "old", 1)
    assert set(loaded.arrays) == set(model.arrays)
    assert loaded.arrays["count"].dtype == np.float64
    assert np.array_equal(loaded.arrays["count"], np.zeros(model.arrays["value"].shape))
    assert np.array_equal(served_predictions(loaded.arrays, model.matrix),
                          served_predictions(model.arrays, model.matrix))




def test_a_history_shows_the_newest_versions_and_promotions_first_with_what_each_was_trained_on(s3, monkeypatch):
    for rows in (100, 200, 300):
        publish(s3, lineage={"rows": rows, "rows_train": rows - 20, "data_sha256": f"{rows:064d}",
                             "dataset": "d"},
                dropped_columns=[{"name": "id", "reason": "an identifier"}] if rows == 300 else [])
    times = iter(datetime(2030, 1, 1, 0, minute, tzinfo=UTC) for minute in range(10))
    monkeypatch.setattr(bundles, "_now", lambda: next(times))
    bundles.set_champion(s3, BUCKET, "bc", 1, "first")
    bundles.set_champion(s3, BUCKET, "bc", 3, "better")
    shown = bundles.history(S3Reader.from_env(), BUCKET, "bc")
    assert shown["name"] == "bc" and [v["version"] for v in shown["versions"]] == [3, 2, 1]
    newest = shown["versions"][0]
    assert (newest["rows"], newest["rows_train"], newest["data_sha256"], newest["dataset"]) == (
        300, 280, f"{300:064d}", "d")
    assert newest["ignored_columns"] == ["id"] and shown["versions"][1]["ignored_columns"] == []
    assert newest["task"] == "binary" and newest["created_at"] and "metrics" in newest
    assert shown["promotions"] == [
        {"version": 3, "promoted_at": "2030-01-01T00:01:00+00:00", "reason": "better", "previous_version": 1},
        {"version": 1, "promoted_at": "2030-01-01T00:00:00+00:00", "reason": "first", "previous_version": None}]
    limited = bundles.history(S3Reader.from_env(), BUCKET, "bc", limit=1)
    assert [v["version"] for v in limited["versions"]] == [3] and [p["version"] for p in limited["promotions"]] == [3]
    assert bundles.HISTORY_LIMIT == 20


def test_a_version_whose_manifest_cannot_be_read_is_shown_as_such_in_the_history(s3):
    for _ in range(3):
        publish(s3)  # never promoted: no promotion to show
    key = bundle.version_prefix("bc", 2) + bundles.MANIFEST_FILE
    s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"format_version": 99}')
    history = bundles.history(S3Reader.from_env(), BUCKET, "bc")
    shown = history["versions"]
    assert [v["version"] for v in shown] == [3, 2, 1] and "task" in shown[0] and "task" in shown[2]
    assert set(shown[1]) == {"version", "unreadable"} and "unsupported bundle format 99" in shown[1]["unreadable"]
    assert history["promotions"] == []
