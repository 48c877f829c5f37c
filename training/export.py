"""Turn fitted CatBoost / LightGBM models into the served form of a model.

The form is declared in ``serving.model_format``: the arrays are written through
its ``pack``, which checks them. ``check_exactness`` compares what the served form
answers (``serving.bundle.served_predictions``) with the native library's answer
on real rows before anything is published.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from serving import bundle, model_format
from serving.model_format import MISSING_CATEGORY_CODE, MISSING_NAN, MISSING_NONE, MISSING_ZERO

from training.data import MISSING_CATEGORY, categorical_columns

MAX_ABS_DIFFERENCE = 1e-9  # served vs native: probabilities, or values relative to their size


class ExportError(ValueError):
    pass


def export_catboost(model, schema: list[dict], example: pd.DataFrame, task: str) -> dict[str, np.ndarray]:
    """CatBoost symmetric trees → the ``oblivious`` layout.

    ``example`` is one row in CatBoost's input form (``training.data.for_catboost``).
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.json"
        model.save_model(str(path), format="json")
        spec = json.loads(path.read_text())
    info = spec["features_info"]
    float_features = info.get("float_features", [])
    cat_features = info.get("categorical_features", [])
    trees = spec["oblivious_trees"]
    category_codes = _catboost_category_codes(model, schema, example, cat_features, trees)
    # Trees can be shallower than the rest when no split helped; they are padded
    # with levels that never fire (x > +inf), so their leaf indices are unchanged.
    depth = max(len(tree["splits"]) for tree in trees)
    scale, bias = spec["scale_and_bias"]
    n_outputs = len(bias)
    shape = (len(trees), depth)
    features = np.zeros(shape, np.int32)
    borders = np.full(shape, np.inf, np.float32)
    nan_right = np.zeros(shape, bool)
    is_equal = np.zeros(shape, bool)
    equal_code = np.full(shape, np.nan, np.float64)  # NaN never equals: a category unseen
    leaves = np.zeros((len(trees), 2**depth, n_outputs), np.float64)
    for t, tree in enumerate(trees):
        for level, split in enumerate(tree["splits"]):
            kind = split["split_type"]
            if kind == "FloatFeature":
                feature = float_features[split["float_feature_index"]]
                features[t, level] = feature["flat_feature_index"]
                borders[t, level] = np.float32(split["border"])
                nan_right[t, level] = feature.get("nan_value_treatment") == "AsTrue"
            elif kind == "OneHotFeature":
                feature = cat_features[split["cat_feature_index"]]
                features[t, level] = feature["flat_feature_index"]
                is_equal[t, level] = True
                equal_code[t, level] = category_codes[feature["flat_feature_index"]].get(
                    split["value"], np.nan
                )
            else:
                raise ExportError(
                    f"CatBoost split {kind} (target statistics) is not exportable: "
                    "train with one_hot_max_size above every categorical's cardinality"
                )
        own = 2 ** len(tree["splits"])
        leaves[t, :own] = np.asarray(tree["leaf_values"], np.float64).reshape(own, n_outputs)
    return model_format.pack(
        "oblivious", task, n_features=len(model.feature_names_), n_outputs=n_outputs,
        features=features, borders=borders, nan_goes_right=nan_right, is_equal=is_equal,
        equal_code=equal_code, leaf_values=leaves, scale=scale, bias=bias,
    )


