"""The native library's answer for a published bundle: what the served answers are compared with."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from serving.model import bundle
from serving.store import bundles

from training import data as D


def native_model(champion: bundle.Bundle, s3, bucket: str):
    """The bundle's native model file, loaded: a CatBoost model or a LightGBM Booster."""
    name = champion.manifest["framework"]["native_file"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(bundles.read_file(s3, bucket, champion.manifest, name))
        if champion.manifest["framework"]["family"] == "catboost":
            from catboost import CatBoost

            model = CatBoost()
            model.load_model(str(path))
            return model
        import lightgbm as lgb

        return lgb.Booster(model_file=str(path))


def _catboost(champion: bundle.Bundle) -> bool:
    return champion.manifest["framework"]["family"] == "catboost"


def native_predictions(champion: bundle.Bundle, s3, bucket: str, X) -> np.ndarray:
    """Class probabilities (or values, (n, 1)) of the bundle's native model file on the rows X."""
    model, schema = native_model(champion, s3, bucket), champion.manifest["feature_schema"]
    if _catboost(champion):
        frame = D.for_catboost(X, schema)
        if champion.task == "regression":
            return model.predict(frame).reshape(-1, 1)
        return model.predict(frame, prediction_type="Probability")
    raw = model.predict(D.for_lightgbm(X, schema))
    if champion.task == "binary":
        return np.column_stack([1 - raw, raw])
    return raw.reshape(-1, 1) if champion.task == "regression" else raw


def native_shap(champion: bundle.Bundle, s3, bucket: str, X) -> np.ndarray:
    """The bundle's native model file's SHAP values on the rows X: (n, outputs, columns + 1), the expected
    value last (CatBoost's ShapValues, LightGBM's pred_contrib)."""
    model, schema = native_model(champion, s3, bucket), champion.manifest["feature_schema"]
    if _catboost(champion):
        from catboost import Pool

        frame = D.for_catboost(X, schema)
        values = model.get_feature_importance(Pool(frame, cat_features=D.categorical_columns(schema)),
                                              type="ShapValues")
    else:
        frame = D.for_lightgbm(X, schema)
        values = model.predict(frame, pred_contrib=True)
    return np.asarray(values, np.float64).reshape(len(frame), -1, frame.shape[1] + 1)


def republish(s3, bucket: str, name: str) -> int:
    """The champion's bundle published again as a new version (not promoted); returns its number."""
    champion = bundles.load_champion(s3, bucket, name)
    derived = ("name", "version", "created_at", "files", "format_version", "task")
    fields = {k: v for k, v in champion.manifest.items() if k not in derived}
    return bundles.publish(s3, bucket, name, champion.arrays, fields)["version"]
