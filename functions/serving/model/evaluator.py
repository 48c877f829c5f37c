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
probabilities match the native ones to ~1e-16. The arrays, their dtypes and
shapes are declared in ``serving.model_format`` (training writes through it) and
checked there before an evaluator is built; the publish step checks the match.

Two layouts, and their weighted sums:
* ``oblivious`` (CatBoost): every tree of depth D tests one feature per level,
  either ``x > border`` (float32) or, for a one-hot categorical split,
  ``code == category code``; the leaf index is the bits of those tests.
* ``nodes`` (LightGBM): binary trees flattened into one node table; leaves
  point to themselves; every (row, tree) pair steps down together, and pairs
  that reached their leaf leave the walk.
"""

from __future__ import annotations

import numpy as np

from serving.model import format as model_format
from serving.model.format import (
    ELEMENT_CATEGORY,
    ELEMENT_FLOAT_SPLIT,
    MAGIC,
    MISSING_CATEGORY_CODE,
    MISSING_NAN,
    MISSING_NONE,
    MISSING_ZERO,
    Header,
)

K_ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM: `const double kZeroThreshold = 1e-35f`, a float
ROW_CHUNK = 64  # LightGBM's rows evaluated together: the (rows, trees) arrays stay in cache (64-128 best)


def apply_link(raw: np.ndarray, link: str) -> np.ndarray:
    """Raw scores (n, K) → the answer: class probabilities (n, classes) or values (n, 1)."""
    if link == "sigmoid":
        out = np.empty((raw.shape[0], 2))
        out[:, 1] = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        out[:, 0] = 1.0 - out[:, 1]
        return out
    if link == "softmax":
        shifted = raw - raw.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=1, keepdims=True)
    return raw  # identity: regression


class _Ensemble:
    """What both layouts share; each defines ``raw(X)``: raw scores (n, K)."""

    row_chunk = ROW_CHUNK  # rows evaluated together

    def __init__(self, header: Header) -> None:
        self.header = header

    @property
    def n_features(self) -> int:
        return self.header.n_features

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) or regression values (n, 1) for rows X (n, n_features)."""
        return apply_link(self.raw_scores(X), self.header.link)

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (n, K) before the link, evaluated ``row_chunk`` rows at a time."""
        chunk = self.row_chunk
        if X.shape[0] <= chunk:
            return self.raw(X)
        return np.concatenate([self.raw(X[i : i + chunk]) for i in range(0, X.shape[0], chunk)])


class ObliviousEnsemble(_Ensemble):
    """CatBoost symmetric trees: arrays shaped (trees, depth) and (trees, 2**depth, outputs)."""

    def __init__(self, header: Header, arrays: dict[str, np.ndarray]) -> None:
        super().__init__(header)
        self.features = arrays["features"]
        self.borders = arrays["borders"]
        self.nan_goes_right = arrays["nan_goes_right"]
        self.is_equal = arrays["is_equal"]
        self.equal_code = arrays["equal_code"]
        self.scale = float(arrays["scale"])
        self.bias = arrays["bias"]
        trees, width, outputs = arrays["leaf_values"].shape
        # one contiguous leaf table per output (K, trees * leaves): gathering from it along axis 1 is
        # 2-4x faster than gathering (trees, K) rows for 10 classes, or a take per class
        self._output_leaves = np.ascontiguousarray(arrays["leaf_values"].reshape(trees * width, -1).T)
        self._tree_offset = (np.arange(trees) * width).astype(np.intp)
        self._has_bias = bool(np.any(self.bias != 0))
        self._ctrs = _Ctrs(arrays) if arrays["ctr_projection"].size else None
        self._splits = _Splits(self.features, self.borders, self.nan_goes_right, self.is_equal,
                               self.equal_code)
        # rows per evaluation: the (outputs, rows, trees) gather stays in cache (measured: 256 rows
        # for 1 output and 500 trees, about 50 for 10 outputs)
        self.row_chunk = int(np.clip(2**18 // max(trees * outputs, 1), 16, 256))

    def leaf_index(self, X: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree: (n, trees)."""
        if self._ctrs is not None:  # a CTR's value is one more column of the row
            X = np.concatenate([X, self._ctrs.values(X)], axis=1)
        return np.ascontiguousarray(self._splits.leaf_index(X).T)

    def raw(self, X: np.ndarray) -> np.ndarray:
        index = self.leaf_index(X).astype(np.intp)
        index += self._tree_offset
        # every output's leaves in one gather: (K, n, T), summed over the trees as (K * n, T) rows, so
        # that each row's sum is the same pairwise sum however many rows come with it
        outputs, n = self._output_leaves.shape[0], X.shape[0]
        gathered = np.take(self._output_leaves, index, axis=1).reshape(outputs * n, index.shape[1])
        # C order: the link's sums over a row's classes must not depend on the layout either
        total = np.ascontiguousarray(gathered.sum(axis=1).reshape(outputs, n).T)
        if self.scale != 1.0:  # a scale of 1 and a bias of 0 change nothing: skipped, exactly
            total *= self.scale
        if self._has_bias:
            total += self.bias
        return total