def _catboost_category_codes(model, schema, example, cat_features, trees):
    """For each categorical column: CatBoost's hash of a category → our category code.

    CatBoost names one-hot splits by an internal hash of the category string and
    has no public function for it, so the mapping is read off the model itself:
    one probe row per category, and ``calc_leaf_indexes`` shows which one-hot
    split it sets in each tree.
    """
    import catboost

    if not cat_features:
        return {}
    by_index = {f["flat_feature_index"]: f for f in cat_features}
    names = [s["name"] for s in schema]
    mapping: dict[int, dict[int, float]] = {}
    for flat_index in by_index:
        feature = schema[flat_index]
        categories = [*feature["categories"], MISSING_CATEGORY]
        codes = [*range(len(feature["categories"])), MISSING_CATEGORY_CODE]
        probe = pd.concat([example.iloc[[0]]] * len(categories), ignore_index=True)
        probe[names[flat_index]] = categories
        pool = catboost.Pool(probe, cat_features=categorical_columns(schema))
        leaf_index = model.calc_leaf_indexes(pool)  # (rows, trees)
        found: dict[int, float] = {}
        for t, tree in enumerate(trees):
            for level, split in enumerate(tree["splits"]):
                if split["split_type"] == "OneHotFeature" and (
                    cat_features[split["cat_feature_index"]]["flat_feature_index"] == flat_index
                ):
                    fired = [codes[r] for r in range(len(categories)) if leaf_index[r, t] >> level & 1]
                    if len(fired) > 1:
                        raise ExportError(f"CatBoost hash collision in {names[flat_index]!r}")
                    if fired:
                        found[split["value"]] = float(fired[0])
        mapping[flat_index] = found
    return mapping


_MISSING = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}


def export_lightgbm(booster) -> dict[str, np.ndarray]:
    spec = booster.dump_model()
    objective = spec["objective"].split()[0]
    n_outputs = spec["num_tree_per_iteration"]
    if objective == "binary":
        sigmoid = float(spec["objective"].split("sigmoid:")[1].split()[0])
        if sigmoid != 1.0:
            raise ExportError("LightGBM binary models with sigmoid != 1 are not supported")
        task = "binary"
    elif objective in ("multiclass", "softmax"):
        task = "multiclass"
    else:
        raise ExportError(f"LightGBM objective {objective!r} is not a classifier")
    cols = {k: [] for k in ("feature", "threshold", "default_left", "missing_type",
                            "is_categorical", "category_index", "left", "right", "value")}
    category_sets: list[list[int]] = []
    roots, max_depth = [], 0

    def add(node: dict, depth: int) -> int:
        nonlocal max_depth
        index = len(cols["feature"])
        for values in cols.values():
            values.append(0)
        if "leaf_value" in node or "leaf_index" in node:
            max_depth = max(max_depth, depth)
            cols["left"][index] = cols["right"][index] = index
            cols["value"][index] = float(node.get("leaf_value", 0.0))
            return index
        cols["feature"][index] = node["split_feature"]
        cols["default_left"][index] = bool(node["default_left"])
        cols["missing_type"][index] = _MISSING[node["missing_type"]]
        if node["decision_type"] == "==":
            cols["is_categorical"][index] = True
            cols["category_index"][index] = len(category_sets)
            category_sets.append([int(c) for c in str(node["threshold"]).split("||")])
        else:
            cols["threshold"][index] = float(node["threshold"])
        cols["left"][index] = add(node["left_child"], depth + 1)
        cols["right"][index] = add(node["right_child"], depth + 1)
        return index

    for tree in spec["tree_info"]:
        roots.append(add(tree["tree_structure"], 0))
    width = max((max(s) for s in category_sets), default=0) + 1
    sets = np.zeros((max(len(category_sets), 1), width), bool)
    for row, codes in enumerate(category_sets):
        sets[row, codes] = True
    return model_format.pack(
        "nodes", task, n_features=booster.num_feature(), n_outputs=n_outputs,
        category_sets=sets, max_depth=max_depth, **{name: values for name, values in cols.items()},
        roots=roots,
    )


def check_exactness(arrays: dict[str, np.ndarray], X: np.ndarray, native: np.ndarray) -> float:
    """Max |served - native| on rows X (probabilities, or values); raises when over the bar."""
    served = bundle.served_predictions(arrays, X)
    difference = float(np.max(np.abs(served - native)))
    if not difference <= MAX_ABS_DIFFERENCE:
        raise ExportError(
            f"the served form differs from the native model by {difference:.3g} "
            f"(limit {MAX_ABS_DIFFERENCE:g}): not publishing"
        )
    return difference
