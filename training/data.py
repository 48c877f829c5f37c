"""Data sets in, validated tables and a feature schema out.

Sources: the built-in data sets that ship inside packages (``breast_cancer``,
``digits``, ``diabetes`` from scikit-learn; ``penguins`` from palmerpenguins), or
a CSV / Parquet file from a path or an ``s3://`` URI with a target column.

The task is read off the target (a numeric target with many distinct values is
regression, anything else classification; ``task:`` in the config overrides).
Before any training, ``screen`` looks at every column as a user's table has them:
- ID-like columns (a value per row: names, keys, row numbers) are left out with
  a warning that names them, and recorded; ``drop_columns`` and ``id_column``
  in the config make it explicit;
- ISO dates and timestamps become a datetime feature (one numeric column per
  part, by the function serving uses: ``serving.schema.datetime_parts``);
- free text (long strings, mostly distinct) is refused, naming the column.
Everything wrong with the data is reported before any training starts; nothing
is dropped silently.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from serving.model.features import DATE_PARTS, TIME_PARTS, FeatureSchema, datetime_parts

LOG = logging.getLogger("training")
BUILT_IN = ("breast_cancer", "digits", "penguins", "diabetes")
TASKS = ("binary", "multiclass", "regression")
MISSING_CATEGORY = "<missing>"  # CatBoost's own category for a missing value
REGRESSION_MIN_VALUES = 20  # a numeric target with more distinct values than this is regression
TEXT_MIN_WORDS = 3.0  # a string column averaging this many words, mostly distinct, is free text


class DataError(ValueError):
    """The data cannot be trained on; the message says why."""


@dataclass
class Dataset:
    name: str
    X: pd.DataFrame
    y: pd.Series  # class labels as strings, or float values for regression
    source: str
    task: str = "binary"
    target: str | None = None
    dropped: list[dict[str, str]] = field(default_factory=list)  # columns left out, and why

    @property
    def classes(self) -> list[str]:
        # the order CatBoost and LightGBM give their probability columns
        return [] if self.task == "regression" else sorted(self.y.unique().tolist())

    def sha256(self) -> str:
        """A fingerprint of exactly the rows and columns trained on."""
        frame = self.X.assign(__target__=self.y)
        hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        digest = hashlib.sha256(hashed.tobytes())
        digest.update("|".join(map(str, frame.columns)).encode())
        return digest.hexdigest()


def load(source: str, target: str | None = None, s3_client=None, task: str | None = None,
         sheet: str | int | None = None) -> Dataset:
    if source in BUILT_IN:
        name, X, y, origin, default_target = _built_in(source)
    else:
        if target is None:
            raise DataError(f"{source}: give the target column (--set target=NAME) for a file data set")
        X = _read_table(source, s3_client, sheet)
        if target not in X.columns:
            raise DataError(f"{source}: no target column {target!r}; columns are: "
                            f"{', '.join(map(str, X.columns))}")
        y = X.pop(target)
        if y.isna().any():
            raise DataError(f"{source}: the target {target!r} is missing in {int(y.isna().sum())} rows")
        name = Path(source.split("?")[0]).stem.replace("_", "-").lower()
        origin, default_target = source, target
    task = task or detect_task(y)
    if task not in TASKS:
        raise DataError(f"task {task!r}: use one of {', '.join(TASKS)}")
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(y):
            raise DataError(f"{name}: a regression target must be numeric; {default_target!r} is not")
        y = y.astype(float)
        if not np.isfinite(y).all():
            raise DataError(f"{name}: the target {default_target!r} has infinite values")
    else:
        y = y.astype(str)
        found = "binary" if y.nunique() == 2 else "multiclass"
        if y.nunique() >= 2 and found != task:
            raise DataError(f"{name}: task {task!r}, but the target has {y.nunique()} classes")
    return Dataset(name=name, X=X, y=y, source=origin, task=task, target=default_target)


def detect_task(y: pd.Series) -> str:
    """Regression for a numeric target with many distinct values; classification otherwise."""
    if (pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
            and y.nunique() > REGRESSION_MIN_VALUES):
        return "regression"
    return "binary" if y.nunique() <= 2 else "multiclass"


def _built_in(name: str) -> tuple[str, pd.DataFrame, pd.Series, str, str]:
    if name == "penguins":
        from palmerpenguins import load_penguins

        frame = load_penguins()
        y = frame.pop("species").astype(str)
        for column in ("island", "sex"):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        return "penguins", frame, y, "palmerpenguins", "species"
    from sklearn import datasets

    loader = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits,
              "diabetes": datasets.load_diabetes}[name]
    bunch = loader(as_frame=True)
    if name == "diabetes":
        y = bunch.target.astype(float)
    else:
        names = [str(n) for n in bunch.target_names]
        y = bunch.target.map(lambda k: names[int(k)]).astype(str)
    return name.replace("_", "-"), bunch.data, y, f"sklearn.{loader.__name__}", "target"


DELIMITERS = ",;\t|"


def _read_delimited(source: str, handle) -> pd.DataFrame:
    """A delimited text file as spreadsheets write it: the delimiter (comma, semicolon, tab or pipe)
    found in its first 64 KiB; where it is a semicolon, a decimal comma is read as a decimal point."""
    import gzip

    compressed = source.endswith(".gz")
    raw = open(handle, "rb") if isinstance(handle, str) else io.BytesIO(handle.getvalue())  # noqa: SIM115
    with gzip.GzipFile(fileobj=raw) if compressed else raw as file:  # only the head is read here
        head = file.read(1 << 16)
    raw.close()
    delimiter = _delimiter(head.decode("utf-8", "replace"))
    return pd.read_csv(handle, sep=delimiter, decimal="," if delimiter == ";" else ".",
                       compression="gzip" if compressed else "infer")


def _delimiter(text: str) -> str:
    """The delimiter csv.Sniffer finds among comma, semicolon, tab and pipe; a comma when none."""
    import csv

    try:
        return csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column, or lines it cannot tell apart
        return ","


def _read_table(source: str, s3_client, sheet: str | int | None = None) -> pd.DataFrame:
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
        if source.endswith((".xlsx", ".xlsm")):
            return pd.read_excel(handle, sheet_name=sheet if sheet is not None else 0, engine="openpyxl")
        if source.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
            return _read_delimited(source, handle)
        raise DataError(f"{source}: unknown file type; use .csv (or .tsv, .txt), .parquet or .xlsx")
    except DataError:
        raise
    except Exception as error:  # the parsers' errors, told as what they mean to the user
        raise DataError(f"{source}: could not be read as a table: {error}") from error


def screen(data: Dataset, drop_columns: list[str] | None = None, id_column: str | None = None,
           constant_columns: str = "keep") -> Dataset:
    """Leave out the columns that must not be features, read dates, refuse free text; before tuning.

    ``constant_columns="drop"`` leaves out a column of one value too (unless every column is one:
    ``validate`` refuses that table), recorded as the others are.
    """
    X = data.X.copy()
    dropped = []
    asked = [*(drop_columns or []), *([id_column] if id_column else [])]
    unknown = [c for c in asked if c not in X.columns]
    if unknown:
        raise DataError(f"{data.name}: drop_columns/id_column name columns the data does not have: "
                        f"{', '.join(map(str, unknown))}")
    for column in asked:
        reason = "the row id" if column == id_column else "dropped by the configuration"
        dropped.append({"name": str(column), "reason": reason})
    X = X.drop(columns=asked)
    for column in list(X.columns):
        reason = _id_like(X[column])
        if reason:
            dropped.append({"name": str(column), "reason": reason})
            X = X.drop(columns=[column])
        elif _is_text(X[column]):
            dates = _as_datetime(X[column])
            if dates is None:
                raise DataError(_text_message(data.name, column, X[column]))
            X[column] = dates
        else:
            dates = _as_datetime(X[column])
            if dates is not None:
                X[column] = dates
    constant = [c for c in X.columns if X[c].nunique(dropna=False) == 1]
    if constant_columns == "drop" and 0 < len(constant) < X.shape[1]:
        for column in constant:
            dropped.append({"name": str(column), "reason": f"constant: {X[column].iloc[0]!r} in every row"})
        X = X.drop(columns=constant)
    automatic = [d for d in dropped if d["reason"] not in ("dropped by the configuration", "the row id")
                 and not d["reason"].startswith("constant")]
    if automatic:
        LOG.warning("%s: left out %d ID-like columns (they identify rows, they do not describe them): %s",
                    data.name, len(automatic), "; ".join(f"{d['name']} ({d['reason']})" for d in automatic))
    return Dataset(data.name, X, data.y, data.source, data.task, data.target, data.dropped + dropped)


ROW_ID_REASONS = ("the row id", "a different value in every row",
                  "a row counter: consecutive integers, one per row")


def id_column(dropped: list[dict[str, str]]) -> str | None:
    """The column that names a row: the one declared as ``id_column``, else the first found ID-like
    (row names before a row counter), else None. Batch outputs take their row ids from it."""
    for reason in ROW_ID_REASONS:
        for column in dropped:
            if column["reason"] == reason:
                return column["name"]
    return None


def _id_like(values: pd.Series) -> str | None:
    """Why a column identifies rows rather than describes them, or None."""
    n = len(values)
    if n < 20 or values.isna().any() or values.nunique() != n:
        return None
    if pd.api.types.is_integer_dtype(values) and int(values.max()) - int(values.min()) == n - 1:
        return "a row counter: consecutive integers, one per row"
    if _is_strings(values) and _as_datetime(values) is None:
        return "a different value in every row"
    return None


def _is_strings(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values) or values.dtype == object


def _is_text(values: pd.Series) -> bool:
    """Strings of several words, mostly distinct: descriptions, comments, not categories."""
    if not _is_strings(values):
        return False
    present = values.dropna().astype(str)
    if present.empty:
        return False
    distinct = present.nunique() / len(present)
    words = present.str.split().str.len().mean()
    return distinct > 0.5 and words >= TEXT_MIN_WORDS


def _text_message(name: str, column, values: pd.Series) -> str:
    present = values.dropna().astype(str)
    return (f"{name}: column {column!r} looks like free text ({present.nunique()} distinct values, "
            f"{present.str.split().str.len().mean():.1f} words on average), which the models cannot use as "
            f"a category: leave it out (--set drop_columns=[{column}]) or turn it into features first")


def _as_datetime(values: pd.Series) -> pd.Series | None:
    """The column as timestamps when it holds ISO dates or timestamps (or already is), else None."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if not _is_strings(values):
        return None
    present = values.dropna()
    if present.empty or not present.map(lambda v: isinstance(v, str)).all():
        return None
    sample = present.iloc[: min(len(present), 200)]
    try:
        for text in sample:  # what serving accepts is what training accepts
            datetime_parts(text, ["year"])
    except ValueError:
        return None
    parsed = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
    if parsed[values.notna()].isna().any():
        return None
    return parsed.dt.tz_localize(None)


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
    if constant and len(constant) == data.X.shape[1]:
        problems.append("every column is constant: there is nothing to learn from")
    elif constant and constant_columns == "keep":
        LOG.warning("%s: keeping %d constant columns (no tree splits on them): %s",
                    data.name, len(constant), "; ".join(constant))
    elif constant:
        problems += constant
        problems.append("to leave them out: --set constant_columns=drop; to train with them: "
                        "--set constant_columns=keep")
    if problems:
        raise DataError(f"{data.name}: " + "; ".join(problems))
    if data.task == "regression":
        if data.y.nunique() < 2:
            raise DataError(f"{data.name}: the target is constant ({data.y.iloc[0]!r})")
        if len(data.y) < folds + 2:
            raise DataError(f"{data.name}: {len(data.y)} rows cannot make {folds} folds and a test set")
        return
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
    """numeric / categorical / boolean / datetime per column, with observed ranges and categories."""
    schema = []
    for column in X.columns:
        values = X[column]
        entry: dict[str, Any] = {"name": str(column), "nullable": bool(values.isna().any())}
        if pd.api.types.is_bool_dtype(values):
            entry["type"] = "boolean"
        elif pd.api.types.is_datetime64_any_dtype(values):
            present = values.dropna()
            has_time = bool((present != present.dt.normalize()).any())
            entry.update(type="datetime", parts=DATE_PARTS + (TIME_PARTS if has_time else []),
                         min=present.min().isoformat(), max=present.max().isoformat())
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


