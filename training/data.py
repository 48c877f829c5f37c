"""Data sets in, validated tables and a feature schema out.

Sources: the built-in data sets that ship inside packages (``breast_cancer``,
``digits`` from scikit-learn; ``penguins`` from palmerpenguins), or a CSV /
Parquet file from a path or an ``s3://`` URI with a target column.

Everything wrong with the data is reported before any training starts; nothing
is dropped silently.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LOG = logging.getLogger("training")
BUILT_IN = ("breast_cancer", "digits", "penguins")
MISSING_CATEGORY = "<missing>"  # CatBoost's own category for a missing value


class DataError(ValueError):
    """The data cannot be trained on; the message says why."""


@dataclass
class Dataset:
    name: str
    X: pd.DataFrame
    y: pd.Series  # class labels as strings
    source: str

    @property
    def classes(self) -> list[str]:
        # the order CatBoost and LightGBM give their probability columns
        return sorted(self.y.unique().tolist())

    def sha256(self) -> str:
        """A fingerprint of exactly the rows and columns trained on."""
        frame = self.X.assign(__target__=self.y)
        hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        digest = hashlib.sha256(hashed.tobytes())
        digest.update("|".join(map(str, frame.columns)).encode())
        return digest.hexdigest()


def load(source: str, target: str | None = None, s3_client=None) -> Dataset:
    if source in BUILT_IN:
        return _built_in(source)
    if target is None:
        raise DataError(f"{source}: give the target column (--target) for a file data set")
    frame = _read_table(source, s3_client)
    if target not in frame.columns:
        raise DataError(
            f"{source}: no target column {target!r}; columns are: {', '.join(map(str, frame.columns))}"
        )
    y = frame.pop(target)
    if y.isna().any():
        raise DataError(f"{source}: the target {target!r} is missing in {int(y.isna().sum())} rows")
    name = Path(source.split("?")[0]).stem.replace("_", "-")
    return Dataset(name=name, X=frame, y=y.astype(str), source=source)


def _built_in(name: str) -> Dataset:
    if name == "penguins":
        from palmerpenguins import load_penguins

        frame = load_penguins()
        y = frame.pop("species").astype(str)
        for column in ("island", "sex"):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        return Dataset(name="penguins", X=frame, y=y, source="palmerpenguins")
    from sklearn import datasets

    loader = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}[name]
    bunch = loader(as_frame=True)
    names = [str(n) for n in bunch.target_names]
    y = bunch.target.map(lambda k: names[int(k)]).astype(str)
    return Dataset(name=name.replace("_", "-"), X=bunch.data, y=y, source=f"sklearn.{loader.__name__}")


def _read_table(source: str, s3_client) -> pd.DataFrame:
    try:
        if source.startswith("s3://"):
            bucket, _, key = source[5:].partition("/")
            if s3_client is None:
                import boto3

                s3_client = boto3.client("s3")
            data = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
            handle: Any = io.BytesIO(data)
        else:
            if not Path(source).exists():
                raise DataError(f"{source}: no such file")
            handle = source
        if source.endswith((".parquet", ".pq")):
            return pd.read_parquet(handle)
        if source.endswith((".csv", ".csv.gz", ".txt")):
            return pd.read_csv(handle)
        raise DataError(f"{source}: unknown file type; use .csv or .parquet")
    except DataError:
        raise
    except Exception as error:  # the parsers' errors, told as what they mean to the user
        raise DataError(f"{source}: could not be read as a table: {error}") from error


def validate(data: Dataset, folds: int, constant_columns: str = "error") -> None:
    """Reject data that cannot train a sound model, naming the column or class."""
    if len(data.X) == 0:
        raise DataError(f"{data.name}: no rows")
    if data.X.shape[1] == 0:
        raise DataError(f"{data.name}: no feature columns")
    problems, constant = [], []
    for column in data.X.columns:
        values = data.X[column]
        if values.isna().all():
            problems.append(f"column {column!r} is empty")
        elif values.nunique(dropna=False) == 1:
            constant.append(f"column {column!r} is constant ({values.iloc[0]!r})")
    if constant and constant_columns == "keep":
        LOG.warning("%s: keeping %d constant columns (no tree splits on them): %s",
                    data.name, len(constant), "; ".join(constant))
    elif constant:
        problems += constant
        problems.append("to train with them anyway: --set constant_columns=keep")
    if problems:
        raise DataError(f"{data.name}: " + "; ".join(problems))
    counts = data.y.value_counts()
    if len(counts) < 2:
        raise DataError(f"{data.name}: the target has a single class {counts.index[0]!r}")
    # the test split takes a share, then each class needs a row in every fold
    needed = folds + 2
    small = {str(k): int(v) for k, v in counts.items() if v < needed}
    if small:
        raise DataError(
            f"{data.name}: classes with fewer than {needed} rows cannot be split into "
            f"{folds} folds and a test set: {small}"
        )


def infer_schema(X: pd.DataFrame) -> list[dict[str, Any]]:
    """numeric / categorical / boolean per column, with observed ranges and categories."""
    schema = []
    for column in X.columns:
        values = X[column]
        entry: dict[str, Any] = {"name": str(column), "nullable": bool(values.isna().any())}
        if pd.api.types.is_bool_dtype(values):
            entry["type"] = "boolean"
        elif pd.api.types.is_numeric_dtype(values):
            entry.update(
                type="numeric",
                dtype="integer" if pd.api.types.is_integer_dtype(values) else "float",
                min=_plain(values.min()),
                max=_plain(values.max()),
            )
        else:
            categories = sorted({str(v) for v in values.dropna().unique()})
            entry.update(type="categorical", categories=categories)
        schema.append(entry)
    return schema


def _plain(value) -> float | int | None:
    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def for_lightgbm(X: pd.DataFrame, schema: list[dict[str, Any]]) -> pd.DataFrame:
    """Categoricals as pandas categories in schema order: their codes are what serving sends."""
    out = X.copy()
    for feature in schema:
        name = feature["name"]
        if feature["type"] == "categorical":
            out[name] = pd.Categorical(X[name].astype("string").astype(object).where(X[name].notna(), None),
                                       categories=feature["categories"])
        elif feature["type"] == "boolean":
            out[name] = X[name].astype(float)
    return out


def for_catboost(X: pd.DataFrame, schema: list[dict[str, Any]]) -> pd.DataFrame:
    """Categoricals as strings; a missing value is a category of its own."""
    out = X.copy()
    for feature in schema:
        name = feature["name"]
        if feature["type"] == "categorical":
            out[name] = X[name].astype(object).where(X[name].notna(), MISSING_CATEGORY).astype(str)
        elif feature["type"] == "boolean":
            out[name] = X[name].astype(float)
    return out


def categorical_columns(schema: list[dict[str, Any]]) -> list[str]:
    return [f["name"] for f in schema if f["type"] == "categorical"]


def to_matrix(X: pd.DataFrame, schema: list[dict[str, Any]]) -> np.ndarray:
    """Rows as serving sees them: categorical codes in schema order, NaN for missing."""
    columns = []
    for feature in schema:
        values = X[feature["name"]]
        if feature["type"] == "categorical":
            codes = {c: float(i) for i, c in enumerate(feature["categories"])}
            columns.append(values.map(lambda v, codes=codes: codes.get(str(v), np.nan)
                                      if pd.notna(v) else np.nan).to_numpy(float))
        else:
            columns.append(values.to_numpy(dtype=float, na_value=np.nan))
    return np.column_stack(columns)


def to_instances(X: pd.DataFrame, schema: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as a client sends them to /predict."""
    rows = []
    for _, row in X.iterrows():
        instance = {}
        for feature in schema:
            value = row[feature["name"]]
            if pd.isna(value):
                instance[feature["name"]] = None
            elif feature["type"] == "categorical":
                instance[feature["name"]] = str(value)
            elif feature["type"] == "boolean":
                instance[feature["name"]] = bool(value)
            else:
                instance[feature["name"]] = _plain(value)
        rows.append(instance)
    return rows
