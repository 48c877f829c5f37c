"""The two model families: search space, fit with early stopping, export.

Each library handles categorical features natively: LightGBM through pandas
categories; CatBoost through one-hot splits up to ``ONE_HOT_MAX_SIZE`` values and
its own target statistics (CTRs, with their combinations) beyond; the served
form evaluates both exactly. Classification and regression share the code: the
task picks the estimator, its objective and what ``predict`` returns (class
probabilities, or the value as a column).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training import data as D
from training.export import export_catboost, export_lightgbm

ONE_HOT_MAX_SIZE = 255  # categoricals with more values use CatBoost's CTRs
# Regression objectives, by the config's name: (CatBoost loss, LightGBM objective)
OBJECTIVES = {"squared_error": ("RMSE", "regression"), "absolute_error": ("MAE", "regression_l1"),
              "huber": ("Huber:delta={delta}", "huber")}


class OutOfTime(Exception):
    """A fit stopped at its deadline: the model is not what its parameters ask for."""


@dataclass
class Fitted:
    family: str
    model: Any
    best_rounds: int
    task: str

    def predict(self, X: pd.DataFrame, schema) -> np.ndarray:
        """The native library's answer in the served form's space: class probabilities, or values (n, 1)."""
        frame_ = frame(self.family, X, schema)
        if self.task == "regression":
            return np.asarray(self.model.predict(frame_), np.float64).reshape(-1, 1)
        return self.model.predict_proba(frame_)

    def raw(self, X: pd.DataFrame, schema) -> np.ndarray:
        """The native raw scores (n, outputs) before the link: log-odds, per-class scores or values."""
        frame_ = frame(self.family, X, schema)
        if self.family == "catboost":
            values = self.model.predict(frame_, prediction_type="RawFormulaVal")
        else:
            values = self.model.predict(frame_, raw_score=True)
        return np.asarray(values, np.float64).reshape(len(frame_), -1)

    def native_files(self) -> list[tuple[str, bytes]]:
        return [self.native_file()]

    def shap(self, X: pd.DataFrame, schema) -> np.ndarray:
        """The native library's SHAP values in raw score space: (n, outputs, columns + 1), the expected
        value last (CatBoost's ShapValues; LightGBM's pred_contrib)."""
        frame_ = frame(self.family, X, schema)
        if self.family == "catboost":
            import catboost

            pool = catboost.Pool(frame_, cat_features=D.categorical_columns(schema))
            values = self.model.get_feature_importance(data=pool, type="ShapValues")
        else:
            values = self.model.booster_.predict(frame_, pred_contrib=True)
        values = np.asarray(values, np.float64)
        return values.reshape(len(frame_), -1, frame_.shape[1] + 1)

    @property
    def classes(self) -> list[str]:
        return [] if self.task == "regression" else [str(c) for c in self.model.classes_]

    def export(self, schema) -> dict[str, np.ndarray]:
        """The served form (``serving.model_format``)."""
        if self.family == "catboost":
            return export_catboost(self.model, schema, self.task)
        return export_lightgbm(self.model.booster_, self.task)

    def native_file(self) -> tuple[str, bytes]:
        with tempfile.TemporaryDirectory() as tmp:
            if self.family == "catboost":
                path = Path(tmp) / "model.cbm"
                self.model.save_model(str(path))
            else:
                path = Path(tmp) / "model.txt"
                self.model.booster_.save_model(str(path))
            return path.name, path.read_bytes()

    def feature_importance(self, schema) -> dict[str, float]:
        """Each feature's share of the importance (a date's parts added up)."""
        values = np.asarray(self.model.feature_importances_, dtype=float)
        total = values.sum() or 1.0
        shares: dict[str, float] = {}
        for column, value in zip(D.model_columns(schema), values, strict=True):
            feature = column.split(".", 1)[0] if column not in {f["name"] for f in schema} else column
            shares[feature] = shares.get(feature, 0.0) + float(value / total)
        return shares


def frame(family: str, X: pd.DataFrame, schema) -> pd.DataFrame:
    return D.for_catboost(X, schema) if family == "catboost" else D.for_lightgbm(X, schema)


def suggest(trial, family: str, task: str, class_weight: str) -> dict[str, Any]:
    """A trial's parameters for a family; class weighting is tuned, or fixed by the config."""
    if family == "catboost":
        params = {
            "depth": trial.suggest_int("cb_depth", 3, 8),
            "learning_rate": trial.suggest_float("cb_learning_rate", 0.02, 0.3, log=True),
            "l2_leaf_reg": trial.suggest_float("cb_l2_leaf_reg", 0.5, 20, log=True),
            "random_strength": trial.suggest_float("cb_random_strength", 0.1, 5, log=True),
            "bagging_temperature": trial.suggest_float("cb_bagging_temperature", 0.0, 2.0),
        }
    else:
        params = {
            "num_leaves": trial.suggest_int("lgb_num_leaves", 7, 63),
            "max_depth": trial.suggest_int("lgb_max_depth", 3, 8),
            "learning_rate": trial.suggest_float("lgb_learning_rate", 0.02, 0.3, log=True),
            "min_child_samples": trial.suggest_int("lgb_min_child_samples", 5, 50),
            "colsample_bytree": trial.suggest_float("lgb_colsample_bytree", 0.5, 1.0),
            "subsample": trial.suggest_float("lgb_subsample", 0.6, 1.0),
            "reg_lambda": trial.suggest_float("lgb_reg_lambda", 1e-3, 10, log=True),
        }
    if task != "regression":
        prefix = "cb_" if family == "catboost" else "lgb_"
        weight = (trial.suggest_categorical(f"{prefix}class_weight", ["none", "balanced"])
                  if class_weight == "tune" else class_weight)
        params["class_weight"] = weight
    return params


