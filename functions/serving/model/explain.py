"""Why a model answered: exact SHAP contributions per row, from the served arrays alone.

Both libraries explain a prediction with path-dependent TreeSHAP (Lundberg et
al. 2018, Algorithm 2): CatBoost's ``get_feature_importance(type="ShapValues")``
(its default "Regular" calculation) and LightGBM's ``predict(pred_contrib=True)``.
This module computes the same numbers in the model's raw score space (log-odds for
binary, one score per class for multiclass, the value for regression) from the
arrays ``serving.model_format`` declares; the publish step checks them against the
native libraries on held-out rows (≤ 1e-9) and records the figure in the manifest.

Why our own code and not the ``shap`` package: shap pulls in scipy, numba and
sklearn (hundreds of MB, seconds of import) and needs the native model objects,
which the function never loads; its own TreeExplainer also differs from CatBoost's
in the details below.

The closed form used (equal to TreeSHAP's EXTEND/UNWIND recurrences). For a leaf
L let U be the distinct features split on along its path, u = |U|, and for each
m in U:
* z_m(L): the product of cover(child on the path) / cover(node) over the path's
  nodes that split on m; it does not depend on the row;
* o_m(x, L) = 1 when row x goes L's way at every one of those nodes, else 0.
With A = {m: o_m = 1}, B = U \\ A, P_B = prod_{m in B} z_m and
R(T) = sum_{S ⊆ T} |S|!(u-1-|S|)!/u! · prod_{m in T\\S} z_m, the leaf adds
-P_B·R(A)·v(L) to every feature in B and (1 - z_i)·P_B·R(A \\ {i})·v(L) to every i
in A. R is tabulated per leaf over its 2**u subsets, so a (row, leaf) pair costs
O(u). Paths with more than ``TABLE_MAX_U`` distinct features (possible in deep
LightGBM trees) use the libraries' own recurrence instead.

The libraries' rules reproduced:
* CatBoost: covers are the model's leaf weights (the training rows per leaf); the
  recursion starts at the tree's *last* level; a branch whose subtree weight is
  zero is skipped; for MultiClass each tree's class-averaged mean is subtracted
  from its leaves (it cancels in exact arithmetic, and is kept to match); a
  feature split on several times in a tree is one path element. A split on a
  target statistic (CTR) belongs to the *set of categoricals* of its combination
  (float splits and one-hot tests in the combination are not credited); a set
  shares one element with that categorical's own one-hot splits, and its value is
  divided equally among its categoricals at the end. The expected value is the sum
  of the trees' leaf-weighted means plus the bias.
* LightGBM: covers are the nodes' training counts; the row's side at a node is the
  prediction's own routing (``serving.ensemble``); the expected value is the sum of
  the trees' count-weighted means.
Only numpy: serving imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import numpy as np

from serving.model.evaluator import Ensemble, NodeEnsemble, ObliviousEnsemble, WeightedEnsemble
from serving.model.format import ELEMENT_CATEGORY

TABLE_MAX_U = 12  # leaves with more distinct features on their path use the recurrence (2**u tables)
CHUNK_ELEMENTS = 1 << 22  # bounds the (trees, leaves, leaves) work arrays of a CatBoost precomputation


def explainer(model: Ensemble, arrays: dict[str, np.ndarray]) -> CatBoostShap | LightGBMShap | WeightedShap:
    """The SHAP calculator of a model: ``contributions(X)`` → (n, outputs, n_features + 1)."""
    if isinstance(model, WeightedEnsemble):
        members = zip(model.members, model.member_arrays, strict=True)
        return WeightedShap([explainer(m, a) for m, a in members], model.weights)
    if isinstance(model, ObliviousEnsemble):
        return _prepare_catboost(model, arrays)
    if isinstance(model, NodeEnsemble):
        return _prepare_lightgbm(model, arrays)
    raise TypeError(f"no explanations for {type(model).__name__}")


@dataclass
class WeightedShap:
    """An ensemble's SHAP values: Shapley values are linear in the model, so the weighted sum of its
    members' (the expected value likewise), in the members' order as the raw scores are summed."""

    members: list
    weights: list[float]

    def contributions(self, X: np.ndarray) -> np.ndarray:
        total = self.weights[0] * self.members[0].contributions(X)
        for weight, member in zip(self.weights[1:], self.members[1:], strict=True):
            total += weight * member.contributions(X)
        return total


# --------------------------------------------------------------------------- the shared algebra
def _shapley_weights(u: int) -> np.ndarray:
    """c[k] = k!(u-1-k)!/u! for k < u, and c[u] = 0."""
    c = np.zeros(u + 1)
    for k in range(u):
        c[k] = factorial(k) * factorial(u - 1 - k) / factorial(u)
    return c


def _r_table(z: np.ndarray) -> np.ndarray:
    """R(T) for every subset T of the u slots (bit masks) → (..., 2**u).

    R(T) = sum_k c[k] · [t^k] prod_{m in T} (z_m + t): the polynomial is built subset by subset.
    """
    u = z.shape[-1]
    poly = np.zeros(z.shape[:-1] + (2**u, u + 1))
    poly[..., 0, 0] = 1.0
    for m in range(u):
        low = poly[..., : 2**m, :]
        new = low * z[..., m, None, None]
        new[..., 1:] += low[..., :-1]
        poly[..., 2**m : 2 ** (m + 1), :] = new
    return poly @ _shapley_weights(u)


def _coefficients(A: np.ndarray, z_slots: np.ndarray, r_flat: np.ndarray, r_base: np.ndarray,
                  one_minus_z: np.ndarray, scale=None) -> np.ndarray:
    """(o_i - z_i)·W_i (times ``scale``) for every slot i → (u,) + A.shape.

    A: bit s set when the row follows the leaf at slot s; r_flat[r_base + T] is the leaf's R(T).
    i in B → -P_B·R(A); i in A → (1 - z_i)·P_B·R(A \\ {i}); A \\ {i} = A for i in B, so one
    gather serves both.
    """
    u = z_slots.shape[0]
    base = r_base + A
    bits = [A & (1 << s) for s in range(u)]
    follows = [b != 0 for b in bits]
    p_b = np.ones(A.shape) if scale is None else np.broadcast_to(scale, A.shape)
    for s in range(u):
        p_b = p_b * np.where(follows[s], 1.0, z_slots[s])
    out = np.empty((u,) + A.shape)
    for s in range(u):
        out[s] = (p_b * np.take(r_flat, base - bits[s])) * np.where(follows[s], one_minus_z[s], -1.0)
    return out


def _extend(z: np.ndarray, o: np.ndarray) -> np.ndarray:
    """TreeSHAP's path weights after extending by the root and the u elements (Tree::ExtendPath)."""
    u = z.shape[-1]
    pw = np.zeros(z.shape[:-1] + (u + 1,))
    pw[..., 0] = 1.0
    for m in range(1, u + 1):
        old = pw[..., :m].copy()
        i = np.arange(m, dtype=np.float64)
        pw[..., :m] = z[..., m - 1 : m] * old * (m - i) / (m + 1)
        pw[..., 1 : m + 1] += o[..., m - 1 : m] * old * (i + 1) / (m + 1)
    return pw