def model_columns(schema: list[dict[str, Any]]) -> list[str]:
    """The columns the model reads: a datetime feature is one column per part."""
    return FeatureSchema(schema).columns


def categorical_columns(schema: list[dict[str, Any]]) -> list[str]:
    return [f["name"] for f in schema if f["type"] == "categorical"]


def _datetime_matrix(values: pd.Series, parts: list[str]) -> np.ndarray:
    """A datetime column → one column per part, by serving's own function (NaN where missing)."""
    out = np.full((len(values), len(parts)), np.nan)
    for i, value in enumerate(values):
        if not pd.isna(value):  # a timestamp, or the ISO text a client would send
            out[i] = datetime_parts(value if isinstance(value, str) else value.isoformat(), parts)
    return out


def _model_frame(X: pd.DataFrame, schema: list[dict[str, Any]], categorical) -> pd.DataFrame:
    columns = {}
    for feature in schema:
        name = feature["name"]
        if feature["type"] == "categorical":
            columns[name] = categorical(X[name], feature)
        elif feature["type"] == "boolean":
            columns[name] = X[name].astype(float)
        elif feature["type"] == "datetime":
            parts = _datetime_matrix(X[name], feature["parts"])
            for j, part in enumerate(feature["parts"]):
                columns[f"{name}.{part}"] = parts[:, j]
        else:
            columns[name] = X[name]
    return pd.DataFrame(columns, index=X.index)