# Where a study starts: each library's defaults, in the search space's terms (LightGBM's
# unlimited depth capped at the space's 8). Tuning then only has to beat them, and the
# defaults are what a tuned model is compared with.
STARTING_POINTS = {
    "catboost": {"cb_depth": 6, "cb_learning_rate": 0.08, "cb_l2_leaf_reg": 3.0, "cb_random_strength": 1.0,
                 "cb_bagging_temperature": 1.0},
    "lightgbm": {"lgb_num_leaves": 31, "lgb_max_depth": 8, "lgb_learning_rate": 0.1,
                 "lgb_min_child_samples": 20, "lgb_colsample_bytree": 1.0, "lgb_subsample": 1.0,
                 "lgb_reg_lambda": 1e-3},
}


def starting_point(family: str, task: str, class_weight: str) -> dict[str, Any]:
    """A first trial's flat parameters for a family: its defaults (no class weights when tuned)."""
    point = {"family": family, **STARTING_POINTS[family]}
    if task != "regression" and class_weight == "tune":
        point[("cb_" if family == "catboost" else "lgb_") + "class_weight"] = "none"
    return point


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
    task: str,
    seed: int,
    threads: int,
    rounds: int,
    objective: str = "squared_error",
    huber_delta: float = 1.0,
    eval_set: tuple[pd.DataFrame, pd.Series] | None = None,
    early_stopping_rounds: int | None = None,
    deadline: float | None = None,
) -> Fitted:
    """Fit one model; past ``deadline`` (time.monotonic()) the library stops and OutOfTime is raised."""
    params = dict(params)
    weight = params.pop("class_weight", "none")
    categorical = D.categorical_columns(schema)
    train = frame(family, X, schema)
    if family == "catboost":
        import catboost

        options = {"one_hot_max_size": ONE_HOT_MAX_SIZE, **params, "iterations": rounds, "random_seed": seed,
                   "thread_count": threads, "allow_writing_files": False, "verbose": False}
        if task == "regression":
            model = catboost.CatBoostRegressor(
                **options, loss_function=OBJECTIVES[objective][0].format(delta=huber_delta))
        else:
            model = catboost.CatBoostClassifier(
                **options, auto_class_weights="Balanced" if weight == "balanced" else None)
        fit_kwargs: dict[str, Any] = {"cat_features": categorical}
        if eval_set is not None:
            fit_kwargs.update(eval_set=(frame(family, eval_set[0], schema), eval_set[1]),
                              early_stopping_rounds=early_stopping_rounds)
        if deadline is not None:
            fit_kwargs["callbacks"] = [_CatBoostDeadline(deadline)]
        model.fit(train, y, **fit_kwargs)
        if deadline is not None and time.monotonic() > deadline:
            raise OutOfTime(f"catboost stopped at its deadline after {model.tree_count_} trees")
        best = model.get_best_iteration() if eval_set is not None else None
        return Fitted(family, model, (best + 1) if best is not None else rounds, task)

    import lightgbm as lgb

    options = dict(params, n_estimators=rounds, subsample_freq=1, random_state=seed, n_jobs=threads,
                   deterministic=True, force_row_wise=True, min_data_per_group=5, verbose=-1)
    if task == "regression":
        model = lgb.LGBMRegressor(**options, objective=OBJECTIVES[objective][1], alpha=huber_delta)
    else:
        model = lgb.LGBMClassifier(**options, class_weight="balanced" if weight == "balanced" else None)
    callbacks = []
    fit_kwargs = {}
    if eval_set is not None:
        # eval_set, not the newer eval_X/eval_y: in 4.7 only eval_set gets the
        # wrapper's label encoding, which string class labels need
        fit_kwargs["eval_set"] = [(frame(family, eval_set[0], schema), eval_set[1])]
        callbacks.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
    if deadline is not None:
        callbacks.append(_lightgbm_deadline(deadline))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*eval_set.*deprecated", category=Warning)
        model.fit(train, y, callbacks=callbacks, **fit_kwargs)
    best = model.best_iteration_ if eval_set is not None else None
    return Fitted(family, model, int(best) if best else rounds, task)


class _CatBoostDeadline:
    """CatBoost's callback protocol: training goes on while after_iteration answers True."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def after_iteration(self, info) -> bool:
        return time.monotonic() <= self.deadline


def _lightgbm_deadline(deadline: float):
    def check(env) -> None:
        if time.monotonic() > deadline:
            raise OutOfTime(f"lightgbm stopped at its deadline after {env.iteration + 1} rounds")

    check.order = 40  # after early stopping's bookkeeping (30)
    return check
