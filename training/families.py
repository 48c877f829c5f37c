"""The two model families: search space, fit with early stopping, export.

Each library handles categorical features natively: LightGBM through pandas
categories, CatBoost through its one-hot splits (``one_hot_max_size`` above every
categorical's cardinality, so every split can be served exactly).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training import data as D
from training.export import export_catboost, export_lightgbm


@dataclass
class Fitted:
    family: str
    model: Any
    best_rounds: int

    def predict(self, X: pd.DataFrame, schema) -> np.ndarray:
        """The native library's answer in the served form's space: class probabilities."""
        return self.model.predict_proba(frame(self.family, X, schema))

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.model.classes_]

    @property
    def task(self) -> str:
        return "binary" if len(self.classes) == 2 else "multiclass"

    def export(self, X: pd.DataFrame, schema) -> dict[str, np.ndarray]:
        """The served form (``serving.model_format``); ``X`` gives CatBoost a row to probe."""
        if self.family == "catboost":
            return export_catboost(self.model, schema, frame("catboost", X.iloc[:1], schema), self.task)
        return export_lightgbm(self.model.booster_)

    def native_file(self) -> tuple[str, bytes]:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            if self.family == "catboost":
                path = Path(tmp) / "model.cbm"
                self.model.save_model(str(path))
            else:
                path = Path(tmp) / "model.txt"
                self.model.booster_.save_model(str(path))
            return path.name, path.read_bytes()

    def feature_importance(self, names: list[str]) -> dict[str, float]:
        values = np.asarray(self.model.feature_importances_, dtype=float)
        total = values.sum() or 1.0
        return {n: float(v / total) for n, v in zip(names, values, strict=True)}


def frame(family: str, X: pd.DataFrame, schema) -> pd.DataFrame:
    return D.for_catboost(X, schema) if family == "catboost" else D.for_lightgbm(X, schema)


def suggest(trial, family: str) -> dict[str, Any]:
    if family == "catboost":
        return {
            "depth": trial.suggest_int("cb_depth", 3, 8),
            "learning_rate": trial.suggest_float("cb_learning_rate", 0.02, 0.3, log=True),
            "l2_leaf_reg": trial.suggest_float("cb_l2_leaf_reg", 0.5, 20, log=True),
            "random_strength": trial.suggest_float("cb_random_strength", 0.1, 5, log=True),
            "bagging_temperature": trial.suggest_float("cb_bagging_temperature", 0.0, 2.0),
        }
    return {
        "num_leaves": trial.suggest_int("lgb_num_leaves", 7, 63),
        "max_depth": trial.suggest_int("lgb_max_depth", 3, 8),
        "learning_rate": trial.suggest_float("lgb_learning_rate", 0.02, 0.3, log=True),
        "min_child_samples": trial.suggest_int("lgb_min_child_samples", 5, 50),
        "colsample_bytree": trial.suggest_float("lgb_colsample_bytree", 0.5, 1.0),
        "subsample": trial.suggest_float("lgb_subsample", 0.6, 1.0),
        "reg_lambda": trial.suggest_float("lgb_reg_lambda", 1e-3, 10, log=True),
    }


def params_from_trial(trial_params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A finished trial's flat parameters → (family, library parameters)."""
    family = trial_params["family"]
    prefix = "cb_" if family == "catboost" else "lgb_"
    return family, {k.removeprefix(prefix): v for k, v in trial_params.items() if k.startswith(prefix)}


def fit(
    family: str,
    params: dict[str, Any],
    X: pd.DataFrame,
    y: pd.Series,
    schema,
    *,
    seed: int,
    threads: int,
    rounds: int,
    eval_set: tuple[pd.DataFrame, pd.Series] | None = None,
    early_stopping_rounds: int | None = None,
) -> Fitted:
    categorical = D.categorical_columns(schema)
    train = frame(family, X, schema)
    if family == "catboost":
        from catboost import CatBoostClassifier

        model = CatBoostClassifier(
            **params,
            iterations=rounds,
            random_seed=seed,
            thread_count=threads,
            one_hot_max_size=255,
            max_ctr_complexity=1,
            allow_writing_files=False,
            verbose=False,
        )
        fit_kwargs: dict[str, Any] = {"cat_features": categorical}
        if eval_set is not None:
            fit_kwargs.update(
                eval_set=(frame(family, eval_set[0], schema), eval_set[1]),
                early_stopping_rounds=early_stopping_rounds,
            )
        model.fit(train, y, **fit_kwargs)
        best = model.get_best_iteration() if eval_set is not None else None
        return Fitted(family, model, (best + 1) if best is not None else rounds)

    import lightgbm as lgb

    model = lgb.LGBMClassifier(
        **params,
        n_estimators=rounds,
        subsample_freq=1,
        random_state=seed,
        n_jobs=threads,
        deterministic=True,
        force_row_wise=True,
        min_data_per_group=5,
        verbose=-1,
    )
    callbacks = []
    fit_kwargs = {}
    if eval_set is not None:
        # eval_set, not the newer eval_X/eval_y: in 4.7 only eval_set gets the
        # wrapper's label encoding, which string class labels need
        fit_kwargs["eval_set"] = [(frame(family, eval_set[0], schema), eval_set[1])]
        callbacks.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*eval_set.*deprecated", category=Warning)
        model.fit(train, y, callbacks=callbacks, **fit_kwargs)
    best = model.best_iteration_ if eval_set is not None else None
    return Fitted(family, model, int(best) if best else rounds)
