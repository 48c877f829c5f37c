"""A loaded model: validate a request, evaluate the trees, shape the answer."""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.bundle import Bundle
from serving.ensemble import load_ensemble
from serving.schema import FeatureSchema


class Predictor:
    def __init__(self, bundle: Bundle, unknown_category: str = "reject") -> None:
        self.bundle = bundle
        width = int(bundle.arrays["n_features"])
        if width != len(bundle.feature_schema):
            raise ValueError(f"the model reads {width} features but its schema lists "
                             f"{len(bundle.feature_schema)}")
        self.ensemble = load_ensemble(bundle.arrays)
        self.schema = FeatureSchema(bundle.feature_schema, unknown_category=unknown_category)
        self.classes = list(bundle.classes)
        self._labels = [str(c) for c in self.classes]

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def version(self) -> int:
        return self.bundle.version

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.ensemble.predict_proba(X)

    def predict(self, body: Any, max_rows: int) -> dict[str, Any]:
        """A validated request body → label and class probabilities per row."""
        X = self.schema.matrix(body, max_rows=max_rows)
        proba = self.predict_proba(X)
        best = proba.argmax(axis=1)
        labels = self._labels
        classes = self.classes
        predictions = [
            {"label": classes[k], "probabilities": dict(zip(labels, row, strict=True))}
            for k, row in zip(best.tolist(), proba.tolist(), strict=True)
        ]
        return {"model": {"name": self.name, "version": self.version}, "predictions": predictions}

    def describe(self) -> dict[str, Any]:
        """What /model shows: everything a client needs to build a request."""
        m = self.bundle.manifest
        keys = ("name", "version", "created_at", "framework", "feature_schema", "classes",
                "metrics", "hyperparameters", "lineage", "examples", "exactness")
        return {key: m[key] for key in keys if key in m}
