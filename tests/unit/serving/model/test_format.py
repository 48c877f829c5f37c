"""model.npz: one declaration; arrays that break it are refused, naming the array and the fault."""

import numpy as np
import pytest
from serving.model import evaluator
from serving.model import format as model_format
from serving.model.format import FormatError

from tests.models import case


def oblivious():
    return dict(case("bc-catboost").arrays)


def nodes():
    return dict(case("penguins-lightgbm").arrays)


def refused(arrays, words, exact=False):
    with pytest.raises(FormatError) as caught:
        model_format.check(arrays)
    if exact:
        assert str(caught.value) == words
    assert words in str(caught.value), str(caught.value)
    return str(caught.value)


def test_exported_models_satisfy_the_declaration_and_say_what_they_are():
    header = model_format.check(oblivious())
    assert header == model_format.Header("oblivious", "binary", "sigmoid", 30, 1)
    header = model_format.check(nodes())
    assert header == model_format.Header("nodes", "multiclass", "softmax", 7, 3)
    assert model_format.check(dict(case("digits-catboost").arrays)).n_outputs == 10


def test_pack_writes_the_declared_dtypes_and_the_header():
    arrays = oblivious()
    layout = model_format.LAYOUTS["oblivious"]
    given = {k: arrays[k].astype(np.float64) if k != "features" else arrays[k].astype(np.int64)
             for k in layout}
    packed = model_format.pack("oblivious", "binary", 30, 1, **given)
    for name, spec in layout.items():
        assert packed[name].dtype == np.dtype(spec.dtype), name
    assert str(packed["link"]) == "sigmoid" and str(packed["task"]) == "binary"
    assert packed["n_features"].dtype == np.int32 and int(packed["n_features"]) == 30
    assert packed["n_outputs"].dtype == np.int32 and int(packed["n_outputs"]) == 1
    assert set(packed) == set(model_format.HEADER) | set(layout)


def test_pack_refuses_unknown_layouts_unknown_and_missing_arrays():
    arrays = {k: v for k, v in oblivious().items() if k in model_format.LAYOUTS["oblivious"]}
    with pytest.raises(FormatError, match="layout 'forest'"):
        model_format.pack("forest", "binary", 30, 1, **arrays)
    with pytest.raises(FormatError, match="extra: not part of the oblivious layout"):
        model_format.pack("oblivious", "binary", 30, 1, extra=np.zeros(1), **arrays)
    del arrays["borders"]
    with pytest.raises(FormatError, match="borders: missing from the oblivious layout"):
        model_format.pack("oblivious", "binary", 30, 1, **arrays)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"layout": np.array("forest")}, "layout: 'forest' is not one of oblivious, nodes, weighted"),
        ({"task": np.array("ranking")}, "task: 'ranking' is not one of binary, multiclass, regression"),
        ({"link": np.array("softmax")}, "link: a binary model uses sigmoid, not 'softmax'"),
        ({"n_features": np.array(0, np.int32)}, "n_features: 0, expected at least 1"),
        ({"n_outputs": np.array(2, np.int32)}, "n_outputs: 2, a binary model has 1"),
        ({"n_features": np.array(30, np.int64)}, "n_features: dtype int64, expected int32"),
        ({"layout": np.array(b"oblivious")}, "layout: dtype |S9, expected str"),
        ({"borders": case("bc-catboost").arrays["borders"].astype(np.float64)},
         "borders: dtype float64, expected float32"),
        ({"bias": np.zeros((1, 1))}, "bias: 2 dimensions (1, 1), expected 1 (K)"),
        ({"borders": np.zeros((40, 4, 1), np.float32)}, "borders: 3 dimensions (40, 4, 1), expected 2 (T, D)"),
        ({"scale": np.zeros(1)}, "scale: 1 dimensions (1,), expected 0 (a scalar)"),
        ({"bias": np.zeros(2)}, "bias: shape (2,) disagrees with K = 1 (K)"),
        ({"leaf_values": np.zeros((40, 16, 2))}, "leaf_values: shape (40, 16, 2) disagrees with K = 1 (T, L, K)"),
        ({"extra": np.zeros(3)}, "extra: not part of the oblivious layout"),
        ({"scale": np.float64(2.0)}, "scale: expected a numpy array, got float64"),
        ({"scale": np.array(np.inf)}, "scale: not a finite number"),
        ({"bias": np.array([np.nan])}, "bias: holds NaN or infinite values"),
    ],
)
def test_a_broken_header_or_array_is_named(change, words):
    refused({**oblivious(), **change}, words, exact=True)


