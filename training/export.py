"""Turn fitted CatBoost / LightGBM models into the served form of a model.

The form is declared in ``serving.model_format``: the arrays are written through
its ``pack``, which checks them. ``check_exactness`` compares what the served form
answers (``serving.served_predictions``) with the native library's answer
on real rows before anything is published.

CatBoost is read from its JSON export, made with a pool that holds every
category of the schema and the missing category, so that CatBoost itself gives
the hash of each value; its target statistics (CTRs) are turned into sorted
tables of combination hashes and the CTR's float32 value for each, computed as
CatBoost computes them (``TModelCtr::Calc`` in static_ctr_provider.cpp).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from serving.model import format as model_format
from serving.model.format import (
    ELEMENT_CATEGORY,
    ELEMENT_FLOAT_SPLIT,
    ELEMENT_ONE_HOT,
    MISSING_CATEGORY_CODE,
    MISSING_NAN,
    MISSING_NONE,
    MISSING_ZERO,
)
from serving.model.predictor import served_explanations, served_predictions

from training.data import MISSING_CATEGORY, model_columns

MAX_ABS_DIFFERENCE = 1e-9  # served vs native: probabilities, or values relative to their size
EMPTY_SLOT = 2**64 - 1  # CatBoost's JSON keeps its hash table's empty slots, with stray counts


class ExportError(ValueError):
    pass


def _catboost_json(model, schema: list[dict]) -> dict:
    """The model's JSON export, with CatBoost's hash of every category of the schema."""
    import catboost
    import pandas as pd

    columns = model_columns(schema)
    if list(model.feature_names_) != columns:
        raise ExportError(f"the model reads {model.feature_names_}, the schema gives {columns}")
    categorical = [f for f in schema if f["type"] == "categorical"]
    rows = max([len(f["categories"]) + 1 for f in categorical], default=1)
    probe = pd.DataFrame({c: np.zeros(rows) for c in columns})
    for feature in categorical:  # each category once (then repeated), and the missing category
        values = [*feature["categories"], MISSING_CATEGORY]
        probe[feature["name"]] = [values[i % len(values)] for i in range(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.json"
        pool = catboost.Pool(probe, cat_features=[f["name"] for f in categorical])
        model.save_model(str(path), format="json", pool=pool)
        return json.loads(path.read_text())


def export_catboost(model, schema: list[dict], task: str) -> dict[str, np.ndarray]:
    """CatBoost symmetric trees → the ``oblivious`` layout, target statistics (CTRs) included.

    A split's ``split_index`` counts every float border, then every one-hot value, then
    every CTR border (CatBoost's model.cpp): that is how a CTR split names its CTR.
    """
    spec = _catboost_json(model, schema)
    info = spec["features_info"]
    floats = info.get("float_features", [])
    cats = info.get("categorical_features", [])
    ctrs = info.get("ctrs", [])
    width = len(model.feature_names_)
    hashes = _category_hashes(info, schema, cats, width)
    bins: list[tuple[str, Any, Any]] = []
    bins += [("FloatFeature", f, b) for f in floats for b in f["borders"]]
    bins += [("OneHotFeature", c, v) for c in cats for v in c.get("values", [])]
    bins += [("OnlineCtr", k, b) for k, ctr in enumerate(ctrs) for b in ctr["borders"]]
    trees = spec["oblivious_trees"]
    for tree in trees:  # a tree without a split (one leaf) has "splits": null in CatBoost's JSON
        tree["splits"] = tree.get("splits") or []
    depth = max(len(tree["splits"]) for tree in trees)
    scale, bias = spec["scale_and_bias"]
    n_outputs = len(bias)
    shape = (len(trees), depth)
    features = np.zeros(shape, np.int32)
    borders = np.full(shape, np.inf, np.float32)  # a shallower tree: levels that never fire
    nan_right = np.zeros(shape, bool)
    is_equal = np.zeros(shape, bool)
    equal_code = np.full(shape, np.nan, np.float64)  # NaN never equals: a category unseen
    leaves = np.zeros((len(trees), 2**depth, n_outputs), np.float64)
    weights = np.zeros((len(trees), 2**depth), np.float64)
    for t, tree in enumerate(trees):
        for level, split in enumerate(tree["splits"]):
            kind, ref, value = bins[split["split_index"]]
            if kind != split["split_type"]:
                raise ExportError(f"CatBoost split {split['split_index']} is a {split['split_type']}, "
                                  f"but its index says {kind}")
            if kind == "FloatFeature":
                features[t, level] = ref["flat_feature_index"]
                borders[t, level] = np.float32(value)
                nan_right[t, level] = _nan_is_above(ref)
            elif kind == "OneHotFeature":
                features[t, level] = ref["flat_feature_index"]
                is_equal[t, level] = True
                equal_code[t, level] = _code_of(hashes[ref["flat_feature_index"]], value)
            else:  # a CTR: the served row gets one column per CTR after its own
                features[t, level] = width + ref
                borders[t, level] = np.float32(value)
        own = 2 ** len(tree["splits"])
        leaves[t, :own] = np.asarray(tree["leaf_values"], np.float64).reshape(own, n_outputs)
        weights[t, :own] = tree["leaf_weights"]
    return model_format.pack(
        "oblivious", task, n_features=width, n_outputs=n_outputs,
        features=features, borders=borders, nan_goes_right=nan_right, is_equal=is_equal,
        equal_code=equal_code, leaf_values=leaves, leaf_weights=weights, scale=scale, bias=bias,
        **_ctr_arrays(spec, floats, cats, ctrs, hashes, width),
    )


def _nan_is_above(feature: dict) -> bool:
    """CatBoost reads a missing float as +inf under nan_mode=Max (when training saw missing values)."""
    return bool(feature.get("has_nans")) and feature.get("nan_value_treatment") == "AsTrue"


def _category_hashes(info: dict, schema: list[dict], cats: list[dict], width: int) -> dict[int, np.ndarray]:
    """Model column → CatBoost's hash (as a signed int32) of each category code, the missing category last."""
    known = {entry["value"]: int(entry["hash"]) for entry in info.get("cat_features_hash") or []}
    names = model_columns(schema)
    by_name = {f["name"]: f for f in schema}
    hashes = {}
    for cat in cats:
        column = cat["flat_feature_index"]
        values = [*by_name[names[column]]["categories"], MISSING_CATEGORY]
        absent = [v for v in values if v not in known]
        if absent:
            raise ExportError(f"CatBoost gave no hash for {names[column]!r} values {absent[:5]}")
        hashes[column] = np.array([known[v] for v in values], np.uint32).view(np.int32)
    return hashes


def _code_of(hashes: np.ndarray, value: int) -> float:
    """Our category code for a one-hot split's hash: -1 for the missing category, NaN for none."""
    found = np.flatnonzero(hashes == value)
    if not found.size:
        return np.nan
    return MISSING_CATEGORY_CODE if found[0] == len(hashes) - 1 else float(found[0])


def _ctr_arrays(spec, floats, cats, ctrs, hashes, width) -> dict[str, np.ndarray]:
    offsets, flat = [0], []
    for column in range(width):
        column_hashes = hashes.get(column, np.zeros(0, np.int32))
        flat.append(column_hashes.astype(np.int64).view(np.uint64))  # sign-extended, as CatBoost's ui64
        offsets.append(offsets[-1] + len(column_hashes))
    floats_by_index = {f["feature_index"]: f for f in floats}
    cats_by_index = {c["feature_index"]: c for c in cats}
    projections: dict[str, int] = {}
    elements: list[tuple] = []
    ctr_projection, ctr_offset, keys, values, defaults = [], [0], [], [], []
    for ctr in ctrs:
        identity = json.dumps(ctr["elements"], sort_keys=True)
        if identity not in projections:
            projections[identity] = len(projections)
            elements += [_element(element, projections[identity], floats_by_index, cats_by_index, hashes)
                         for element in ctr["elements"]]
        ctr_projection.append(projections[identity])
        table_keys, table_values, default = _ctr_table(spec["ctr_data"][ctr["identifier"]], ctr)
        keys.append(table_keys)
        values.append(table_values)
        defaults.append(default)
        ctr_offset.append(ctr_offset[-1] + len(table_keys))
    columns = list(zip(*elements, strict=True)) if elements else [[]] * 6
    return {
        "cat_hash_offset": offsets,
        "cat_hashes": np.concatenate(flat) if flat else np.zeros(0, np.uint64),
        "element_projection": columns[0], "element_kind": columns[1], "element_column": columns[2],
        "element_border": columns[3], "element_nan_true": columns[4], "element_code": columns[5],
        "ctr_projection": ctr_projection, "ctr_offset": ctr_offset,
        "ctr_keys": np.concatenate(keys) if keys else np.zeros(0, np.uint64),
        "ctr_values": np.concatenate(values) if values else np.zeros(0, np.float32),
        "ctr_default": defaults,
    }


def _element(element, projection, floats_by_index, cats_by_index, hashes) -> tuple:
    """(projection, kind, column, border, nan_true, code) of one element of a combination."""
    kind = element["combination_element"]
    if kind == "cat_feature_value":
        column = cats_by_index[element["cat_feature_index"]]["flat_feature_index"]
        return projection, ELEMENT_CATEGORY, column, 0.0, False, np.nan
    if kind == "float_feature":
        feature = floats_by_index[element["float_feature_index"]]
        border = np.float32(element["border"])
        column = feature["flat_feature_index"]
        return projection, ELEMENT_FLOAT_SPLIT, column, border, _nan_is_above(feature), np.nan
    if kind == "cat_feature_exact_value":
        column = cats_by_index[element["cat_feature_index"]]["flat_feature_index"]
        return projection, ELEMENT_ONE_HOT, column, 0.0, False, _code_of(hashes[column], element["value"])
    raise ExportError(f"CatBoost combination element {kind!r} is not supported")


def _ctr_table(table: dict, ctr: dict) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """A CTR's sorted keys, its float32 value for each, and its value for a key not there."""
    stride = int(table["hash_stride"])
    entries = table["hash_map"]
    rows = [(int(entries[i]), entries[i + 1:i + stride]) for i in range(0, len(entries), stride)]
    rows = sorted((key, counts) for key, counts in rows if key != EMPTY_SLOT)
    keys = np.array([key for key, _ in rows], np.uint64)
    counts = np.array([counts for _, counts in rows], np.float64).reshape(len(rows), stride - 1)
    kind = ctr["ctr_type"]
    prior_num, prior_denom = np.float32(ctr["prior_numerator"]), np.float32(ctr["prior_denomerator"])
    shift, scale = np.float32(ctr["shift"]), np.float32(ctr["scale"])
    tbi = int(ctr.get("target_border_idx", 0))
    if kind == "Borders":
        good = counts[:, tbi + 1:].sum(axis=1) if stride - 1 > 2 else counts[:, 1]
        a, b, empty_b = good, counts.sum(axis=1), 0.0
    elif kind == "Buckets":
        a, b, empty_b = counts[:, tbi], counts.sum(axis=1), 0.0
    elif kind in ("Counter", "FeatureFreq"):
        denominator = float(table.get("counter_denominator", 0))
        a, b, empty_b = counts[:, 0], np.full(len(rows), denominator), denominator
    elif kind in ("BinarizedTargetMeanValue", "FloatTargetMeanValue"):
        a, b, empty_b = counts[:, 0], counts[:, 1], 0.0
    else:
        raise ExportError(f"CatBoost CTR type {kind!r} is not supported")

    def value(a, b):  # float32, one operation at a time, as TModelCtr::Calc
        return ((np.float32(a) + prior_num) / (np.float32(b) + prior_denom) + shift) * scale

    return keys, value(a.astype(np.float32), b.astype(np.float32)).astype(np.float32), \
        np.float32(value(np.float32(0), np.float32(empty_b)))


_MISSING = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
_LIGHTGBM_TASKS = {"binary": "binary", "multiclass": "multiclass", "softmax": "multiclass",
                   "regression": "regression", "regression_l1": "regression", "huber": "regression"}


def export_lightgbm(booster, task: str) -> dict[str, np.ndarray]:
    spec = booster.dump_model()
    objective = spec["objective"].split()
    if _LIGHTGBM_TASKS.get(objective[0]) != task:
        raise ExportError(f"LightGBM objective {spec['objective']!r} cannot be served as {task}")
    if task == "binary" and float(spec["objective"].split("sigmoid:")[1].split()[0]) != 1.0:
        raise ExportError("LightGBM binary models with sigmoid != 1 are not supported")
    if "sqrt" in objective[1:]:  # reg_sqrt: trained on a transformed target
        raise ExportError(f"LightGBM objective {spec['objective']!r} transforms the target: not supported")
    n_outputs = spec["num_tree_per_iteration"]
    cols = {k: [] for k in ("feature", "threshold", "default_left", "missing_type",
                            "is_categorical", "category_index", "left", "right", "value", "count")}
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
            cols["count"][index] = float(node.get("leaf_count", 0))
            return index
        cols["feature"][index] = node["split_feature"]
        cols["default_left"][index] = bool(node["default_left"])
        cols["missing_type"][index] = _MISSING[node["missing_type"]]
        cols["count"][index] = float(node.get("internal_count", 0))
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
        category_sets=sets, max_depth=max_depth, roots=roots, **cols,
    )


