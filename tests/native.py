"""The native library's answer for a published bundle: what the served answers are compared with."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from serving.model import bundle
from serving.model import format as model_format
from serving.model.evaluator import apply_link
from serving.store import bundles

from training import data as D


def _members(champion: bundle.Bundle) -> list[tuple[str, str, float]]:
    """(family, native file, weight) of each model the bundle adds up: one, or an ensemble's members."""
    framework = champion.manifest["framework"]
    if framework["family"] != "ensemble":
        return [(framework["family"], framework["native_file"], 1.0)]
    return [(m["family"], m["native_file"], m["weight"]) for m in champion.manifest["ensemble"]["members"]]


def native_model(family: str, name: str, champion: bundle.Bundle, s3, bucket: str):
    """A native model file of the bundle, loaded: a CatBoost model or a LightGBM Booster."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(bundles.read_file(s3, bucket, champion.manifest, name))
        if family == "catboost":
            from catboost import CatBoost

            model = CatBoost()
            model.load_model(str(path))
            return model
        import lightgbm as lgb

        return lgb.Booster(model_file=str(path))


def native_raw(champion: bundle.Bundle, s3, bucket: str, X) -> np.ndarray:
    """The native raw scores (n, outputs) of the bundle's model files on rows X, weighted and added up."""
    schema, total = champion.manifest["feature_schema"], 0.0
    for family, name, weight in _members(champion):
        model = native_model(family, name, champion, s3, bucket)
        if family == "catboost":
            raw = model.predict(D.for_catboost(X, schema), prediction_type="RawFormulaVal")
        else:
            raw = model.predict(D.for_lightgbm(X, schema), raw_score=True)
        total = total + weight * np.asarray(raw, np.float64).reshape(len(X), -1)
    return total


def native_predictions(champion: bundle.Bundle, s3, bucket: str, X) -> np.ndarray:
    """Class probabilities (or values, (n, 1)) of the bundle's native model files on the rows X."""
    return apply_link(native_raw(champion, s3, bucket, X), model_format.TASK_LINKS[champion.task])


def native_shap(champion: bundle.Bundle, s3, bucket: str, X) -> np.ndarray:
    """The bundle's native model files' SHAP values on the rows X, weighted and added up: (n, outputs,
    columns + 1), the expected value last (CatBoost's ShapValues, LightGBM's pred_contrib)."""
    schema, total = champion.manifest["feature_schema"], 0.0
    for family, name, weight in _members(champion):
        model = native_model(family, name, champion, s3, bucket)
        if family == "catboost":
            from catboost import Pool

            frame = D.for_catboost(X, schema)
            values = model.get_feature_importance(Pool(frame, cat_features=D.categorical_columns(schema)),
                                                  type="ShapValues")
        else:
            frame = D.for_lightgbm(X, schema)
            values = model.predict(frame, pred_contrib=True)
        total = total + weight * np.asarray(values, np.float64).reshape(len(frame), -1, frame.shape[1] + 1)
    return total


def republish(s3, bucket: str, name: str) -> int:
    """The champion's bundle published again as a new version (not promoted); returns its number."""
    champion = bundles.load_champion(s3, bucket, name)
    derived = ("name", "version", "created_at", "files", "format_version", "task")
    fields = {k: v for k, v in champion.manifest.items() if k not in derived}
    return bundles.publish(s3, bucket, name, champion.arrays, fields)["version"]