def test_every_array_of_the_layout_is_required():
    for name in [*model_format.HEADER, *model_format.LAYOUTS["oblivious"]]:
        arrays = oblivious()
        del arrays[name]
        refused(arrays, f"{name}: missing")


def test_oblivious_shapes_and_indices():
    arrays = oblivious()
    trees, depth = arrays["features"].shape
    refused({**arrays, "leaf_values": arrays["leaf_values"][:, :-1], "leaf_weights": arrays["leaf_weights"][:, :-1]},
            f"leaf_values: {2 ** depth - 1} leaves")
    refused({**arrays, "borders": arrays["borders"][:-1]}, "borders: shape")
    refused({**arrays, "nan_goes_right": arrays["nan_goes_right"][:, :-1]}, "nan_goes_right: shape")
    features = arrays["features"].copy()
    features[3, 1] = 30
    refused({**arrays, "features": features}, "to 30, expected 0 to 29")
    features[3, 1] = -1
    refused({**arrays, "features": features}, "features: indices from -1")
    leaves = arrays["leaf_values"].copy()
    leaves[0, 0, 0] = np.inf
    refused({**arrays, "leaf_values": leaves}, "leaf_values: holds NaN or infinite values")
    empty = {**arrays, **{k: arrays[k][:0] for k in ("features", "borders", "nan_goes_right", "is_equal",
                                                     "equal_code", "leaf_values", "leaf_weights")}}
    refused(empty, "features: no trees")


def test_multiclass_needs_three_or_more_outputs_and_regression_one():
    arrays = nodes()
    refused({**arrays, "n_outputs": np.array(2, np.int32)}, "n_outputs: 2, a multiclass model has at least 3")
    regression = {**oblivious(), "task": np.array("regression"), "link": np.array("identity")}
    assert model_format.check(regression).task == "regression"
    refused({**regression, "link": np.array("sigmoid")}, "link: a regression model uses identity")


def test_node_tables_must_be_consistent():
    arrays = nodes()
    n = len(arrays["left"])
    refused({**arrays, "roots": arrays["roots"][:-1]}, "roots: 119 trees, expected a positive multiple of n_outputs")
    refused({**arrays, "roots": arrays["roots"][:0]}, "roots: 0 trees")
    for name in ("roots", "left", "right"):
        broken = arrays[name].copy()
        broken[0] = n
        refused({**arrays, name: broken}, f"{name}: indices from")
    split = np.flatnonzero(arrays["left"] != np.arange(n))
    feature = arrays["feature"].copy()
    feature[split[0]] = 7
    refused({**arrays, "feature": feature}, "feature: indices from 0 to 7, expected 0 to 6")
    leaf = np.flatnonzero(arrays["left"] == np.arange(n))[0]
    feature = arrays["feature"].copy()
    feature[leaf] = 99  # a leaf's feature is never read
    assert model_format.check({**arrays, "feature": feature}).n_features == 7
    missing = arrays["missing_type"].copy()
    missing[0] = 3
    refused({**arrays, "missing_type": missing}, "missing_type: codes must be 0 (none), 1 (zero) or 2 (NaN)")
    categorical = np.flatnonzero(arrays["is_categorical"])[0]
    index = arrays["category_index"].copy()
    index[categorical] = len(arrays["category_sets"])
    refused({**arrays, "category_index": index}, "category_index: indices from")
    index = arrays["category_index"].copy()
    index[split[~arrays["is_categorical"][split]][0]] = 999  # not read on a numeric node
    assert model_format.check({**arrays, "category_index": index})
    value = arrays["value"].copy()
    value[leaf] = np.nan
    refused({**arrays, "value": value}, "value: holds NaN or infinite values")


