"""The served form of a model gives the native library's answers, on the rules' edges too."""

import numpy as np
import pytest
from serving.model import evaluator as evaluators
from serving.model import format as model_format
from serving.model.format import MISSING_NAN, MISSING_ZERO
from serving.model.predictor import served_predictions

from tests.models import CASES, case

EXACT = 1e-12


def difference(served, native, task):
    """Probabilities as they are; regression values relative to their size."""
    gap = np.abs(served - native)
    return np.max(gap / np.maximum(1.0, np.abs(native)) if task == "regression" else gap)


@pytest.mark.parametrize("name", sorted(CASES))
def test_held_out_rows_are_answered_as_the_native_library_does(name):
    model = case(name)
    served = served_predictions(model.arrays, model.matrix)
    outputs = 1 if model.task == "regression" else len(model.classes)
    assert served.shape == model.native.shape == (len(model.matrix), outputs)
    assert difference(served, model.native, model.task) <= EXACT
    if model.task != "regression":
        assert np.allclose(served.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rows_on_thresholds_borders_nan_and_zero_follow_the_native_rules(name):
    # probes: a feature exactly on a LightGBM threshold, a value float32 rounds onto a
    # CatBoost border, NaN and zeros in many columns, missing categories
    model = case(name)
    served = served_predictions(model.arrays, model.probes)
    assert difference(served, model.native_probes, model.task) <= EXACT


def test_the_cases_cover_ctrs_combinations_dates_and_regression():
    combinations = case("shops-catboost-combinations").arrays
    assert combinations["ctr_projection"].size >= 5
    kinds = set(combinations["element_kind"].tolist())
    assert kinds == {0, 1, 2}  # a categorical's value, a float split and a one-hot test in combinations
    assert case("rides-catboost").arrays["ctr_projection"].size >= 1
    assert any(f["type"] == "datetime" for f in case("rides-catboost").schema)
    assert case("diabetes-lightgbm").task == "regression"


def test_the_probes_do_sit_on_the_edges():
    # without these the test above would pass for an evaluator that gets the edges wrong
    lgb = case("bc-lightgbm")
    split = lgb.arrays["left"] != np.arange(len(lgb.arrays["left"]))
    thresholds = set(lgb.arrays["threshold"][split].tolist())
    assert sum(v in thresholds for v in lgb.probes.ravel().tolist()) >= 100
    cb = case("bc-catboost")
    borders = cb.arrays["borders"][np.isfinite(cb.arrays["borders"])]
    above = [v for v in cb.probes.ravel() if np.float32(v) in borders and v > np.float32(v)]
    assert len(above) >= 100
    zero = case("bc-lightgbm-zero")
    assert (zero.arrays["missing_type"] == MISSING_ZERO).any()
    assert (case("penguins-lightgbm").arrays["missing_type"] == MISSING_NAN).any()
    assert case("penguins-lightgbm").arrays["is_categorical"].any()
    assert case("penguins-catboost").arrays["is_equal"].any()
    assert case("penguins-catboost-nanmax").arrays["nan_goes_right"].any()
    assert not case("penguins-catboost").arrays["nan_goes_right"].any()
    assert sum(abs(v) in (1e-35, 2e-35) for v in zero.probes.ravel().tolist()) >= 60


def test_lightgbm_models_without_missing_values_or_categories_take_the_plain_comparison_path(monkeypatch):
    # the plain x <= threshold pass is only for models and rows where it gives the same answer
    plain = evaluators.from_arrays(case("bc-lightgbm").arrays)
    careful = evaluators.from_arrays(case("penguins-lightgbm").arrays)
    assert plain._simple is True and careful._simple is False
    assert evaluators.from_arrays(case("bc-lightgbm-zero").arrays)._simple is False

    def refuse(*args):
        raise AssertionError("the careful path ran")

    monkeypatch.setattr(plain, "_numerical", refuse)
    plain.raw(case("bc-lightgbm").matrix)  # no NaN: plain
    with pytest.raises(AssertionError, match="careful path"):
        plain.raw(case("bc-lightgbm").probes)  # NaN in some rows: careful


def test_float32_rounding_decides_a_catboost_split():
    # the value is above the border in float64 but equal to it in float32: CatBoost says "not greater"
    model = case("bc-catboost")
    arrays = model.arrays
    t = 0
    border = arrays["borders"][t, 0]
    row = model.matrix[:1].copy()
    row[0, arrays["features"][t, 0]] = np.nextafter(np.float64(border), np.inf)
    evaluator = evaluators.from_arrays(arrays)
    assert np.float32(row[0, arrays["features"][t, 0]]) == border
    on_border = evaluator.raw(row)
    row[0, arrays["features"][t, 0]] = np.float64(np.nextafter(border, np.float32(np.inf)))
    above = evaluator.raw(row)
    assert not np.array_equal(on_border, above)


@pytest.mark.parametrize("name", ["bc-lightgbm", "penguins-catboost", "digits-catboost"])
def test_many_rows_are_evaluated_in_chunks_with_the_same_answer(name):
    model = case(name)
    chunk = evaluators.from_arrays(model.arrays).row_chunk
    rows = np.concatenate([model.matrix] * (chunk * 3 // len(model.matrix) + 2))
    many = served_predictions(model.arrays, rows)
    one_by_one = np.concatenate([served_predictions(model.arrays, rows[i:i + 1])
                                 for i in range(0, len(rows), 97)])
    assert many.shape[0] == len(rows) > 3 * chunk
    assert np.array_equal(many[::97], one_by_one)
    assert np.max(np.abs(many[: len(model.matrix)] - model.native)) <= EXACT


def test_softmax_is_stable_for_large_raw_scores():
    raw = np.array([[1000.0, 999.0, -1000.0], [5.0, 5.0, 5.0]])
    p = evaluators.apply_link(raw, "softmax")
    assert np.isfinite(p).all()
    assert np.allclose(p[0], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1)), 0.0])
    assert np.allclose(p[1], [1 / 3] * 3)


