"""The served form of a model: the arrays of ``model.npz``, declared once.

Training writes a model through ``pack`` and serving reads one through
``check``; both go through the declaration below, so the two sides cannot drift
apart, and a file that does not satisfy it is refused with a message naming the
array and what is wrong with it (a missing array, a wrong dtype or shape, an
index that points outside its table).

Every model has a header of scalars:

* ``layout``: ``oblivious`` (CatBoost's symmetric trees), ``nodes`` (LightGBM's
  binary trees flattened into one node table) or ``weighted`` (an ensemble: a
  weighted sum of member models, below);
* ``task``: ``binary``, ``multiclass`` or ``regression``;
* ``link``: how raw scores become the answer: ``sigmoid`` (binary: one raw score,
  the probability of the second class), ``softmax`` (multiclass: one raw score
  per class) or ``identity`` (regression: the raw score is the value);
* ``n_features``: the width of the rows the model reads (the feature schema
  must produce exactly this many columns);
* ``n_outputs``: raw scores per row (1, or the number of classes).

Shapes below use letters: T trees, D depth, L = 2**D leaves per tree, K =
``n_outputs``, N nodes, C category sets, W = the largest category code + 1.
For CatBoost's target statistics (CTRs, on categoricals with many values):
F1 = ``n_features`` + 1, H category hashes, E elements of the feature
combinations the CTRs are computed on, R CTRs, R1 = R + 1, Q table entries.
The CTR arrays are empty for a model without CTRs.

A CTR is a number per row looked up in a table learnt in training: the row's
combination of elements (a categorical's value, a float split, a one-hot test)
is hashed the way CatBoost hashes it (``MAGIC`` below), and the hash is found
among the CTR's keys; a hash not there takes the CTR's default (its prior).
The CTR values of a row are appended to it as extra columns: a CTR split tests
column ``n_features + r`` like a float split (``float32(x) > border``).
A ``weighted`` model is M members, each a whole ``oblivious`` or ``nodes`` model
whose arrays are stored under the prefix ``m<i>.`` (``m0.roots``, ``m1.borders``...)
and share the ensemble's task, link, ``n_features`` and ``n_outputs``. Its raw
score is ``sum(weights[i] * raw_i)`` and the link applies after the sum, so the
ensemble is still a sum of trees and its SHAP values are the weighted sum of its
members'.

Only numpy and the standard library are used: serving imports this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

FORMAT = "model.npz v2"

TASK_LINKS = {"binary": "sigmoid", "multiclass": "softmax", "regression": "identity"}

# LightGBM's missing_type codes, per node
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
# The code a served row carries for a missing category (NaN in the request).
MISSING_CATEGORY_CODE = -1.0
# CatBoost's hash of a combination: h = MAGIC * (h + MAGIC * value), modulo 2**64, element by element
MAGIC = 0x4906BA494954CB65
ELEMENT_CATEGORY, ELEMENT_FLOAT_SPLIT, ELEMENT_ONE_HOT = 0, 1, 2


class FormatError(ValueError):
    """The arrays do not describe a model this serving code can evaluate exactly."""


@dataclass(frozen=True)
class Spec:
    dtype: str
    shape: tuple[str, ...]
    meaning: str


HEADER = {
    "layout": Spec("str", (), "oblivious | nodes | weighted"),
    "task": Spec("str", (), "binary | multiclass | regression"),
    "link": Spec("str", (), "sigmoid | softmax | identity, fixed by the task"),
    "n_features": Spec("int32", (), "columns in a row the model reads"),
    "n_outputs": Spec("int32", (), "raw scores per row"),
}

LAYOUTS: dict[str, dict[str, Spec]] = {
    "oblivious": {
        "features": Spec("int32", ("T", "D"), "the column tested at each level of each tree"),
        "borders": Spec("float32", ("T", "D"), "the bit is float32(x) > border, as in CatBoost"),
        "nan_goes_right": Spec("bool", ("T", "D"), "a missing value sets the bit (nan_mode=Max)"),
        "is_equal": Spec("bool", ("T", "D"), "a one-hot categorical split: the bit is code == equal_code"),
        "equal_code": Spec("float64", ("T", "D"), "the category code of a one-hot split; NaN never equals"),
        "leaf_values": Spec("float64", ("T", "L", "K"), "leaf index = sum of bit(level) << level"),
        "leaf_weights": Spec("float64", ("T", "L"), "training rows (weights) that reached each leaf"),
        "scale": Spec("float64", (), "raw = scale * sum of leaves + bias"),
        "bias": Spec("float64", ("K",), "raw = scale * sum of leaves + bias"),
        "cat_hash_offset": Spec("int32", ("F1",), "column j's hashes: cat_hashes[offset[j]:offset[j+1]]"),
        "cat_hashes": Spec("uint64", ("H",), "CatBoost's hash of each category code, missing last"),
        "element_projection": Spec("int32", ("E",), "the combination an element belongs to"),
        "element_kind": Spec("int8", ("E",), "0 a categorical's value, 1 a float split, 2 a one-hot test"),
        "element_column": Spec("int32", ("E",), "the column the element reads"),
        "element_border": Spec("float32", ("E",), "a float split element: float32(x) > border"),
        "element_nan_true": Spec("bool", ("E",), "a float split element: a missing value counts as above"),
        "element_code": Spec("float64", ("E",), "a one-hot element: the category code it tests for"),
        "ctr_projection": Spec("int32", ("R",), "the combination a CTR is computed on"),
        "ctr_offset": Spec("int32", ("R1",), "CTR r's table: ctr_keys[offset[r]:offset[r+1]], sorted"),
        "ctr_keys": Spec("uint64", ("Q",), "combination hashes seen in training"),
        "ctr_values": Spec("float32", ("Q",), "the CTR's value for each key"),
        "ctr_default": Spec("float32", ("R",), "the CTR's value for a combination not in its table"),
    },
    "nodes": {
        "roots": Spec("int32", ("T",), "first node of tree t; tree t adds to raw score t % K"),
        "feature": Spec("int32", ("N",), "the column a split node tests"),
        "threshold": Spec("float64", ("N",), "a numeric node goes left when x <= threshold"),
        "default_left": Spec("bool", ("N",), "where a missing value goes"),
        "missing_type": Spec("int8", ("N",), "what counts as missing: 0 none, 1 zero, 2 NaN"),
        "is_categorical": Spec("bool", ("N",), "a categorical node: left when the code is in its set"),
        "category_index": Spec("int32", ("N",), "the row of category_sets of a categorical node"),
        "category_sets": Spec("bool", ("C", "W"), "category_sets[i, code]: that code goes left"),
        "left": Spec("int32", ("N",), "left child; a leaf points to itself"),
        "right": Spec("int32", ("N",), "right child; a leaf points to itself"),
        "value": Spec("float64", ("N",), "the output of a leaf (0 for split nodes)"),
        "count": Spec("float64", ("N",), "training rows that reached the node (internal/leaf count)"),
        "max_depth": Spec("int32", (), "steps that bring every row to a leaf"),
    },
}


WEIGHTED = "weighted"
MEMBER_LAYOUTS = tuple(LAYOUTS)  # a member is a single model: ensembles do not nest
LAYOUTS[WEIGHTED] = {
    "weights": Spec("float64", ("M",), "raw = sum of weights[i] * member i's raw score"),
    "member_layouts": Spec("str", ("M",), "each member's layout: oblivious | nodes"),
}


def member_prefix(i: int) -> str:
    return f"m{i}."


@dataclass(frozen=True)
class Header:
    layout: str
    task: str
    link: str
    n_features: int
    n_outputs: int
    members: tuple[Header, ...] = ()  # a weighted ensemble's members, checked with it, in order


def pack(layout: str, task: str, n_features: int, n_outputs: int, **arrays: Any) -> dict[str, np.ndarray]:
    """The arrays of a model in the declared dtypes, checked: what training writes."""
    specs = LAYOUTS.get(layout) if layout in MEMBER_LAYOUTS else None
    if specs is None:  # an ensemble is packed from its packed members: pack_weighted
        raise FormatError(f"layout {layout!r}: expected one of {', '.join(MEMBER_LAYOUTS)}")
    unknown = sorted(set(arrays) - set(specs))
    if unknown:
        raise FormatError(f"{', '.join(unknown)}: not part of the {layout} layout")
    out: dict[str, np.ndarray] = {
        "layout": np.array(layout),
        "task": np.array(task),
        "link": np.array(TASK_LINKS.get(task, task)),  # an unknown task is named by check()
        "n_features": np.array(n_features, np.int32),
        "n_outputs": np.array(n_outputs, np.int32),
    }
    for name, spec in specs.items():
        if name not in arrays:
            raise FormatError(f"{name}: missing from the {layout} layout ({spec.meaning})")
        out[name] = np.asarray(arrays[name], dtype=spec.dtype)
    check(out)
    return out


def pack_weighted(members: list[dict[str, np.ndarray]], weights: list[float]) -> dict[str, np.ndarray]:
    """One model from packed members and their weights: what training writes for an ensemble."""
    if not members or len(members) != len(weights):
        raise FormatError(f"weights: {len(weights)} weights for {len(members)} members")
    first = members[0]
    out = {name: first[name] for name in HEADER}
    out["layout"] = np.array(WEIGHTED)
    out["weights"] = np.asarray(weights, np.float64)
    out["member_layouts"] = np.array([str(m["layout"]) for m in members])
    for i, member in enumerate(members):
        out.update({member_prefix(i) + name: value for name, value in member.items() if name not in HEADER})
    check(out)
    return out


def members(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """A weighted model's members, each a whole model's arrays (the ensemble's header, its own layout)."""
    shared = {name: arrays[name] for name in HEADER if name != "layout"}
    found = []
    for i, layout in enumerate(arrays["member_layouts"].tolist()):
        prefix = member_prefix(i)
        own = {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
        found.append({**shared, "layout": np.array(layout), **own})
    return found


def check(arrays: dict[str, np.ndarray]) -> Header:
    """The model's header when the arrays satisfy the declaration; else FormatError naming the array."""
    for name, spec in HEADER.items():
        _check_array(arrays, name, spec, {})
    header = Header(
        layout=str(arrays["layout"]),
        task=str(arrays["task"]),
        link=str(arrays["link"]),
        n_features=int(arrays["n_features"]),
        n_outputs=int(arrays["n_outputs"]),
    )
    specs = LAYOUTS.get(header.layout)
    if specs is None:
        raise FormatError(f"layout: {header.layout!r} is not one of {', '.join(LAYOUTS)}")
    if header.task not in TASK_LINKS:
        raise FormatError(f"task: {header.task!r} is not one of {', '.join(TASK_LINKS)}")
    if header.link != TASK_LINKS[header.task]:
        raise FormatError(f"link: a {header.task} model uses {TASK_LINKS[header.task]}, not {header.link!r}")
    if header.n_features < 1:
        raise FormatError(f"n_features: {header.n_features}, expected at least 1")
    expected_outputs = "at least 3" if header.task == "multiclass" else "1"
    if (header.n_outputs < 3) if header.task == "multiclass" else (header.n_outputs != 1):
        raise FormatError(f"n_outputs: {header.n_outputs}, a {header.task} model has {expected_outputs}")
    unknown = sorted(name for name in set(arrays) - set(HEADER) - set(specs)
                     if not (header.layout == WEIGHTED and re.fullmatch(r"m\d+\..+", name)))
    if unknown:
        raise FormatError(f"{', '.join(unknown)}: not part of the {header.layout} layout")
    dims: dict[str, int] = {"K": header.n_outputs}
    for name, spec in specs.items():
        _check_array(arrays, name, spec, dims)
    if header.layout == WEIGHTED:
        return replace(header, members=_check_weighted(arrays, dims))
    (_check_oblivious if header.layout == "oblivious" else _check_nodes)(arrays, header, dims)
    return header


def _check_weighted(arrays: dict[str, np.ndarray], dims: dict[str, int]) -> tuple[Header, ...]:
    weights, layouts = arrays["weights"], arrays["member_layouts"]
    if dims["M"] < 1:
        raise FormatError("weights: no members")
    if not (np.isfinite(weights).all() and (weights > 0).all()):
        raise FormatError("weights: must be finite and positive")
    for i, layout in enumerate(layouts.tolist()):
        if layout not in MEMBER_LAYOUTS:
            raise FormatError(f"member_layouts: member {i} is {layout!r}, expected one of "
                              f"{', '.join(MEMBER_LAYOUTS)}")
    stray = sorted(name for name in arrays if re.fullmatch(r"m\d+\..+", name)
                   and int(name[1:name.index(".")]) >= dims["M"])
    if stray:
        raise FormatError(f"{stray[0]}: belongs to no member (there are {dims['M']})")
    headers = []
    for i, member in enumerate(members(arrays)):
        try:
            headers.append(check(member))
        except FormatError as error:
            raise FormatError(f"member {i} ({member_prefix(i)}*): {error}") from None
    return tuple(headers)


def _check_array(arrays: dict[str, np.ndarray], name: str, spec: Spec, dims: dict[str, int]) -> None:
    if name not in arrays:
        raise FormatError(f"{name}: missing ({spec.meaning})")
    value = arrays[name]
    if not isinstance(value, np.ndarray):
        raise FormatError(f"{name}: expected a numpy array, got {type(value).__name__}")
    kind_ok = value.dtype.kind == "U" if spec.dtype == "str" else value.dtype == np.dtype(spec.dtype)
    if not kind_ok:
        raise FormatError(f"{name}: dtype {value.dtype}, expected {spec.dtype}")
    if value.ndim != len(spec.shape):
        raise FormatError(f"{name}: {value.ndim} dimensions {value.shape}, expected {len(spec.shape)} "
                          f"({', '.join(spec.shape) or 'a scalar'})")
    for letter, size in zip(spec.shape, value.shape, strict=True):
        if dims.setdefault(letter, size) != size:
            raise FormatError(f"{name}: shape {value.shape} disagrees with {letter} = {dims[letter]} "
                              f"({', '.join(spec.shape)})")


def _check_oblivious(arrays: dict[str, np.ndarray], header: Header, dims: dict[str, int]) -> None:
    if dims["T"] < 1:
        raise FormatError("features: no trees")
    if dims["L"] != 2 ** dims["D"]:
        raise FormatError(f"leaf_values: {dims['L']} leaves per tree, expected 2**depth = {2 ** dims['D']}")
    ctrs = dims["R"]
    _in_range(arrays["features"], "features", header.n_features + ctrs)
    if not np.isfinite(arrays["scale"]):
        raise FormatError("scale: not a finite number")
    for name in ("leaf_values", "bias", "leaf_weights"):
        if not np.isfinite(arrays[name]).all():
            raise FormatError(f"{name}: holds NaN or infinite values")
    _check_offsets(arrays, "cat_hash_offset", header.n_features + 1, dims["H"])
    _check_offsets(arrays, "ctr_offset", ctrs + 1, dims["Q"])
    kinds = arrays["element_kind"]
    if not np.isin(kinds, (ELEMENT_CATEGORY, ELEMENT_FLOAT_SPLIT, ELEMENT_ONE_HOT)).all():
        raise FormatError("element_kind: codes must be 0 (category), 1 (float split) or 2 (one-hot)")
    _in_range(arrays["element_column"], "element_column", header.n_features)
    hashed = np.diff(arrays["cat_hash_offset"]) > 0
    if (~hashed[arrays["element_column"][kinds == ELEMENT_CATEGORY]]).any():
        raise FormatError("element_column: a categorical element reads a column without category hashes")
    projections = int(arrays["element_projection"].max()) + 1 if dims["E"] else 0
    _in_range(arrays["element_projection"], "element_projection", projections)
    _in_range(arrays["ctr_projection"], "ctr_projection", projections)
    keys, offset = arrays["ctr_keys"], arrays["ctr_offset"]
    for r in range(ctrs):  # a CTR's keys are found by binary search
        table = keys[offset[r]:offset[r + 1]]
        if (table[1:] <= table[:-1]).any():
            raise FormatError(f"ctr_keys: the keys of CTR {r} are not sorted and distinct")
    for name in ("ctr_values", "ctr_default"):
        if not np.isfinite(arrays[name]).all():
            raise FormatError(f"{name}: holds NaN or infinite values")


def _check_offsets(arrays: dict[str, np.ndarray], name: str, length: int, total: int) -> None:
    offsets = arrays[name]
    if offsets.shape[0] != length:
        raise FormatError(f"{name}: {offsets.shape[0]} offsets, expected {length}")
    if offsets[0] != 0 or offsets[-1] != total or (np.diff(offsets) < 0).any():
        raise FormatError(f"{name}: offsets must rise from 0 to {total}")


def _check_nodes(arrays: dict[str, np.ndarray], header: Header, dims: dict[str, int]) -> None:
    trees, nodes = dims["T"], dims["N"]
    if trees < 1 or trees % header.n_outputs:
        raise FormatError(f"roots: {trees} trees, expected a positive multiple of n_outputs "
                          f"({header.n_outputs}: a tree per output per round)")
    for name in ("roots", "left", "right"):
        _in_range(arrays[name], name, nodes)
    split = arrays["left"] != np.arange(nodes)
    if (arrays["right"][~split] != np.flatnonzero(~split)).any():  # the evaluator stops where both are
        raise FormatError("right: a leaf (left = itself) must have right = itself too")
    _in_range(arrays["feature"][split], "feature", header.n_features)
    if not np.isin(arrays["missing_type"], (MISSING_NONE, MISSING_ZERO, MISSING_NAN)).all():
        raise FormatError("missing_type: codes must be 0 (none), 1 (zero) or 2 (NaN)")
    categorical = arrays["is_categorical"] & split
    _in_range(arrays["category_index"][categorical], "category_index", dims["C"])
    if not np.isfinite(arrays["value"]).all():
        raise FormatError("value: holds NaN or infinite values")
    if not (np.isfinite(arrays["count"]).all() and (arrays["count"] >= 0).all()):
        raise FormatError("count: holds negative, NaN or infinite values")
    # every row must reach a leaf in max_depth steps (this also rules out cycles): the nodes reached
    # after each step, as a mask (linear in the nodes, where sorting them each step is not)
    if int(arrays["max_depth"]) > nodes:  # no tree is deeper than its nodes: a bound on the walk
        raise FormatError(f"max_depth: {int(arrays['max_depth'])} steps, more than the {nodes} nodes")
    reached = np.zeros(nodes, bool)
    reached[arrays["roots"]] = True
    for _ in range(int(arrays["max_depth"])):
        frontier = np.flatnonzero(reached)
        reached = np.zeros(nodes, bool)
        reached[arrays["left"][frontier]] = True
        reached[arrays["right"][frontier]] = True
        if not split[reached].any():  # every row is at a leaf, where it stays
            break
    if split[reached].any():
        raise FormatError(f"max_depth: {int(arrays['max_depth'])} steps do not reach a leaf in every tree")


def _in_range(values: np.ndarray, name: str, size: int) -> None:
    if values.size and (values.min() < 0 or values.max() >= size):
        raise FormatError(f"{name}: indices from {values.min()} to {values.max()}, expected 0 to {size - 1}")
