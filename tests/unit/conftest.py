from __future__ import annotations

import boto3
import numpy as np
import pytest
from moto import mock_aws

from training import data as D
from training import families

BUCKET = "models"


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 with a private model bucket; no real endpoint is reachable."""
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


class Trained:
    """A small fitted model with everything a bundle needs."""

    def __init__(self, dataset: str, family: str, rounds: int = 40, params=None):
        data = D.load(dataset)
        self.schema = D.infer_schema(data.X)
        cut = int(len(data.X) * 0.8)
        self.X_train, self.X_test = data.X.iloc[:cut], data.X.iloc[cut:]
        self.y_train, self.y_test = data.y.iloc[:cut], data.y.iloc[cut:]
        default = {"catboost": {"depth": 4}, "lightgbm": {"num_leaves": 15, "max_depth": 5}}
        self.fitted = families.fit(family, params or default[family], self.X_train, self.y_train,
                                   self.schema, seed=0, threads=2, rounds=rounds)
        self.arrays = self.fitted.export(self.X_train, self.schema)
        self.native = self.fitted.predict_proba(self.X_test, self.schema)
        self.classes = self.fitted.classes
        self.family = family

    def manifest_fields(self) -> dict:
        return {
            "framework": {"family": self.family},
            "feature_schema": self.schema,
            "classes": self.classes,
            "metrics": {"test": {"f1_macro": 0.9}},
            "examples": [{"label": self.y_test.iloc[0],
                          "instance": D.to_instances(self.X_test.iloc[:1], self.schema)[0]}],
        }

    def test_matrix(self) -> np.ndarray:
        return D.to_matrix(self.X_test, self.schema)


_cache: dict = {}


def trained(dataset="breast_cancer", family="lightgbm", rounds=40, params=None) -> Trained:
    key = (dataset, family, rounds, repr(params))
    if key not in _cache:
        _cache[key] = Trained(dataset, family, rounds, params)
    return _cache[key]