def test_links():
    raw = np.array([[0.0], [2.0]])
    assert np.allclose(evaluators.apply_link(raw, "sigmoid"), [[0.5, 0.5], [1 / (1 + np.exp(2)), 1 / (1 + np.exp(-2))]])
    assert evaluators.apply_link(raw, "identity") is raw


def test_a_lightgbm_multiclass_model_adds_tree_t_to_output_t_mod_k():
    model = case("digits-lightgbm")
    evaluator = evaluators.from_arrays(model.arrays)
    raw = evaluator.raw(model.matrix[:5])
    k = evaluator.header.n_outputs
    assert raw.shape == (5, k) == (5, 10)
    # a model whose only non-zero leaves are in the trees of class 3 moves only output 3
    arrays = dict(model.arrays)
    leaves = arrays["left"] == np.arange(len(arrays["left"]))
    tree_of = np.zeros(len(leaves), int)
    for t, root in enumerate(arrays["roots"]):
        end = arrays["roots"][t + 1] if t + 1 < len(arrays["roots"]) else len(leaves)
        tree_of[root:end] = t
    arrays["value"] = np.where(leaves & (tree_of % k == 3), 1.0, 0.0)
    only3 = evaluators.from_arrays(arrays).raw(model.matrix[:5])
    assert np.array_equal(only3[:, 3], np.full(5, len(arrays["roots"]) // k))
    assert not only3[:, [0, 1, 2, 4, 5, 6, 7, 8, 9]].any()


def test_catboost_scale_and_bias_apply_to_the_leaf_sum():
    model = case("bc-catboost")
    base = evaluators.from_arrays(model.arrays).raw(model.matrix[:3])
    scaled = dict(model.arrays, scale=np.array(2 * model.arrays["scale"]),
                  bias=model.arrays["bias"] + np.float64(1.5))
    total = (base - model.arrays["bias"]) / model.arrays["scale"]
    assert np.allclose(evaluators.from_arrays(scaled).raw(model.matrix[:3]),
                       2 * model.arrays["scale"] * total + model.arrays["bias"] + 1.5)


def test_a_categorical_lightgbm_split_sends_listed_codes_left_and_others_right():
    model = case("penguins-lightgbm")
    evaluator = evaluators.from_arrays(model.arrays)
    nodes = np.flatnonzero(model.arrays["is_categorical"])
    node = nodes[0]
    width = model.arrays["category_sets"].shape[1]
    codes = np.array([np.nan, -1.0, *range(width), float(width), 1e9])
    went_left = evaluator._categorical(codes, np.full(len(codes), node))
    listed = model.arrays["category_sets"][model.arrays["category_index"][node]]
    assert went_left.tolist() == [False, False, *listed.tolist(), False, False]
    assert listed.any()


def test_a_combination_not_seen_in_training_takes_the_ctrs_default():
    model = case("shops-catboost-combinations")
    evaluator = evaluators.from_arrays(model.arrays)
    ctrs = evaluator._ctrs
    found = (ctrs.values(model.matrix) != model.arrays["ctr_default"]).any(axis=1)
    row = model.matrix[np.flatnonzero(found)[:1]]  # a row with combinations seen in training
    seen = ctrs.values(row)[0]
    # empty the tables: every combination is now unseen, every CTR its default
    emptied = dict(model.arrays, ctr_keys=model.arrays["ctr_keys"][:0], ctr_values=model.arrays["ctr_values"][:0],
                   ctr_offset=np.zeros_like(model.arrays["ctr_offset"]))
    unseen = evaluators.from_arrays(emptied)._ctrs.values(row)[0]
    assert unseen.tolist() == model.arrays["ctr_default"].tolist()
    assert unseen.dtype == np.float32 and not np.array_equal(seen, unseen)


def test_a_missing_category_hashes_as_catboosts_missing_category():
    model = case("shops-catboost-combinations")
    schema = model.schema
    shop = [f["name"] for f in schema].index("shop")
    offsets = model.arrays["cat_hash_offset"]
    rows = np.repeat(model.matrix[:1], 2, axis=0)
    rows[0, shop] = np.nan
    rows[1, shop] = len(schema[shop]["categories"])  # the code after the last category: the missing one
    ctrs = evaluators.from_arrays(model.arrays)._ctrs
    values = ctrs.values(rows)
    assert np.array_equal(values[0], values[1])
    assert offsets[shop + 1] - offsets[shop] == len(schema[shop]["categories"]) + 1


MAGIC = 0x4906BA494954CB65


def catboost_hash(values):
    """CatBoost's hash of a combination, element by element, in Python integers modulo 2**64."""
    h = 0
    for value in values:
        h = (MAGIC * (h + MAGIC * value)) % 2**64
    return h


# Column 0 numeric; columns 1 and 2 categorical, with their hashes (the missing category's last).
HASHES = {1: [101, 102, 103], 2: [201, 202]}
ELEMENTS = [  # (projection, kind, column, border, nan_true, code)
    (0, 0, 1, 0.0, False, 0.0),  # projection 0: the category of column 1
    (1, 1, 0, 0.5, True, 0.0),  # projection 1: x0 > 0.5, a missing x0 counting as above
    (2, 2, 1, 0.0, False, 0.0),  # projection 2: the one-hot test "column 1 is category 0"
    (3, 1, 0, 0.5, False, 0.0),  # projection 3: x0 > 0.5, a missing x0 counting as not above
]


def hand_made_ctrs(tables):
    """An oblivious model on 3 columns with a CTR per projection above; tables: [(keys, values, default)]."""
    ctrs = len(tables)
    offset = np.cumsum([0] + [len(keys) for keys, _, _ in tables])
    return model_format.pack(
        "oblivious", "binary", 3, 1, features=[[3 + r for r in range(ctrs)]], borders=[[0.5] * ctrs],
        nan_goes_right=[[False] * ctrs], is_equal=[[False] * ctrs], equal_code=[[np.nan] * ctrs],
        leaf_values=[[[float(i)] for i in range(2**ctrs)]], leaf_weights=[[1.0] * 2**ctrs], scale=1.0, bias=[0.0],
        cat_hash_offset=[0, 0, 3, 5], cat_hashes=HASHES[1] + HASHES[2],
        **{name: [e[i] for e in ELEMENTS] for i, name in enumerate(
            ("element_projection", "element_kind", "element_column", "element_border", "element_nan_true",
             "element_code"))},
        ctr_projection=list(range(ctrs)), ctr_offset=offset.tolist(),
        ctr_keys=[k for keys, _, _ in tables for k in keys], ctr_values=[v for _, values, _ in tables for v in values],
        ctr_default=[default for _, _, default in tables])


def sorted_table(pairs, default):
    pairs = sorted(pairs)
    return [k for k, _ in pairs], [v for _, v in pairs], default


def test_ctr_elements_hash_categories_float_splits_and_one_hot_tests_with_missing_values_as_catboost_does():
    tables = [
        # the category of column 1: codes 0 and 1, and the missing category (its last hash)
        sorted_table([(catboost_hash([101]), 0.25), (catboost_hash([102]), 0.5), (catboost_hash([103]), 0.75)], 0.125),
        # x0 > 0.5 with NaN counting as above: 1 above, 0 below
        sorted_table([(catboost_hash([1]), 0.875), (catboost_hash([0]), 0.0625)], 0.5),
        # column 1 is category 0: 1 or 0; a missing category is not category 0
        sorted_table([(catboost_hash([1]), 0.375), (catboost_hash([0]), 0.625)], 0.5),
    ]
    evaluator = evaluators.from_arrays(hand_made_ctrs(tables))
    rows = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [np.nan, np.nan, np.nan]])
    values = evaluator._ctrs.values(rows)
    assert values.dtype == np.float32
    assert values.tolist() == [[0.25, 0.0625, 0.375], [0.5, 0.875, 0.625], [0.75, 0.875, 0.625]]
    # the CTR columns decide the leaf (each split is value > 0.5)
    assert evaluator.raw(rows)[:, 0].tolist() == [0b000, 0b110, 0b111]


