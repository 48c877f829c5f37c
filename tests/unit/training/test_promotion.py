"""Promotion by hand, rollback and the history of champions."""

import pytest
from serving.model import bundle
from serving.store import bundles

from tests.unit.conftest import BUCKET, trained
from training import promotion


def publish(s3, name="bc"):
    model = trained()
    return bundles.publish(s3, BUCKET, name, model.arrays, model.manifest_fields(), {"model.txt": b"native"})


def test_promotion_history_is_kept_and_rollback_restores_the_previous_champion(s3):
    publish(s3)
    publish(s3)
    promotion.promote(s3, BUCKET, "bc", 1, "first")
    promotion.promote(s3, BUCKET, "bc", 2, "better")
    assert bundles.read_champion(s3, BUCKET, "bc")["version"] == 2
    pointer = promotion.rollback(s3, BUCKET, "bc")
    assert pointer["version"] == 1
    assert bundles.read_champion(s3, BUCKET, "bc")["version"] == 1
    assert [h["version"] for h in promotion.history(s3, BUCKET, "bc")] == [1, 2, 1]
    # every earlier pointer is still in the versioned bucket
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=bundle.champion_key("bc"))["Versions"]
    assert len(versions) == 3


def test_promoting_an_unpublished_version_fails(s3):
    publish(s3)
    with pytest.raises(bundle.BundleError, match="no published version 7"):
        promotion.promote(s3, BUCKET, "bc", 7, "typo")


def test_rollback_needs_a_previous_champion(s3):
    publish(s3)
    with pytest.raises(bundle.BundleError, match="bc has no champion to roll back"):
        promotion.rollback(s3, BUCKET, "bc")
    promotion.promote(s3, BUCKET, "bc", 1, "first")
    with pytest.raises(bundle.BundleError, match="v1 was the first champion: nothing to roll back to"):
        promotion.rollback(s3, BUCKET, "bc")
