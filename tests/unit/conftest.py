from __future__ import annotations

import os
import socket

import boto3
import numpy as np
import pytest
import requests

from training import data as D
from training import families

BUCKET = "models"


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto as a server on loopback, so that boto3 (training) and the serving
    function's own S3 reader (plain HTTP) both reach the same mocked S3."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    if not os.environ.get("MUTANT_UNDER_TEST"):  # `make mutation`: its thread dies with the process, and
        server.stop()                          # stopping waits out werkzeug's half-second poll per mutant


@pytest.fixture
def moto_s3(moto_endpoint, monkeypatch):
    """A fresh mocked S3 with a versioned model bucket."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return client


@pytest.fixture
def s3(monkeypatch):
    """The serving tests' S3: the in-process fake of tests/unit/fake_s3.py, behind both the functions'
    reader and boto3's client. Tests of S3 itself over HTTP (the reader, the bundle store, multipart
    assembly) and of the training job (its own boto3 clients) take ``moto_s3``."""
    from tests.unit.fake_s3 import for_the_functions

    return for_the_functions(monkeypatch, BUCKET)


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
                                   self.schema, task=data.task, seed=0, threads=2, rounds=rounds)
        self.arrays = self.fitted.export(self.schema)
        self.native = self.fitted.predict(self.X_test, self.schema)
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