def test_a_hash_beyond_every_key_of_a_table_takes_the_default():
    low, high = sorted([catboost_hash([0]), catboost_hash([1])])
    above = 1 if catboost_hash([1]) == high else 0  # the value of x0 > 0.5 whose hash is the larger
    rows = np.array([[1.0 if above else 0.0, 0, 0], [0.0 if above else 1.0, 0, 0]])  # the larger hash, the smaller
    tables = [([], [], 0.5), ([], [], 0.5), ([], [], 0.5)]
    one_key = evaluators.from_arrays(hand_made_ctrs([*tables, ([low], [0.25], 0.125)]))._ctrs
    assert one_key.values(rows)[:, 3].tolist() == [0.125, 0.25]
    none = evaluators.from_arrays(hand_made_ctrs([*tables, ([], [], 0.875)]))._ctrs
    assert none.values(rows).tolist() == [[0.5, 0.5, 0.5, 0.875]] * 2


@pytest.mark.parametrize("depth", [1, 8, 9, 16])
def test_an_oblivious_trees_leaf_index_has_one_bit_per_level_at_any_catboost_depth(depth):
    # CatBoost's trees are up to 16 levels deep: the index spans two bytes past depth 8
    arrays = case("bc-catboost").arrays
    n_features = arrays["features"].max() + 1
    features = (np.arange(depth) % n_features)[None, :].astype(arrays["features"].dtype)
    deep = dict(arrays, features=features,
                borders=np.zeros((1, depth), arrays["borders"].dtype),
                nan_goes_right=np.zeros((1, depth), bool), is_equal=np.zeros((1, depth), bool),
                equal_code=np.zeros((1, depth), arrays["equal_code"].dtype),
                leaf_values=np.arange(2.0**depth).reshape(1, -1, 1),
                leaf_weights=np.ones((1, 2**depth), arrays["leaf_weights"].dtype))
    evaluator = evaluators.from_arrays(deep)
    rng = np.random.default_rng(depth)
    X = rng.choice([-1.0, 1.0], size=(50, arrays["features"].max() + 1))
    expected = sum((X[:, features[0, level]] > 0).astype(int) << level for level in range(depth))
    assert evaluator.leaf_index(X)[:, 0].tolist() == expected.tolist()
    assert expected.max() >= 2 ** (depth - 1)  # the highest bit is reached