def _unwound_sums(pw: np.ndarray, z: np.ndarray, o: np.ndarray) -> np.ndarray:
    """LightGBM's Tree::UnwoundPathSum for every element at once → (..., u)."""
    u = z.shape[-1]
    hot = o != 0
    o_safe = np.where(hot, o, 1.0)
    following = np.broadcast_to(pw[..., u : u + 1], z.shape).copy()
    total = np.zeros(z.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(u - 1, -1, -1):
            pwj = pw[..., j : j + 1]
            tmp = following * (u + 1) / ((j + 1) * o_safe)
            fraction = (u - j) / (u + 1)
            total += np.where(hot, tmp, (pwj / z) / fraction)
            following = pwj - tmp * z * fraction
    return total


def _fuzzy_zero(w: np.ndarray) -> np.ndarray:
    """CatBoost's FuzzyEquals(1 + w, 1 + 0.0) (util/generic/ymath.h: relative 1e-13)."""
    a = 1.0 + w
    return np.abs(a - 1.0) <= 1e-13 * np.minimum(np.abs(a), 1.0)


# --------------------------------------------------------------------------- CatBoost
@dataclass
class CatBoostShap:
    """SHAP of every (tree, leaf) of an oblivious ensemble, precomputed: a request is a gather.

    phi[t, leaf, s, k]: what tree t adds to raw output k, for a row in ``leaf``, to the
    feature class in slot s of that tree (``slot_class[t, s]``; the spare class for unused slots).
    """

    model: ObliviousEnsemble
    phi: np.ndarray  # (T, L, S, K)
    slot_class: np.ndarray  # (T, S)
    unpack: np.ndarray  # (classes + 1, n_features): a class's value shared among its columns
    expected: np.ndarray  # (K,)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        leaf = self.model.leaf_index(X)  # (n, T)
        n, trees = leaf.shape
        _, width, slots, outputs = self.phi.shape
        classes = self.unpack.shape[0]
        gathered = self.phi.reshape(trees * width, slots, outputs)[leaf + np.arange(trees) * width]
        target = (np.arange(n)[:, None, None] * classes + self.slot_class[None]).ravel()
        out = np.empty((n, outputs, self.unpack.shape[1] + 1))
        for k in range(outputs):
            by_class = np.bincount(target, weights=gathered[..., k].ravel(), minlength=n * classes)
            out[:, k, :-1] = by_class.reshape(n, classes) @ self.unpack
        out[:, :, -1] = self.expected
        return out


def _feature_classes(arrays: dict[str, np.ndarray], n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """CatBoost's MapBinFeaturesToClasses: the class of each split column, and what each class credits.

    A model column is its own class; a CTR column's class is the sorted set of the categoricals
    its combination hashes (one class per distinct set, shared with a lone categorical's one-hot
    splits). Returns class_of (n_features + R,) and unpack (classes + 1, n_features), whose last
    row is a spare class for a tree's unused slots.
    """
    keys: list[tuple[int, ...]] = [(j,) for j in range(n_features)]
    kinds, columns, owner = arrays["element_kind"], arrays["element_column"], arrays["element_projection"]
    for projection in arrays["ctr_projection"].tolist():
        cats = columns[(owner == projection) & (kinds == ELEMENT_CATEGORY)]
        keys.append(tuple(sorted(set(cats.tolist()))))
    distinct = sorted(set(keys))
    index = {key: i for i, key in enumerate(distinct)}
    unpack = np.zeros((len(distinct) + 1, n_features))
    for key, i in index.items():
        unpack[i, list(key)] = 1.0 / len(key)
    return np.array([index[key] for key in keys], np.intp), unpack


def _tree_depths(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The real depth of each tree: ``training.export`` pads shallower trees with trailing levels
    that never fire (border +inf, not one-hot, a missing value not above)."""
    pad = np.isposinf(arrays["borders"]) & ~arrays["is_equal"] & ~arrays["nan_goes_right"]
    depth = np.full(pad.shape[0], pad.shape[1])
    for level in range(pad.shape[1] - 1, -1, -1):
        depth[pad[:, level] & (depth == level + 1)] = level
    return depth


def _prepare_catboost(model: ObliviousEnsemble, arrays: dict[str, np.ndarray]) -> CatBoostShap:
    n_features = model.n_features
    class_of, unpack = _feature_classes(arrays, n_features)
    features = class_of[arrays["features"]]  # (T, D): the class each level's split belongs to
    values = arrays["leaf_values"] * float(arrays["scale"])  # contributions add up to the served score
    weights = arrays["leaf_weights"]
    depths = _tree_depths(arrays)
    trees, D = features.shape
    outputs = values.shape[2]
    center = model.header.task == "multiclass"  # loss MultiClass: CatBoost's AverageApproxByTree

    paths = []  # each tree's distinct classes, in CatBoost's recursion order (the root is the last level)
    for t in range(trees):
        seen: list[int] = []
        for level in range(depths[t] - 1, -1, -1):
            if int(features[t, level]) not in seen:
                seen.append(int(features[t, level]))
        paths.append(seen)
    slots = max(1, max(len(p) for p in paths))
    spare = unpack.shape[0] - 1
    phi = np.zeros((trees, 2**D, slots, outputs))
    slot_class = np.full((trees, slots), spare, np.intp)
    means = np.zeros((trees, outputs))

    groups: dict[tuple[int, int], list[int]] = {}
    for t in range(trees):
        groups.setdefault((int(depths[t]), len(paths[t])), []).append(t)
    for (d, u), members in groups.items():
        if d == 0:
            means[members] = values[members, 0]
            continue
        n_leaf = 2**d
        step = max(1, CHUNK_ELEMENTS // (n_leaf * n_leaf * (u + 1) * 2))
        for start in range(0, len(members), step):
            tt = np.asarray(members[start : start + step])
            phi[tt, :n_leaf, :u], means[tt] = _catboost_group(
                tt, d, u, paths, features, values[tt, :n_leaf], weights[tt, :n_leaf], center)
            for t in tt:
                slot_class[t, :u] = paths[t]
    # CatBoost adds the tree means one by one, then the bias
    expected = np.zeros(outputs)
    for t in range(trees):
        expected += means[t]
    return CatBoostShap(model, phi, slot_class, unpack, expected + arrays["bias"])


def _catboost_group(tt, d, u, paths, features, vals, leaf_weights, center):
    """phi (G, leaves, u, K) and the trees' means (G, K) of G trees of depth d with u distinct classes."""
    G, n_leaf, K = vals.shape
    g_idx = np.arange(G)
    leaves = np.arange(n_leaf)
    # subtree weights: the node at recursion depth k is named by the top k bits of the leaf index
    W = [None] * (d + 1)
    W[d] = leaf_weights
    for k in range(d - 1, -1, -1):
        W[k] = W[k + 1][:, 0::2] + W[k + 1][:, 1::2]
    mean = np.zeros((G, K))
    for leaf in range(n_leaf):  # CalcMeanValueForTree, in leaf order
        mean += vals[:, leaf, :] * W[d][:, leaf : leaf + 1]
    mean = mean / W[0][:, 0:1]
    average = mean.sum(axis=1) / K if center else np.zeros(G)

    slot_at = np.zeros((G, d), np.intp)  # the slot of the split at recursion depth k
    for g, t in enumerate(tt):
        for k in range(d):
            slot_at[g, k] = paths[t].index(int(features[t, d - 1 - k]))
    z = np.ones((G, n_leaf, u))
    keep = np.ones((G, n_leaf), bool)  # CatBoost skips branches of zero weight
    disagree = np.zeros((G, n_leaf, n_leaf), np.int64)  # [g, row's leaf, leaf]: slots where they differ
    for k in range(d):
        level = d - 1 - k
        child = W[k + 1][:, leaves >> (d - k - 1)]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = child / W[k][:, leaves >> (d - k)]
        keep &= ~_fuzzy_zero(child)
        s = slot_at[:, k]
        z[g_idx, :, s] = z[g_idx, :, s] * ratio
        bit = (leaves >> level) & 1
        differ = (bit[:, None] != bit[None, :]).astype(np.int64)
        disagree |= differ[None] << s[:, None, None]
    z = np.where(keep[:, :, None], z, 1.0)
    h = np.where(keep[:, :, None], vals - average[:, None, None], 0.0)  # (G, L, K)
    A = ((1 << u) - 1) & ~disagree
    r_flat = _r_table(z).ravel()
    r_base = ((g_idx[:, None] * n_leaf + leaves[None, :]) * 2**u)[:, None, :]
    z_slots = z.transpose(2, 0, 1)[:, :, None, :]
    coef = _coefficients(A, z_slots, r_flat, r_base, 1.0 - z_slots)  # (u, G, row's leaf, leaf)
    return np.einsum("sgxl,glk->gxsk", coef, h), mean


# --------------------------------------------------------------------------- LightGBM
@dataclass
class _Leaves:
    """Every leaf whose path has u distinct features."""

    u: int
    path_node: np.ndarray  # (P, G) the path's split nodes, as positions among the split nodes
    path_left: np.ndarray  # (P, G) the path goes left there
    path_bit: np.ndarray  # (P, G) 1 << the slot of the node's feature; 0 for padding
    z: np.ndarray  # (G, u)
    target: np.ndarray  # (G, u) output * (n_features + 1) + feature
    value: np.ndarray  # (G,)
    r_base: np.ndarray | None  # (G,) where the leaf's R table starts; None: use the recurrence

    def __post_init__(self) -> None:
        self.z_slots = np.ascontiguousarray(self.z.T)  # (u, G), as _coefficients reads them
        self.one_minus_z = 1.0 - self.z_slots


@dataclass
class LightGBMShap:
    model: NodeEnsemble
    splits: np.ndarray  # the split nodes
    groups: list[_Leaves]
    r_flat: np.ndarray
    expected: np.ndarray  # (K,)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        outputs, F = self.model.header.n_outputs, self.model.n_features
        goes_left = np.ascontiguousarray(self.model.goes_left(X, self.splits).T)  # (splits, n)
        total = np.zeros(n * outputs * (F + 1))
        row_base = (np.arange(n) * (outputs * (F + 1)))[:, None]
        for group in self.groups:
            u = group.u
            took = np.take(goes_left, group.path_node, axis=0)  # (P, G, n)
            off_path = np.where(took != group.path_left[:, :, None], group.path_bit[:, :, None], 0)
            A = ((1 << u) - 1) & ~np.bitwise_or.reduce(off_path, axis=0).T  # (n, G)
            if group.r_base is not None:
                contribution = _coefficients(A, group.z_slots, self.r_flat, group.r_base, group.one_minus_z,
                                             group.value)
                target = row_base[None] + group.target.T[:, None, :]  # (u, n, G)
            else:
                o = ((A[..., None] >> np.arange(u)) & 1).astype(np.float64)
                z = np.broadcast_to(group.z, o.shape)
                contribution = _unwound_sums(_extend(z, o), z, o) * (o - z) * group.value[None, :, None]
                target = row_base[:, :, None] + group.target[None]
            total += np.bincount(target.ravel(), weights=contribution.ravel(), minlength=total.size)
        out = total.reshape(n, outputs, F + 1)
        out[:, :, F] += self.expected
        return out


def _prepare_lightgbm(model: NodeEnsemble, arrays: dict[str, np.ndarray]) -> LightGBMShap:
    feature, left, right = arrays["feature"], arrays["left"], arrays["right"]
    value, count = arrays["value"], arrays["count"]
    outputs, F = model.header.n_outputs, model.n_features
    is_leaf = left == np.arange(len(left))
    splits = np.flatnonzero(~is_leaf)
    position = np.zeros(len(left), np.intp)
    position[splits] = np.arange(len(splits))
    expected = np.zeros(outputs)
    by_u: dict[int, list] = {}
    for t, root in enumerate(arrays["roots"].tolist()):
        k = t % outputs
        if is_leaf[root]:  # Tree::ExpectedValue of a one-leaf tree
            expected[k] += value[root]
            continue
        mean = 0.0
        stack = [(root, ())]
        while stack:
            node, path = stack.pop()
            if not is_leaf[node]:
                stack.append((int(right[node]), path + ((node, False, int(right[node])),)))
                stack.append((int(left[node]), path + ((node, True, int(left[node])),)))
                continue
            mean += (count[node] / count[root]) * value[node]
            order: list[int] = []
            zs: dict[int, float] = {}
            for parent, _went_left, child in path:
                f = int(feature[parent])
                ratio = count[child] / count[parent]
                if f in zs:  # a feature met again: one element, its fractions multiplied (UnwindPath)
                    zs[f] *= ratio
                    order.remove(f)
                else:
                    zs[f] = ratio
                order.append(f)
            by_u.setdefault(len(order), []).append((path, order, zs, value[node], k))
        expected[k] += mean

    groups, tables, size = [], [], 0
    for u, leaves in sorted(by_u.items()):
        G, P = len(leaves), max(len(leaf[0]) for leaf in leaves)
        path_node = np.zeros((P, G), np.intp)
        path_left = np.zeros((P, G), bool)
        path_bit = np.zeros((P, G), np.int64)
        z = np.zeros((G, u))
        target = np.zeros((G, u), np.intp)
        values = np.zeros(G)
        for g, (path, order, zs, v, k) in enumerate(leaves):
            for p, (parent, went_left, _child) in enumerate(path):
                path_node[p, g] = position[parent]
                path_left[p, g] = went_left
                path_bit[p, g] = 1 << order.index(int(feature[parent]))
            z[g] = [zs[f] for f in order]
            target[g] = np.asarray(order) + k * (F + 1)
            values[g] = v
        r_base = None
        if u <= TABLE_MAX_U:
            tables.append(_r_table(z).ravel())
            r_base = size + np.arange(G, dtype=np.int64) * 2**u
            size += G * 2**u
        groups.append(_Leaves(u, path_node, path_left, path_bit, z, target, values, r_base))
    r_flat = np.concatenate(tables) if tables else np.zeros(0)
    return LightGBMShap(model, splits, groups, r_flat, expected)