class _Splits:
    """The distinct tests of an oblivious ensemble, evaluated once per row, and each tree's leaf index.

    A CatBoost model of T trees of depth D makes T * D tests, but its trees share borders: the
    demo models make 600-900 distinct tests out of 3,000. Each distinct test is made once, on the
    rows transposed (features, n) so that every step reads and writes whole contiguous rows; a
    tree's leaf index is then its levels' test bits shifted into place, as uint16 (D <= 16).
    Measured against testing every (tree, level) of every row: 3x faster on 1000 rows, the same on one.
    """

    def __init__(self, features, borders, nan_goes_right, is_equal, equal_code) -> None:
        trees, depth = features.shape
        # a test is its column, and either float32(x) > border with where NaN goes, or x == code;
        # keyed by their bits (equality tests sorted last), level by level
        key = np.stack([
            is_equal.astype(np.int64),
            features.astype(np.int64),
            np.where(is_equal, 0, borders.view(np.int32)).astype(np.int64),
            (nan_goes_right & ~is_equal).astype(np.int64),
            np.where(is_equal, equal_code, 0.0).view(np.int64),
        ], axis=-1).transpose(1, 0, 2).reshape(depth * trees, 5)
        tests, inverse = np.unique(key, axis=0, return_inverse=True)
        self.level_test = inverse.reshape(depth, trees).astype(np.intp)  # (D, T): the test of each level
        above = tests[:, 0] == 0
        self.column = tests[above, 1].astype(np.intp)
        self.border = tests[above, 2].astype(np.int32).view(np.float32)[:, None]
        self.nan_is_above = tests[above, 3].astype(bool)[:, None]
        self.equal_column = tests[~above, 1].astype(np.intp)
        self.code = tests[~above, 4].view(np.float64)[:, None]
        self.shift = np.arange(depth, dtype=np.uint16)[:, None, None]

    def leaf_index(self, X: np.ndarray) -> np.ndarray:
        """Each tree's leaf for each row: (T, n) uint16."""
        columns = X.T
        values = np.take(columns.astype(np.float32), self.column, axis=0)  # CatBoost compares in float32
        bits = values > self.border
        if np.isnan(columns).any():
            bits |= np.isnan(values) & self.nan_is_above
        if self.equal_column.size:  # a missing category is CatBoost's own category, coded -1 in the schema
            codes = np.nan_to_num(np.take(columns, self.equal_column, axis=0), nan=MISSING_CATEGORY_CODE)
            bits = np.concatenate([bits, codes == self.code])
        # level l's test is bit l of the leaf index (trees of one leaf, D = 0: OR of nothing, leaf 0)
        levels = np.take(bits.view(np.uint8).astype(np.uint16), self.level_test, axis=0)  # (D, T, n)
        levels <<= self.shift
        return np.bitwise_or.reduce(levels)  # over the levels


