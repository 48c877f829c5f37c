"""Small real models for the tests: trained once per checkout, kept as plain files.

A case is a CatBoost or LightGBM model fitted on a built-in data set by the
project's own training code, exported to its served form, with the native
library's answers on the held-out rows and on *probe* rows made to sit where
the evaluators' rules matter: a feature exactly on a LightGBM threshold, a value
that only float32 rounds onto a CatBoost border, NaN in every column, zeros,
missing and unseen categories.

Cases are stored in .local/test-models/ (npz and JSON, never pickle), keyed by
the training code and the libraries' versions, so the serving tests, and the
mutation tester's forked workers, read arrays instead of training (LightGBM's
OpenMP can hang in a forked process). ``python -m tests.models`` builds them all
and writes .local/test-models/index.json; with TEST_MODELS_INDEX naming such an
index (as `make mutation` does), cases are only read, never built.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".local" / "test-models"
# What a case depends on: a change in any of these rebuilds the cases.
SOURCES = ["training/data.py", "training/families.py", "training/export.py",
           "functions/serving/model/format.py", "tests/models.py"]
PARAMS = {"catboost": {"depth": 4}, "lightgbm": {"num_leaves": 15, "max_depth": 5}}
CASES = {  # name: (data set, family, rounds, extra parameters); data sets are built in, or made below
    "bc-catboost": ("breast_cancer", "catboost", 40, {}),
    "bc-lightgbm": ("breast_cancer", "lightgbm", 40, {}),
    "bc-lightgbm-zero": ("breast_cancer", "lightgbm", 40, {"zero_as_missing": True}),
    "digits-catboost": ("digits", "catboost", 30, {}),
    "digits-lightgbm": ("digits", "lightgbm", 30, {}),
    "penguins-catboost": ("penguins", "catboost", 40, {}),
    "penguins-lightgbm": ("penguins", "lightgbm", 40, {}),
    "penguins-catboost-nanmax": ("penguins", "catboost", 40, {"nan_mode": "Max"}),
    "bc-lightgbm-short": ("breast_cancer", "lightgbm", 8, {}),
    "diabetes-catboost": ("diabetes", "catboost", 40, {}),
    "diabetes-lightgbm": ("diabetes", "lightgbm", 40, {}),
    "shops-catboost": ("shops", "catboost", 60, {}),
    "shops-lightgbm": ("shops", "lightgbm", 40, {}),
    "shops-catboost-combinations": ("shops", "catboost", 120, {"max_ctr_complexity": 4, "one_hot_max_size": 4}),
    # region (3 values) through CTRs too: combinations of two categoricals, whose SHAP value is shared
    "shops-catboost-pairs": ("shops", "catboost", 80, {"max_ctr_complexity": 2, "one_hot_max_size": 2}),
    "rides-catboost": ("rides", "catboost", 40, {}),
}


def shops():
    """A binary table with a categorical of more than 1,000 distinct values (CatBoost uses target
    statistics and their combinations), a small categorical, numbers with missing values and a date."""
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 3000
    shop = rng.integers(0, 1200, n)
    X = pd.DataFrame({
        "shop": [f"shop-{k}" for k in shop],
        "region": rng.choice(["north", "south", "east"], n),
        "price": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 10.0, n)),
        "day": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
    })
    good = shop % 7 < 3
    north = (X["region"] == "north").to_numpy()
    price = np.nan_to_num(X["price"].to_numpy())
    # good shops matter in the north and when dear: interactions CatBoost learns as combinations
    # of a CTR with a one-hot value and with a float split
    signal = 1.5 * (good & north) + 1.0 * (good & (price > 20)) + north + price / 80
    y = pd.Series(np.where(signal + rng.normal(0, 0.5, n) > 1.2, "bought", "left"))
    return X, y, "binary"


def rides():
    """A regression table: a categorical of 300 values, a timestamp, numbers."""
    import pandas as pd

    rng = np.random.default_rng(11)
    n = 1200
    street = rng.integers(0, 300, n)
    X = pd.DataFrame({
        "street": [f"street-{k}" for k in street],
        "km": rng.gamma(2.0, 3.0, n),
        "start": pd.to_datetime("2024-03-01") + pd.to_timedelta(rng.integers(0, 60 * 24 * 90, n), unit="min"),
    })
    y = pd.Series(3 + 2.5 * X["km"] + (street % 5) * 1.5 + X["start"].dt.hour / 4 + rng.normal(0, 1, n))
    return X, y, "regression"


MADE = {"shops": shops, "rides": rides}


@dataclass
class Case:
    """One model and its evidence, in the forms serving sees (matrices, JSON instances)."""

    name: str
    dataset: str
    family: str
    schema: list[dict[str, Any]]
    classes: list[str]
    task: str
    arrays: dict[str, np.ndarray]
    matrix: np.ndarray  # held-out rows as serving sees them
    instances: list[dict[str, Any]]  # the same rows as a client sends them
    labels: list[str]  # their true classes
    native: np.ndarray  # the native library's probabilities on them
    probes: np.ndarray  # rows made to sit on the evaluators' edges
    native_probes: np.ndarray
    native_raw: np.ndarray  # its raw scores before the link (n, outputs)
    native_probes_raw: np.ndarray
    native_shap: np.ndarray  # the native library's SHAP values on the held-out rows (n, outputs, columns + 1)
    native_probes_shap: np.ndarray

    def manifest_fields(self) -> dict[str, Any]:
        return {
            "framework": {"family": self.family},
            "feature_schema": self.schema,
            "classes": self.classes,
            "metrics": {"test": {"rmse": 1.5} if self.task == "regression" else {"f1_macro": 0.9}},
            "examples": [{"label": self.labels[0], "instance": self.instances[0]}],
        }

    def csv(self, rows: int | None = None) -> str:
        """Held-out rows as a CSV file a user drops for batch scoring (no id column)."""
        import csv

        out = io.StringIO()
        writer = csv.writer(out)
        names = [f["name"] for f in self.schema]
        writer.writerow(names)
        for instance in self.instances[:rows]:
            writer.writerow(["" if instance[n] is None else instance[n] for n in names])
        return out.getvalue()


def _key(name: str) -> str:
    digest = hashlib.sha256(repr(CASES[name]).encode())
    for path in SOURCES:
        digest.update((ROOT / path).read_bytes())
    for package in ("catboost", "lightgbm", "numpy", "scikit-learn", "pandas"):
        digest.update(f"{package}={metadata.version(package)}".encode())
    return digest.hexdigest()[:16]


INDEX = CACHE / "index.json"
_loaded: dict[str, Case] = {}


def case(name: str) -> Case:
    """The case, from the cache when it is current, else trained now and stored."""
    if name in _loaded:
        return _loaded[name]
    frozen = os.environ.get("TEST_MODELS_INDEX")
    if frozen:  # built beforehand: the code under test here may be a mutant
        _loaded[name] = _read(name, Path(json.loads(Path(frozen).read_text())[name]))
    else:
        folder = CACHE / f"{name}-{_key(name)}"
        if not (folder / "case.json").exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            with open(CACHE / f".{name}.lock", "w") as lock:  # two test workers: one builds, one waits
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not (folder / "case.json").exists():
                    for stale in CACHE.glob(f"{name}-*"):
                        shutil.rmtree(stale)
                    _build(name, folder)
        _loaded[name] = _read(name, folder)
    return _loaded[name]


def _read(name: str, folder: Path) -> Case:
    meta = json.loads((folder / "case.json").read_text())
    with np.load(folder / "model.npz", allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    with np.load(folder / "evidence.npz", allow_pickle=False) as npz:
        evidence = {key: npz[key] for key in npz.files}
    return Case(name=name, arrays=arrays, **meta, **evidence)


def _build(name: str, folder: Path) -> None:
    from training import data as D
    from training import families

    dataset, family, rounds, extra = CASES[name]
    if dataset in MADE:
        X, y, task = MADE[dataset]()
    else:
        data = D.load(dataset)
        X, y, task = data.X, data.y, data.task
    schema = D.infer_schema(X)
    order = np.random.default_rng(0).permutation(len(X))  # built-in sets are sorted by class
    X, y = X.iloc[order], y.iloc[order]
    cut = int(len(X) * 0.8)
    X_train, X_test = X.iloc[:cut], X.iloc[cut:]
    fitted = families.fit(family, {**PARAMS[family], **extra}, X_train, y.iloc[:cut], schema, task=task,
                          seed=0, threads=1, rounds=rounds)
    arrays = fitted.export(schema)
    probes = _probes(arrays, X_test, schema)
    evidence = {
        "matrix": D.to_matrix(X_test, schema),
        "native": fitted.predict(X_test, schema),
        "probes": D.to_matrix(probes, schema),
        "native_probes": fitted.predict(probes, schema),
        "native_raw": fitted.raw(X_test, schema),
        "native_probes_raw": fitted.raw(probes, schema),
        "native_shap": fitted.shap(X_test, schema),
        "native_probes_shap": fitted.shap(probes, schema),
    }
    meta = {"dataset": dataset, "family": family, "schema": schema, "classes": fitted.classes, "task": task,
            "instances": D.to_instances(X_test, schema), "labels": y.iloc[cut:].tolist()}
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "model.npz", **arrays)
    np.savez(folder / "evidence.npz", **evidence)
    (folder / "case.json").write_text(json.dumps(meta))  # last: a case without it is incomplete


def frame(matrix: np.ndarray, schema: list[dict[str, Any]]):
    """Rows as serving sees them (codes, NaN) → the table training gives the native libraries
    (schemas without dates: a date's parts do not make it again)."""
    import pandas as pd

    columns = {}
    for j, feature in enumerate(schema):
        values = matrix[:, j]
        if feature["type"] == "categorical":
            categories = feature["categories"]
            columns[feature["name"]] = pd.Series(
                [None if np.isnan(v) else categories[int(v)] for v in values], dtype=object)
        else:
            columns[feature["name"]] = values
    return pd.DataFrame(columns)


def _probes(arrays: dict[str, np.ndarray], X, schema):
    """Held-out rows changed to sit on the edges of the evaluators' rules: a table of them."""
    import pandas as pd

    from training import data as D

    rng = np.random.default_rng(0)
    columns = D.model_columns(schema)
    numeric = [f["name"] for f in schema if f["type"] == "numeric"]
    categorical = [f["name"] for f in schema if f["type"] == "categorical"]
    base = X.iloc[rng.integers(0, len(X), 400)].reset_index(drop=True)
    rows = []
    if str(arrays["layout"]) == "nodes":
        split = (arrays["left"] != np.arange(len(arrays["left"]))) & ~arrays["is_categorical"]
        edges = list(zip(arrays["feature"][split], arrays["threshold"][split], strict=True))
    else:  # a value float64 sees above a border and float32 rounds onto it
        level = ~arrays["is_equal"] & np.isfinite(arrays["borders"])
        levels = list(zip(arrays["features"][level], arrays["borders"][level].astype(np.float64), strict=True))
        edges = [(f, np.nextafter(b, np.inf)) for f, b in levels] + levels
    # only a column that is a plain number can be set on an edge (not a date's part, not a CTR)
    edges = [(columns[f], value) for f, value in edges if f < len(columns) and columns[f] in numeric]
    for i, (column, value) in enumerate(edges[:300]):
        row = base.iloc[[i % len(base)]].copy()
        row[column] = value
        rows.append(row)
    for i in range(40):  # NaN in a growing share of the numeric columns; zeros
        row = base.iloc[[i]].copy()
        row[numeric[: 1 + i % max(len(numeric), 1)]] = np.nan if i % 2 else 0.0
        rows.append(row)
    kzero = float(np.float32(1e-35))  # LightGBM reads |x| <= 1e-35f as 0, and 1e-35f > 1e-35
    for i, tiny in enumerate((1e-35, -1e-35, 2e-35, -2e-35, 1e-36, kzero, -kzero, np.nextafter(kzero, 1))):
        for column in numeric:
            row = base.iloc[[200 + i]].copy()
            row[column] = tiny
            rows.append(row)
    for i in range(20):  # missing categories
        row = base.iloc[[100 + i]].copy()
        row[categorical] = None
        rows.append(row)
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    for name in CASES:
        built = case(name)
        print(f"{name}: {built.matrix.shape[0]} held-out rows, {built.probes.shape[0]} probes")
    INDEX.write_text(json.dumps({name: str(CACHE / f"{name}-{_key(name)}") for name in CASES}, indent=2))


if __name__ == "__main__":
    main()
