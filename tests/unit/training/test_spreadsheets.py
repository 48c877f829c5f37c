"""Tables as spreadsheets write them: the delimiter found, decimal commas, .xlsx, constant columns
left out and recorded, the row-name column named; a refused table is one line, not a traceback."""

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.unit.conftest import BUCKET
from training import config as C
from training import data as D
from training import job

ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]


def table(n=60, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"a": x.round(3), "b": rng.integers(0, 5, n), "y": np.where(x > 0, "yes", "no")})


@pytest.mark.parametrize(("delimiter", "decimal"), [(",", "."), (";", ","), ("\t", "."), ("|", ".")])
def test_the_delimiter_is_found_and_a_decimal_comma_read_where_the_delimiter_is_a_semicolon(
        tmp_path, delimiter, decimal):
    frame = table()
    path = tmp_path / "t.csv"
    frame.to_csv(path, sep=delimiter, decimal=decimal, index=False)
    if decimal == ",":  # the file really holds decimal commas: the reader has to turn them into points
        assert re.search(r"(^|;)-?\d+,\d+;", path.read_text(), re.M)
    loaded = D.load(str(path), "y")
    assert list(loaded.X.columns) == ["a", "b"]
    assert np.array_equal(loaded.X["a"].to_numpy(), frame["a"].to_numpy())
    assert loaded.X["a"].dtype == np.float64


def test_a_text_that_no_delimiter_splits_is_one_column_named_in_the_refusal(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a b y\n1 2 yes\n3 4 no\n")
    with pytest.raises(D.DataError, match="no target column 'y'; columns are: a b y"):
        D.load(str(path), "y")


def test_an_xlsx_file_is_read_from_its_first_sheet_or_the_one_named(tmp_path):
    frame, other = table(), table(seed=2)
    path = tmp_path / "t.xlsx"
    with pd.ExcelWriter(path) as writer:
        frame.to_excel(writer, sheet_name="first", index=False)
        other.to_excel(writer, sheet_name="second", index=False)
    assert np.allclose(D.load(str(path), "y").X["a"], frame["a"])
    assert np.allclose(D.load(str(path), "y", sheet="second").X["a"], other["a"])
    assert np.allclose(D.load(str(path), "y", sheet=1).X["a"], other["a"])


def test_an_unknown_file_type_names_the_ones_read(tmp_path):
    path = tmp_path / "t.ods"
    path.write_bytes(b"x")
    with pytest.raises(D.DataError, match=r"use \.csv \(or \.tsv, \.txt\), \.parquet or \.xlsx"):
        D.load(str(path), "y")


def test_constant_columns_are_left_out_and_recorded_and_the_row_names_named():
    frame = table(40).assign(rownames=[f"row-{i}" for i in range(40)], counter=range(1, 41), batch="b1")
    data = D.Dataset("t", frame.drop(columns="y"), frame["y"], "t.csv", "binary", "y")
    screened = D.screen(data, constant_columns="drop")
    assert list(screened.X.columns) == ["a", "b"]
    assert screened.dropped == [
        {"name": "rownames", "reason": "a different value in every row"},
        {"name": "counter", "reason": "a row counter: consecutive integers, one per row"},
        {"name": "batch", "reason": "constant: 'b1' in every row"}]
    assert D.id_column(screened.dropped) == "rownames"  # row names before a row counter
    assert D.id_column(screened.dropped[1:]) == "counter"
    assert D.id_column(screened.dropped[2:]) is None
    declared = D.screen(data, id_column="counter", constant_columns="drop")
    assert D.id_column(declared.dropped) == "counter"  # a declared id first
    kept = D.screen(data, constant_columns="keep")
    assert "batch" in kept.X.columns


def test_a_table_of_constant_columns_alone_is_still_refused():
    frame = pd.DataFrame({"a": [1.0] * 30, "b": ["x"] * 30, "y": ["p", "q"] * 15})
    data = D.Dataset("t", frame.drop(columns="y"), frame["y"], "t.csv", "binary", "y")
    screened = D.screen(data, constant_columns="drop")
    with pytest.raises(D.DataError, match="every column is constant"):
        D.validate(screened, folds=3, constant_columns="drop")


def test_the_published_manifest_names_the_ignored_columns_and_the_id_column(tmp_path, s3):
    frame = table(80).assign(rownames=[f"row-{i}" for i in range(80)], batch="b1")
    path = tmp_path / "t.csv"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    overrides = [f"dataset={path}", "target=y", "tuning.n_trials=1", "tuning.cv_folds=3",
                 "tuning.max_rounds=20", f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db", f"bucket={BUCKET}",
                 "model_name=sheet"]
    summary = job.run(C.load(None, overrides), publish=True, show_progress=False)
    from serving.store import bundles

    manifest = bundles.read_manifest(s3, BUCKET, "sheet", summary["version"])
    assert [d["name"] for d in manifest["dropped_columns"]] == ["rownames", "batch"]
    assert (manifest["id_column"], manifest["target"]) == ("rownames", "y")
    assert [f["name"] for f in manifest["feature_schema"]] == ["a", "b"]


def test_a_refused_table_is_one_line_and_a_nonzero_exit_without_a_traceback(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b;y\n1;2;yes\n")
    result = subprocess.run([sys.executable, "-m", "training", "train", "--no-publish", "--set", f"dataset={path}",
                             "--set", "target=z"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: " in result.stderr and "no target column 'z'; columns are: a, b, y" in result.stderr