class _Ctrs:
    """CatBoost's target statistics of a row, as ``serving.model_format`` describes them.

    Exact to CatBoost 1.2 (static_ctr_provider.cpp, model/hash.h): each combination is hashed
    element by element as h = MAGIC * (h + MAGIC * v) modulo 2**64, v being a categorical's
    hash (sign-extended to 64 bits), or 0/1 for a float split or a one-hot test; the hash is
    looked up in the CTR's table; a hash not there takes the CTR's default. Its values are
    float32, as CatBoost computes them.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.offset = arrays["cat_hash_offset"]
        self.hashes = arrays["cat_hashes"]
        self.elements = list(zip(*(arrays[name].tolist() for name in (
            "element_projection", "element_kind", "element_column", "element_border", "element_nan_true",
            "element_code")), strict=True))
        self.projections = int(arrays["element_projection"].max()) + 1
        self.ctr_projection = arrays["ctr_projection"]
        self.tables = [(arrays["ctr_keys"][a:b], arrays["ctr_values"][a:b])
                       for a, b in zip(arrays["ctr_offset"][:-1].tolist(), arrays["ctr_offset"][1:].tolist(),
                                       strict=True)]
        self.default = arrays["ctr_default"]

    def values(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        hashes = np.zeros((n, self.projections), np.uint64)
        magic = np.uint64(MAGIC)
        for projection, kind, column, border, nan_true, code in self.elements:
            x = X[:, column]
            if kind == ELEMENT_CATEGORY:  # code k of column j → its hash; missing → the last one
                start, end = self.offset[column], self.offset[column + 1]
                value = self.hashes[start + np.where(np.isnan(x), end - start - 1, x).astype(np.intp)]
            elif kind == ELEMENT_FLOAT_SPLIT:
                x32 = x.astype(np.float32)
                value = np.where(np.isnan(x32), nan_true, x32 > np.float32(border)).astype(np.uint64)
            else:  # a one-hot test of the category code
                value = (np.nan_to_num(x, nan=MISSING_CATEGORY_CODE) == code).astype(np.uint64)
            with np.errstate(over="ignore"):  # the hash wraps modulo 2**64, as CatBoost's ui64 does
                hashes[:, projection] = magic * (hashes[:, projection] + magic * value)
        out = np.empty((n, len(self.tables)), np.float32)
        for r, (keys, values) in enumerate(self.tables):
            h = hashes[:, self.ctr_projection[r]]
            at = np.minimum(np.searchsorted(keys, h), max(len(keys) - 1, 0))
            found = keys[at] == h if len(keys) else np.zeros(n, bool)
            out[:, r] = np.where(found, values[at] if len(keys) else 0, self.default[r])
        return out


class NodeEnsemble(_Ensemble):
    """LightGBM trees flattened into one node table; ``roots[t]`` is tree t's first node."""

    def __init__(self, header: Header, arrays: dict[str, np.ndarray]) -> None:
        super().__init__(header)
        self.roots = arrays["roots"]
        self.feature = arrays["feature"]
        self.threshold = arrays["threshold"]
        self.default_left = arrays["default_left"]
        self.missing_type = arrays["missing_type"]
        self.is_categorical = arrays["is_categorical"]
        self.category_index = arrays["category_index"]
        self.category_sets = arrays["category_sets"]
        self.value = arrays["value"]
        self.max_depth = int(arrays["max_depth"])
        # children[node] = (right, left): one gather per level picks the next node
        children = np.stack([arrays["right"], arrays["left"]], axis=1).astype(np.intp)
        self._children_flat = children.ravel()
        self._is_leaf = arrays["left"] == np.arange(arrays["left"].shape[0])
        needs_care = (self.missing_type != MISSING_NONE) | self.is_categorical
        self._simple = not bool(needs_care.any())

    def raw(self, X: np.ndarray) -> np.ndarray:
        n, n_features = X.shape
        trees = self.roots.shape[0]
        flat_x = np.ascontiguousarray(X).ravel()
        # LightGBM reads a row as its non-zero values: |x| <= kZeroThreshold is dropped, i.e. it is 0.0
        flat_x = np.where(np.abs(flat_x) <= K_ZERO_THRESHOLD, 0.0, flat_x)
        # With no missing values in X and no node that routes missing values or
        # categories, LightGBM's decision is just x <= threshold. Gathers use
        # np.take on flat arrays: several times faster than 2-D fancy indexing.
        simple = self._simple and not np.isnan(flat_x).any()
        # Each (row, tree) pair walks its tree; p = row * trees + tree. Leaf-wise trees are lopsided
        # (max_depth is often 3x a typical leaf's depth), so pairs that have reached their leaf are
        # dropped once they are a quarter of those walking: 2-3x less work than walking them all.
        leaf = np.tile(self.roots.astype(np.intp), n)
        walking = np.flatnonzero(~np.take(self._is_leaf, leaf))
        node = leaf[walking]
        base = (walking // trees) * n_features  # where the pair's row starts in flat_x
        for _ in range(self.max_depth):
            if not node.size:
                break
            fval = np.take(flat_x, base + np.take(self.feature, node))
            if simple:
                go_left = fval <= np.take(self.threshold, node)
            else:
                go_left = self._numerical(fval, node)
                cat = self.is_categorical[node]
                if cat.any():
                    go_left = np.where(cat, self._categorical(fval, node), go_left)
            node = np.take(self._children_flat, node * 2 + go_left)
            arrived = np.take(self._is_leaf, node)  # a leaf's children are itself: it stays there
            # (after max_depth steps every pair has arrived: model_format checks it, so all are recorded)
            if np.count_nonzero(arrived) * 4 >= node.size:
                leaf[walking[arrived]] = node[arrived]
                still = ~arrived
                node, base, walking = node[still], base[still], walking[still]
        leaf_values = np.take(self.value, leaf)  # tree t adds to output t % K
        outputs = self.header.n_outputs
        return leaf_values.reshape(n, trees // outputs, outputs).sum(axis=1)

    def goes_left(self, X: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Whether each row goes left at each of the split ``nodes``: (n, len(nodes)), by the rules above."""
        X = np.where(np.abs(X) <= K_ZERO_THRESHOLD, 0.0, X)
        fval = X[:, self.feature[nodes]]
        node = np.broadcast_to(nodes, fval.shape)
        left = self._numerical(fval, node)
        cat = self.is_categorical[nodes]
        if cat.any():
            left[:, cat] = self._categorical(fval[:, cat], node[:, cat])
        return left

    def _numerical(self, fval: np.ndarray, node: np.ndarray) -> np.ndarray:
        # LightGBM's NumericalDecision: NaN is 0 unless the node routes NaN itself;
        # missing values (zero or NaN, per node) follow default_left. Values this
        # small (|x| <= kZeroThreshold) were made 0.0 in raw(), so "zero" is == 0.
        missing_type = self.missing_type[node]
        nan = np.isnan(fval)
        fval = np.where(nan & (missing_type != MISSING_NAN), 0.0, fval)
        is_missing = ((missing_type == MISSING_ZERO) & (fval == 0.0)) | ((missing_type == MISSING_NAN) & nan)
        return np.where(is_missing, self.default_left[node], fval <= self.threshold[node])

    def _categorical(self, fval: np.ndarray, node: np.ndarray) -> np.ndarray:
        # LightGBM's CategoricalDecision: NaN and negative codes go right;
        # a code goes left when it is in the node's set.
        valid = ~np.isnan(fval) & (fval >= 0) & (fval < self.category_sets.shape[1])
        codes = np.where(valid, fval, 0).astype(np.int64)
        return valid & self.category_sets[self.category_index[node], codes]


class WeightedEnsemble(_Ensemble):
    """Members of either layout: raw = sum of weight * member's raw scores, in the members' order."""

    def __init__(self, header: Header, arrays: dict[str, np.ndarray]) -> None:
        super().__init__(header)
        self.weights = arrays["weights"].tolist()
        self.member_arrays = model_format.members(arrays)
        self.members = [_single(h, a) for h, a in zip(header.members, self.member_arrays, strict=True)]

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        total = self.weights[0] * self.members[0].raw_scores(X)
        for weight, member in zip(self.weights[1:], self.members[1:], strict=True):
            total += weight * member.raw_scores(X)
        return total

    def raw(self, X: np.ndarray) -> np.ndarray:
        return self.raw_scores(X)


Ensemble = ObliviousEnsemble | NodeEnsemble | WeightedEnsemble


def _single(header: Header, arrays: dict[str, np.ndarray]) -> ObliviousEnsemble | NodeEnsemble:
    if header.layout == "oblivious":
        return ObliviousEnsemble(header, arrays)
    return NodeEnsemble(header, arrays)


def from_arrays(arrays: dict[str, np.ndarray], checked: Header | None = None) -> Ensemble:
    """An evaluator for the arrays of a ``model.npz``; FormatError when they break the declaration.

    ``checked``: the header ``model_format.check`` gave for these arrays (a ``Bundle``'s), so that a
    cold start checks them once: on a 45,000-node model the check is most of the load."""
    header = model_format.check(arrays) if checked is None else checked
    if header.layout == model_format.WEIGHTED:
        return WeightedEnsemble(header, arrays)
    return _single(header, arrays)