def test_a_leaf_points_to_itself_on_both_sides():
    # the evaluator drops a (row, tree) pair where it reached a node whose left is itself:
    # a right child elsewhere would make the answer depend on when that happened
    arrays = nodes()
    right = arrays["right"].copy()
    leaf = int(np.flatnonzero(arrays["left"] == np.arange(len(right)))[0])
    right[leaf] = arrays["roots"][0]
    refused({**arrays, "right": right}, "right: a leaf (left = itself) must have right = itself too", exact=True)


def test_max_depth_must_bring_every_row_to_a_leaf():
    arrays = nodes()
    depth = int(arrays["max_depth"])
    refused({**arrays, "max_depth": np.array(depth - 1, np.int32)},
            f"max_depth: {depth - 1} steps do not reach a leaf in every tree")
    assert model_format.check({**arrays, "max_depth": np.array(depth + 2, np.int32)})
    nodes_ = arrays["left"].shape[0]
    assert model_format.check({**arrays, "max_depth": np.array(nodes_, np.int32)})
    refused({**arrays, "max_depth": np.array(nodes_ + 1, np.int32)},
            f"max_depth: {nodes_ + 1} steps, more than the {nodes_} nodes")
    # a cycle never reaches a leaf
    left = arrays["left"].copy()
    root = arrays["roots"][0]
    left[arrays["left"][root]] = root
    refused({**arrays, "left": left}, "max_depth")


def test_the_evaluator_is_built_only_from_arrays_that_satisfy_the_declaration():
    arrays = nodes()
    with pytest.raises(FormatError, match="missing_type"):
        evaluator.from_arrays({**arrays, "missing_type": arrays["missing_type"].astype(np.int64)})
    assert isinstance(evaluator.from_arrays(arrays), evaluator.NodeEnsemble)
    assert isinstance(evaluator.from_arrays(oblivious()), evaluator.ObliviousEnsemble)


NO_CTRS = {"cat_hash_offset": [0, 0], "cat_hashes": [], "element_projection": [], "element_kind": [],
           "element_column": [], "element_border": [], "element_nan_true": [], "element_code": [],
           "ctr_projection": [], "ctr_offset": [0], "ctr_keys": [], "ctr_values": [], "ctr_default": []}


def tiny(layout, n_features=1):
    """A one-tree model on one feature: x > 0.5 (CatBoost) or x <= 0.5 (LightGBM) picks the leaf."""
    if layout == "oblivious":
        return model_format.pack(
            "oblivious", "binary", n_features, 1, features=[[0]], borders=[[0.5]], nan_goes_right=[[False]],
            is_equal=[[False]], equal_code=[[np.nan]], leaf_values=[[[-1.0], [1.0]]], leaf_weights=[[3, 5]],
            scale=1.0, bias=[0.0], **NO_CTRS)
    return model_format.pack(
        "nodes", "binary", n_features, 1, roots=[0], feature=[0, 0, 0], threshold=[0.5, 0, 0],
        default_left=[False] * 3, missing_type=[0] * 3, is_categorical=[False] * 3, category_index=[0] * 3,
        category_sets=np.zeros((1, 1), bool), left=[1, 1, 2], right=[2, 1, 2], value=[0.0, -1.0, 1.0],
        count=[8, 3, 5], max_depth=1)


