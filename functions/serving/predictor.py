"""A loaded model: validate a request, evaluate the trees, shape the answer."""

from __future__ import annotations

from typing import Any

import numpy as np

from serving import ensemble
from serving.bundle import Bundle, BundleError
from serving.schema import FeatureSchema


class Predictor:
    def __init__(self, bundle: Bundle, *, unknown_category: str) -> None:
        self.bundle = bundle
        self.ensemble = ensemble.from_arrays(bundle.arrays)
        self.schema = FeatureSchema(bundle.feature_schema, unknown_category=unknown_category)
        if self.schema.width != self.ensemble.n_features:
            raise BundleError(f"the model reads {self.ensemble.n_features} features but its schema "
                              f"gives {self.schema.width}")
        self.classes = list(bundle.classes)
        self._labels = [str(c) for c in self.classes]

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def version(self) -> int:
        return self.bundle.version

    @property
    def task(self) -> str:
        return self.bundle.task

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes), or regression values (n, 1)."""
        return self.ensemble.predict(X)

    def predict(self, body: Any, max_rows: int) -> dict[str, Any]:
        """A request body → one answer per row: label and class probabilities, or the value."""
        X = self.schema.matrix(body, max_rows=max_rows)
        return {"model": {"name": self.name, "version": self.version},
                "predictions": self.answers(self.predict_matrix(X))}

    def answers(self, output: np.ndarray) -> list[dict[str, Any]]:
        if self.task == "regression":
            return [{"prediction": value} for value in output[:, 0].tolist()]
        labels, classes = self._labels, self.classes
        return [
            {"label": classes[k], "probabilities": dict(zip(labels, row, strict=True))}
            for k, row in zip(output.argmax(axis=1).tolist(), output.tolist(), strict=True)
        ]

    def describe(self) -> dict[str, Any]:
        """What /model shows: everything a client needs to build a request."""
        m = self.bundle.manifest
        keys = ("name", "version", "created_at", "framework", "feature_schema", "classes",
                "target", "metrics", "hyperparameters", "lineage", "examples", "exactness")
        return {key: m[key] for key in keys if key in m} | {"task": self.task}