def test_oblivious_trees_sharing_tests_and_trees_of_one_leaf_are_evaluated_test_by_test():
    # each distinct test is made once and shared by the levels that use it: the same column and
    # border with another missing-value rule, or as a one-hot test, is another test
    nan, inf = np.nan, np.inf
    arrays = dict(case("bc-catboost").arrays)
    features = np.array([[0, 0], [0, 1], [0, 0], [1, 0]], np.int32)
    borders = np.array([[0.5, inf], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], np.float32)  # tree 0: one level
    nan_right = np.array([[False, False], [True, False], [False, False], [False, False]])
    is_equal = np.array([[False, False], [False, False], [False, True], [False, False]])
    code = np.where(is_equal, 2.0, nan)
    leaves = np.arange(16.0).reshape(4, 4, 1) * 10.0 ** np.arange(4)[:, None, None]
    arrays.update(features=features, borders=borders, nan_goes_right=nan_right, is_equal=is_equal,
                  equal_code=code, leaf_values=leaves, leaf_weights=np.ones((4, 4)))
    evaluator = evaluators.from_arrays(arrays)
    X = np.zeros((5, arrays["n_features"]))
    X[:, :2] = [[0.0, 0.0], [1.0, 0.0], [nan, 1.0], [2.0, nan], [0.5, 2.0]]
    assert evaluator.leaf_index(X).tolist() == [
        # tree 0: x0 > .5 | tree 1: x0 > .5 (NaN above), x1 > .5 | tree 2: x0 > .5, x0 == 2 | tree 3
        [0, 0, 0, 0], [1, 1, 1, 2], [0, 3, 0, 1], [1, 1, 3, 2], [0, 2, 0, 1]]
    assert evaluator.raw(X)[:, 0].tolist() == [
        sum(leaves[t, leaf, 0] for t, leaf in enumerate(row)) for row in evaluator.leaf_index(X).tolist()]
    stumps = dict(arrays, **{name: arrays[name][:, :0] for name in
                             ("features", "borders", "nan_goes_right", "is_equal", "equal_code")},
                  leaf_values=leaves[:, :1], leaf_weights=np.ones((4, 1)))
    assert evaluators.from_arrays(stumps).raw(X)[:, 0].tolist() == [leaves[:, 0, 0].sum()] * 5


