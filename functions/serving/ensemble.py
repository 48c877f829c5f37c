"""Evaluate a tree ensemble from plain numpy arrays: the served form of a model.

Why our own evaluator instead of the native libraries or a converter:
* catboost (281 MB installed) and lightgbm + scipy (232 MB) do not fit a Lambda
  zip next to anything else, and cost a second of import;
* ONNX (onnxruntime) computes in float32: probabilities differ from the native
  ones by ~1e-7, over this project's 1e-9 exactness bar;
* treelite's GTIL has no CatBoost front end and pulls in scipy.
Tree ensembles are a few arrays and a loop over depth; the numerics below follow
each library's own rules (CatBoost compares float32 features against float32
borders; LightGBM compares doubles and routes missing values per node), so
probabilities match the native ones to ~1e-16. ``training/export.py`` writes
these arrays from fitted models and the publish step checks the match.

Two layouts:
* ``oblivious`` (CatBoost): every tree of depth D tests one feature per level,
  either ``x > border`` (float32) or, for a one-hot categorical split,
  ``code == category code``; the leaf index is the bits of those tests.
* ``nodes`` (LightGBM): binary trees flattened into one node table; leaves
  point to themselves, so all trees advance in lock-step for ``max_depth`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# LightGBM's missing_type codes
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
K_ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold
MISSING_CATEGORY_CODE = -1.0


ROW_CHUNK = 256  # rows evaluated together: keeps the (rows, trees) arrays in cache


def _raw_in_chunks(raw, X: np.ndarray) -> np.ndarray:
    if X.shape[0] <= ROW_CHUNK:
        return raw(X)
    return np.concatenate([raw(X[i : i + ROW_CHUNK]) for i in range(0, X.shape[0], ROW_CHUNK)])


def _link(raw: np.ndarray, link: str) -> np.ndarray:
    """Raw scores (n, k) → class probabilities (n, n_classes)."""
    if link == "sigmoid":
        p1 = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        return np.column_stack([1.0 - p1, p1])
    if link == "softmax":
        shifted = raw - raw.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(f"unknown link function {link!r}")


@dataclass(frozen=True)
class ObliviousEnsemble:
    """CatBoost symmetric trees: arrays shaped (trees, depth) and (trees, 2**depth, outputs)."""

    features: np.ndarray  # int32 (T, D): column of X tested at each level
    borders: np.ndarray  # float32 (T, D)
    nan_goes_right: np.ndarray  # bool (T, D): NaN compares as "greater" (nan_mode=Max)
    is_equal: np.ndarray  # bool (T, D): a one-hot categorical split
    equal_code: np.ndarray  # float64 (T, D): the category code that sets the bit
    leaf_values: np.ndarray  # float64 (T, 2**D, K)
    scale: float
    bias: np.ndarray  # float64 (K,)
    link: str

    def __post_init__(self):
        trees, depth = self.features.shape
        width = self.leaf_values.shape[1]
        # one contiguous leaf table per output: np.take from a small 1-D table per
        # class is twice as fast as gathering (trees, K) rows for 10 classes
        per_output = self.leaf_values.reshape(trees * width, -1).T
        object.__setattr__(self, "_output_leaves", np.ascontiguousarray(per_output))
        object.__setattr__(self, "_tree_offset", (np.arange(trees) * width).astype(np.intp))
        object.__setattr__(self, "_has_equal", bool(self.is_equal.any()))

    def raw(self, X: np.ndarray) -> np.ndarray:
        depth = self.features.shape[1]
        x32 = X.astype(np.float32)
        values = np.take(x32, self.features, axis=1)  # (n, T, D)
        bits = values > self.borders
        if np.isnan(x32).any():
            bits = np.where(np.isnan(values), self.nan_goes_right, bits)
        if self._has_equal:
            # a missing category is CatBoost's own category, coded -1 in the schema
            codes = np.nan_to_num(X[:, self.features], nan=MISSING_CATEGORY_CODE)
            bits = np.where(self.is_equal, codes == self.equal_code, bits)
        index = np.zeros(bits.shape[:2], dtype=np.intp)
        for level in range(depth):  # depth is small (<= 10): the leaf index bit by bit
            index |= bits[:, :, level].astype(np.intp) << level
        index += self._tree_offset
        total = np.empty((X.shape[0], self._output_leaves.shape[0]))
        for k, leaves in enumerate(self._output_leaves):
            total[:, k] = np.take(leaves, index).sum(axis=1)
        return self.scale * total + self.bias

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return _link(_raw_in_chunks(self.raw, X), self.link)


@dataclass(frozen=True)
class NodeEnsemble:
    """LightGBM trees flattened into one node table; ``roots[t]`` is tree t's first node."""

    roots: np.ndarray  # int32 (T,), in LightGBM's order: tree t adds to raw score t % n_outputs
    feature: np.ndarray  # int32 (N,)
    threshold: np.ndarray  # float64 (N,)
    default_left: np.ndarray  # bool (N,)
    missing_type: np.ndarray  # int8 (N,)
    is_categorical: np.ndarray  # bool (N,)
    category_index: np.ndarray  # int32 (N,): row of ``category_sets`` for categorical nodes
    category_sets: np.ndarray  # bool (C, max_code + 1): category codes that go left
    left: np.ndarray  # int32 (N,)
    right: np.ndarray  # int32 (N,)
    value: np.ndarray  # float64 (N,): leaf output (0 for inner nodes)
    max_depth: int
    n_outputs: int
    link: str

    def __post_init__(self):
        if self.roots.shape[0] % self.n_outputs:
            raise ValueError("the tree count must be a multiple of the outputs (a tree per class per round)")
        # children[node] = (right, left): one gather per level picks the next node
        children = np.stack([self.right, self.left], axis=1).astype(np.intp)
        object.__setattr__(self, "_children_flat", children.ravel())
        needs_care = (self.missing_type != MISSING_NONE) | self.is_categorical
        object.__setattr__(self, "_simple", not bool(needs_care.any()))

    def raw(self, X: np.ndarray) -> np.ndarray:
        n, n_features = X.shape
        trees = self.roots.shape[0]
        flat_x = np.ascontiguousarray(X, dtype=np.float64).ravel()
        row_offset = (np.arange(n, dtype=np.intp) * n_features)[:, None]
        node = np.broadcast_to(self.roots.astype(np.intp), (n, trees)).copy()
        # With no missing values in X and no node that routes missing values or
        # categories, LightGBM's decision is just x <= threshold. Gathers use
        # np.take on flat arrays: several times faster than 2-D fancy indexing.
        simple = self._simple and not np.isnan(flat_x).any()
        for _ in range(self.max_depth):
            fval = np.take(flat_x, row_offset + np.take(self.feature, node))
            if simple:
                go_left = fval <= np.take(self.threshold, node)
            else:
                go_left = self._numerical(fval, node)
                cat = self.is_categorical[node]
                if cat.any():
                    go_left = np.where(cat, self._categorical(fval, node), go_left)
            node = np.take(self._children_flat, node * 2 + go_left)
        leaf_values = np.take(self.value, node)  # (n, T); tree t adds to output t % K
        return leaf_values.reshape(n, trees // self.n_outputs, self.n_outputs).sum(axis=1)

    def _numerical(self, fval: np.ndarray, node: np.ndarray) -> np.ndarray:
        # LightGBM's NumericalDecision: NaN is 0 unless the node routes NaN itself;
        # missing values (zero or NaN, per node) follow default_left.
        missing_type = self.missing_type[node]
        nan = np.isnan(fval)
        fval = np.where(nan & (missing_type != MISSING_NAN), 0.0, fval)
        is_missing = ((missing_type == MISSING_ZERO) & (np.abs(fval) <= K_ZERO_THRESHOLD)) | (
            (missing_type == MISSING_NAN) & nan
        )
        with np.errstate(invalid="ignore"):
            return np.where(is_missing, self.default_left[node], fval <= self.threshold[node])

    def _categorical(self, fval: np.ndarray, node: np.ndarray) -> np.ndarray:
        # LightGBM's CategoricalDecision: NaN and negative codes go right;
        # a code goes left when it is in the node's set.
        valid = ~np.isnan(fval) & (fval >= 0) & (fval < self.category_sets.shape[1])
        codes = np.where(valid, fval, 0).astype(np.int64)
        return valid & self.category_sets[self.category_index[node], codes]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return _link(_raw_in_chunks(self.raw, X), self.link)


def load_ensemble(arrays: dict[str, np.ndarray]) -> ObliviousEnsemble | NodeEnsemble:
    """Build an evaluator from the arrays of a bundle's ``model.npz``."""
    layout = str(arrays["layout"])
    link = str(arrays["link"])
    if layout == "oblivious":
        return ObliviousEnsemble(
            features=arrays["features"].astype(np.int32),
            borders=arrays["borders"].astype(np.float32),
            nan_goes_right=arrays["nan_goes_right"].astype(bool),
            is_equal=arrays["is_equal"].astype(bool),
            equal_code=arrays["equal_code"].astype(np.float64),
            leaf_values=arrays["leaf_values"].astype(np.float64),
            scale=float(arrays["scale"]),
            bias=arrays["bias"].astype(np.float64),
            link=link,
        )
    if layout == "nodes":
        return NodeEnsemble(
            roots=arrays["roots"].astype(np.int32),
            feature=arrays["feature"].astype(np.int32),
            threshold=arrays["threshold"].astype(np.float64),
            default_left=arrays["default_left"].astype(bool),
            missing_type=arrays["missing_type"].astype(np.int8),
            is_categorical=arrays["is_categorical"].astype(bool),
            category_index=arrays["category_index"].astype(np.int32),
            category_sets=arrays["category_sets"].astype(bool),
            left=arrays["left"].astype(np.int32),
            right=arrays["right"].astype(np.int32),
            value=arrays["value"].astype(np.float64),
            max_depth=int(arrays["max_depth"]),
            n_outputs=int(arrays["n_outputs"]),
            link=link,
        )
    raise ValueError(f"unknown ensemble layout {layout!r}")