def test_the_walk_follows_right_children_and_a_model_of_leaves_needs_no_step():
    # root 0 sends x <= 0.5 left to leaf 1 and the rest right to node 2, whose children are leaves:
    # only the right path is two steps long
    deeper_right = dict(roots=[0], feature=[0] * 5, threshold=[0.5, 0, 0.8, 0, 0], default_left=[False] * 5,
                        missing_type=[0] * 5, is_categorical=[False] * 5, category_index=[0] * 5,
                        category_sets=np.zeros((1, 1), bool), left=[1, 1, 3, 3, 4], right=[2, 1, 4, 3, 4],
                        value=[0.0, -1.0, 0.0, 0.5, 1.0], count=[9, 4, 5, 2, 3])
    assert model_format.check(model_format.pack("nodes", "binary", 1, 1, max_depth=2, **deeper_right))
    with pytest.raises(FormatError, match="max_depth: 1 steps do not reach a leaf"):
        model_format.check(model_format.pack("nodes", "binary", 1, 1, max_depth=1, **deeper_right))
    # trees that are a single leaf each (LightGBM on a constant target): no step at all
    leaves = {**deeper_right, "roots": [1, 3]}
    arrays = model_format.pack("nodes", "binary", 1, 1, max_depth=0, **leaves)
    assert model_format.check(arrays)
    assert evaluator.from_arrays(arrays).raw(np.array([[0.0], [1.0]]))[:, 0].tolist() == [-0.5, -0.5]


@pytest.mark.parametrize("layout", ["oblivious", "nodes"])
def test_the_smallest_model_one_tree_on_one_feature_is_valid_and_evaluated(layout):
    arrays = tiny(layout)
    header = model_format.check(arrays)
    assert (header.n_features, header.n_outputs) == (1, 1)
    raw = evaluator.from_arrays(arrays).raw(np.array([[0.0], [0.5], [1.0]]))
    expected = [[-1.0], [-1.0], [1.0]] if layout == "oblivious" else [[-1.0], [-1.0], [1.0]]
    assert raw.tolist() == expected


def test_complete_messages_for_layout_problems():
    arrays = {k: v for k, v in oblivious().items() if k in model_format.LAYOUTS["oblivious"]}
    with pytest.raises(FormatError) as caught:
        model_format.pack("forest", "binary", 30, 1, **arrays)
    assert str(caught.value) == "layout 'forest': expected one of oblivious, nodes"
    with pytest.raises(FormatError) as caught:
        model_format.pack("oblivious", "binary", 30, 1, b=np.zeros(1), a=np.zeros(1), **arrays)
    assert str(caught.value) == "a, b: not part of the oblivious layout"
    refused({**oblivious(), "b": np.zeros(1), "a": np.zeros(1)}, "a, b: not part of the oblivious layout", exact=True)
    with pytest.raises(FormatError) as caught:
        model_format.pack("oblivious", "ranking", 30, 1, **arrays)
    assert str(caught.value) == "task: 'ranking' is not one of binary, multiclass, regression"
    trees, depth = arrays["features"].shape
    refused({**oblivious(), "leaf_values": oblivious()["leaf_values"][:, :-1],
             "leaf_weights": oblivious()["leaf_weights"][:, :-1]},
            f"leaf_values: {2 ** depth - 1} leaves per tree, expected 2**depth = {2 ** depth}", exact=True)
    empty = {**oblivious(), **{k: oblivious()[k][:0] for k in ("features", "borders", "nan_goes_right", "is_equal",
                                                              "equal_code", "leaf_values", "leaf_weights")}}
    refused(empty, "features: no trees", exact=True)
    refused({**oblivious(), "scale": np.array(np.nan)}, "scale: not a finite number", exact=True)
    missing = nodes()["missing_type"].copy()
    missing[0] = 3
    refused({**nodes(), "missing_type": missing}, "missing_type: codes must be 0 (none), 1 (zero) or 2 (NaN)",
            exact=True)
    value = nodes()["value"].copy()
    value[-1] = np.inf
    refused({**nodes(), "value": value}, "value: holds NaN or infinite values", exact=True)
    refused({**nodes(), "roots": nodes()["roots"][:1]},
            "roots: 1 trees, expected a positive multiple of n_outputs (3: a tree per output per round)", exact=True)