def test_lightgbm_pairs_leave_the_walk_at_their_leaf_whatever_the_depth():
    # rows reach leaves at different depths and trees may be a single leaf: each (row, tree)
    # pair must stop on its own leaf, as a plain walk down each tree does
    arrays = dict(case("bc-lightgbm").arrays)
    left, right = arrays["left"], arrays["right"]
    leaves = np.flatnonzero(left == np.arange(left.shape[0]))
    roots = arrays["roots"].copy()
    roots[::3] = leaves[: len(roots[::3])]  # every third tree is one leaf
    arrays["roots"] = roots
    X = case("bc-lightgbm").matrix[:150]
    X = np.where(np.abs(X) <= evaluators.K_ZERO_THRESHOLD, 0.0, X)

    def walked(row):
        total = 0.0
        for root in roots:
            node = root
            while left[node] != node:
                node = left[node] if row[arrays["feature"][node]] <= arrays["threshold"][node] else right[node]
            total += arrays["value"][node]
        return total

    evaluator = evaluators.from_arrays(arrays)
    assert evaluator._simple  # no missing values routed: the plain walk above is LightGBM's rule
    expected = np.array([walked(row) for row in X])
    assert np.allclose(evaluator.raw(X)[:, 0], expected, rtol=0, atol=1e-12)
    assert np.allclose(evaluator.raw(X[:1])[:, 0], expected[:1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["bc-catboost", "digits-catboost", "bc-lightgbm", "penguins-catboost"])
def test_no_rows_give_no_answers_of_the_right_width(name):
    model = case(name)
    assert evaluators.from_arrays(model.arrays).predict(model.matrix[:0]).shape == (0, model.native.shape[1])