def for_lightgbm(X: pd.DataFrame, schema: list[dict[str, Any]]) -> pd.DataFrame:
    """Categoricals as pandas categories in schema order: their codes are what serving sends."""
    def categorical(values, feature):
        text = values.astype("string").astype(object).where(values.notna(), None)
        return pd.Categorical(text, categories=feature["categories"])

    return _model_frame(X, schema, categorical)


def for_catboost(X: pd.DataFrame, schema: list[dict[str, Any]]) -> pd.DataFrame:
    """Categoricals as strings; a missing value is a category of its own."""
    def categorical(values, feature):
        return values.astype(object).where(values.notna(), MISSING_CATEGORY).astype(str)

    return _model_frame(X, schema, categorical)


def to_matrix(X: pd.DataFrame, schema: list[dict[str, Any]]) -> np.ndarray:
    """Rows as serving sees them: categorical codes in schema order, NaN for missing, date parts."""
    columns = []
    for feature in schema:
        values = X[feature["name"]]
        if feature["type"] == "categorical":
            codes = {c: float(i) for i, c in enumerate(feature["categories"])}
            columns.append(values.map(lambda v, codes=codes: codes.get(str(v), np.nan)
                                      if pd.notna(v) else np.nan).to_numpy(float)[:, None])
        elif feature["type"] == "datetime":
            columns.append(_datetime_matrix(values, feature["parts"]))
        else:
            columns.append(values.to_numpy(dtype=float, na_value=np.nan)[:, None])
    return np.hstack(columns)


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
            elif feature["type"] == "datetime":  # a timestamp, or the ISO text a CSV holds
                instance[feature["name"]] = value if isinstance(value, str) else value.isoformat()
            else:
                instance[feature["name"]] = _plain(value)
        rows.append(instance)
    return rows