def test_nodes_no_tree_reaches_are_never_evaluated_and_do_not_matter():
    arrays = tiny("nodes")
    n = len(arrays["left"])
    extra = {  # two split nodes pointing at each other, reachable from no root
        "feature": [0, 0], "threshold": [0.0, 0.0], "default_left": [False, False], "missing_type": [0, 0],
        "is_categorical": [False, False], "category_index": [0, 0], "left": [n + 1, n], "right": [n + 1, n],
        "value": [0.0, 0.0], "count": [0.0, 0.0]}
    grown = dict(arrays)
    for name, values in extra.items():
        grown[name] = np.concatenate([arrays[name], np.asarray(values, arrays[name].dtype)])
    assert model_format.check(grown).n_features == 1
    rows = np.array([[0.0], [1.0]])
    assert evaluator.from_arrays(grown).raw(rows).tolist() == evaluator.from_arrays(arrays).raw(rows).tolist()


def test_lightgbm_reads_values_within_its_zero_threshold_as_zero():
    # LightGBM splits between negative values and zero at -kZeroThreshold (1e-35f), and drops
    # |x| <= kZeroThreshold from a row before comparing: such a value is 0.0, so it goes right
    kzero = float(np.float32(1e-35))
    arrays = {**tiny("nodes"), "threshold": np.array([-kzero, 0.0, 0.0])}
    rows = np.array([[-kzero], [kzero], [np.nextafter(-kzero, -1)], [-1.0], [0.0]])
    assert evaluator.from_arrays(arrays).raw(rows)[:, 0].tolist() == [1.0, 1.0, -1.0, -1.0, 1.0]
    zero_missing = {**arrays, "missing_type": np.array([1, 0, 0], np.int8), "default_left": np.array([True, False, False])}
    assert evaluator.from_arrays(zero_missing).raw(rows)[:, 0].tolist() == [-1.0, -1.0, -1.0, -1.0, -1.0]
    assert evaluator.from_arrays(zero_missing).raw(np.array([[3.0]]))[:, 0].tolist() == [1.0]


def ctr_model():
    return dict(case("shops-catboost-combinations").arrays)


def test_target_statistics_tables_must_be_consistent():
    arrays = ctr_model()
    header = model_format.check(arrays)
    assert arrays["ctr_projection"].size >= 5 and header.n_features == 9
    ctrs = arrays["ctr_projection"].size
    features = arrays["features"].copy()
    features[0, 0] = header.n_features + ctrs
    refused({**arrays, "features": features}, f" to {header.n_features + ctrs}, expected 0 to {header.n_features + ctrs - 1}")
    refused({**arrays, "cat_hash_offset": arrays["cat_hash_offset"][:-1]}, "cat_hash_offset: 9 offsets, expected 10",
            exact=True)
    offsets = arrays["cat_hash_offset"].copy()
    offsets[-1] += 1
    refused({**arrays, "cat_hash_offset": offsets}, f"cat_hash_offset: offsets must rise from 0 to {len(arrays['cat_hashes'])}",
            exact=True)
    offsets = arrays["ctr_offset"].copy()
    offsets[1], offsets[2] = offsets[2], offsets[1]
    refused({**arrays, "ctr_offset": offsets}, "ctr_offset: offsets must rise from 0")
    offsets = arrays["ctr_offset"].copy()
    offsets[0] = 1
    refused({**arrays, "ctr_offset": offsets}, "ctr_offset: offsets must rise from 0")
    kinds = arrays["element_kind"].copy()
    kinds[0] = 3
    refused({**arrays, "element_kind": kinds}, "element_kind: codes must be 0 (category), 1 (float split) or 2 (one-hot)",
            exact=True)
    columns = arrays["element_column"].copy()
    columns[0] = 9
    refused({**arrays, "element_column": columns}, "element_column: indices from")
    category = np.flatnonzero(arrays["element_kind"] == 0)[0]
    columns = arrays["element_column"].copy()
    columns[category] = int(np.flatnonzero(np.diff(arrays["cat_hash_offset"]) == 0)[0])  # a numeric column
    refused({**arrays, "element_column": columns},
            "element_column: a categorical element reads a column without category hashes", exact=True)
    projections = arrays["ctr_projection"].copy()
    projections[0] = arrays["element_projection"].max() + 1
    refused({**arrays, "ctr_projection": projections}, "ctr_projection: indices from")
    keys = arrays["ctr_keys"].copy()
    start, end = arrays["ctr_offset"][1], arrays["ctr_offset"][2]
    keys[start:end] = keys[start:end][::-1]
    refused({**arrays, "ctr_keys": keys}, "ctr_keys: the keys of CTR 1 are not sorted and distinct", exact=True)
    keys = arrays["ctr_keys"].copy()
    keys[start + 1] = keys[start]
    refused({**arrays, "ctr_keys": keys}, "ctr_keys: the keys of CTR 1 are not sorted and distinct")
    for name in ("ctr_values", "ctr_default"):
        values = arrays[name].copy()
        values[0] = np.nan
        refused({**arrays, name: values}, f"{name}: holds NaN or infinite values", exact=True)
    weights = arrays["leaf_weights"].copy()
    weights[0, 0] = np.inf
    refused({**arrays, "leaf_weights": weights}, "leaf_weights: holds NaN or infinite values", exact=True)