def check_explanations(arrays: dict[str, np.ndarray], X: np.ndarray, native: np.ndarray) -> float:
    """Largest difference between the served SHAP contributions and the native library's on rows X
    (measured as the answers are); raises over the bar."""
    served = served_explanations(arrays, X)
    if served.shape != native.shape:
        raise ExportError(f"the served explanations have shape {served.shape}, the native {native.shape}")
    return _within_bar(served, native, str(arrays["task"]),
                       "the served explanations differ from the native SHAP values")


def check_exactness(arrays: dict[str, np.ndarray], X: np.ndarray, native: np.ndarray) -> float:
    """Largest difference between the served form and the native model on rows X; raises over the bar.

    Probabilities are compared as they are; regression values relative to their size
    (|served - native| / max(1, |native|)).
    """
    served = served_predictions(arrays, X)
    return _within_bar(served, native, str(arrays["task"]), "the served form differs from the native model")


def _within_bar(served: np.ndarray, native: np.ndarray, task: str, what: str) -> float:
    difference = np.abs(served - native)
    if task == "regression":
        difference = difference / np.maximum(1.0, np.abs(native))
    largest = float(np.max(difference))
    if not largest <= MAX_ABS_DIFFERENCE:
        raise ExportError(f"{what} by {largest:.3g} (limit {MAX_ABS_DIFFERENCE:g}): not publishing")
    return largest