def test_node_counts_must_be_finite_and_not_negative():
    arrays = nodes()
    for bad in (-1.0, np.nan):
        count = arrays["count"].copy()
        count[0] = bad
        refused({**arrays, "count": count}, "count: holds negative, NaN or infinite values", exact=True)
    assert (arrays["count"][arrays["roots"]] > 0).all()


def test_a_categorical_column_with_a_single_hash_may_be_read_by_an_element():
    arrays = ctr_model()
    category = np.flatnonzero(arrays["element_kind"] == 0)[0]
    column = int(arrays["element_column"][category])
    offsets = arrays["cat_hash_offset"]
    start = offsets[column]
    hashes = np.concatenate([arrays["cat_hashes"][:start + 1], arrays["cat_hashes"][offsets[column + 1]:]])
    shrunk = offsets.copy()
    shrunk[column + 1:] -= offsets[column + 1] - start - 1  # the column keeps one hash
    assert (np.diff(shrunk) == 1).sum() == 1
    assert model_format.check({**arrays, "cat_hashes": hashes, "cat_hash_offset": shrunk}).n_features == 9


def test_ctrs_without_any_element_have_no_combination_to_be_computed_on():
    no_elements = {name: tiny("oblivious")[name][:0] for name in (
        "element_projection", "element_kind", "element_column", "element_border", "element_nan_true", "element_code")}
    ctr = {"ctr_projection": np.array([0], np.int32), "ctr_offset": np.array([0, 0], np.int32),
           "ctr_default": np.array([0.5], np.float32)}
    refused({**tiny("oblivious"), **no_elements, **ctr}, "ctr_projection: indices from 0 to 0, expected 0 to -1",
            exact=True)


def test_a_negative_element_projection_is_named():
    arrays = ctr_model()
    projections = arrays["element_projection"].copy()
    projections[0] = -1
    refused({**arrays, "element_projection": projections},
            f"element_projection: indices from -1 to {projections.max()}, expected 0 to {projections.max()}",
            exact=True)


def test_ctr_keys_after_the_first_must_also_rise_among_themselves():
    arrays = ctr_model()
    start, end = arrays["ctr_offset"][1], arrays["ctr_offset"][2]
    assert end - start >= 3
    keys = arrays["ctr_keys"].copy()
    keys[end - 2], keys[end - 1] = keys[end - 1], keys[end - 2]  # the last two swapped: both above the first
    refused({**arrays, "ctr_keys": keys}, "ctr_keys: the keys of CTR 1 are not sorted and distinct", exact=True)
