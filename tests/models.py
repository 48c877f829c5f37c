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
           "functions/serving/model_format.py", "tests/models.py"]
PARAMS = {"catboost": {"depth": 4}, "lightgbm": {"num_leaves": 15, "max_depth": 5}}
CASES = {  # name: (data set, family, rounds, extra parameters)
    "bc-catboost": ("breast_cancer", "catboost", 40, {}),
    "bc-lightgbm": ("breast_cancer", "lightgbm", 40, {}),
    "bc-lightgbm-zero": ("breast_cancer", "lightgbm", 40, {"zero_as_missing": True}),
    "digits-catboost": ("digits", "catboost", 30, {}),
    "digits-lightgbm": ("digits", "lightgbm", 30, {}),
    "penguins-catboost": ("penguins", "catboost", 40, {}),
    "penguins-lightgbm": ("penguins", "lightgbm", 40, {}),
    "penguins-catboost-nanmax": ("penguins", "catboost", 40, {"nan_mode": "Max"}),
    "bc-lightgbm-short": ("breast_cancer", "lightgbm", 8, {}),
}


@dataclass
class Case:
    """One model and its evidence, in the forms serving sees (matrices, JSON instances)."""

    name: str
    dataset: str
    family: str
    schema: list[dict[str, Any]]
    classes: list[str]
    arrays: dict[str, np.ndarray]
    matrix: np.ndarray  # held-out rows as serving sees them
    instances: list[dict[str, Any]]  # the same rows as a client sends them
    labels: list[str]  # their true classes
    native: np.ndarray  # the native library's probabilities on them
    probes: np.ndarray  # rows made to sit on the evaluators' edges
    native_probes: np.ndarray

    def manifest_fields(self) -> dict[str, Any]:
        return {
            "framework": {"family": self.family},
            "feature_schema": self.schema,
            "classes": self.classes,
            "metrics": {"test": {"f1_macro": 0.9}},
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
    data = D.load(dataset)
    schema = D.infer_schema(data.X)
    order = np.random.default_rng(0).permutation(len(data.X))  # built-in sets are sorted by class
    X, y = data.X.iloc[order], data.y.iloc[order]
    cut = int(len(X) * 0.8)
    X_train, X_test = X.iloc[:cut], X.iloc[cut:]
    fitted = families.fit(family, {**PARAMS[family], **extra}, X_train, y.iloc[:cut], schema,
                          seed=0, threads=1, rounds=rounds)
    arrays = fitted.export(X_train, schema)
    matrix = D.to_matrix(X_test, schema)
    probes = _probes(arrays, matrix, schema)
    evidence = {
        "matrix": matrix,
        "native": fitted.predict(X_test, schema),
        "probes": probes,
        "native_probes": fitted.predict(frame(probes, schema), schema),
    }
    meta = {"dataset": dataset, "family": family, "schema": schema, "classes": fitted.classes,
            "instances": D.to_instances(X_test, schema), "labels": y.iloc[cut:].tolist()}
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "model.npz", **arrays)
    np.savez(folder / "evidence.npz", **evidence)
    (folder / "case.json").write_text(json.dumps(meta))  # last: a case without it is incomplete


def frame(matrix: np.ndarray, schema: list[dict[str, Any]]):
    """Rows as serving sees them (codes, NaN) → the table training gives the native libraries."""
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


def _probes(arrays: dict[str, np.ndarray], matrix: np.ndarray, schema) -> np.ndarray:
    """Rows on the edges of the evaluators' rules, built from real held-out rows."""
    rng = np.random.default_rng(0)
    numeric = [j for j, f in enumerate(schema) if f["type"] != "categorical"]
    rows = []
    base = matrix[rng.integers(0, len(matrix), 400)]
    if str(arrays["layout"]) == "nodes":
        split = (arrays["left"] != np.arange(len(arrays["left"]))) & ~arrays["is_categorical"]
        edges = list(zip(arrays["feature"][split], arrays["threshold"][split], strict=True))
    else:  # a value float64 sees above a border and float32 rounds onto it
        level = ~arrays["is_equal"] & np.isfinite(arrays["borders"])
        borders = arrays["borders"][level].astype(np.float64)
        levels = list(zip(arrays["features"][level], borders, strict=True))
        edges = [(f, np.nextafter(b, np.inf)) for f, b in levels] + levels
    for i, (feature, value) in enumerate(edges[:300]):
        row = base[i % len(base)].copy()
        row[feature] = value
        rows.append(row)
    for i in range(40):  # NaN in a growing share of the numeric columns; zeros
        row = base[i].copy()
        row[numeric[: 1 + i % len(numeric)]] = np.nan if i % 2 else 0.0
        rows.append(row)
    kzero = float(np.float32(1e-35))  # LightGBM reads |x| <= 1e-35f as 0, and 1e-35f > 1e-35
    for i, tiny in enumerate((1e-35, -1e-35, 2e-35, -2e-35, 1e-36, kzero, -kzero, np.nextafter(kzero, 1))):
        for j in numeric:
            row = base[200 + i].copy()
            row[j] = tiny
            rows.append(row)
    categorical = [j for j, f in enumerate(schema) if f["type"] == "categorical"]
    for i in range(20):  # missing categories
        row = base[100 + i].copy()
        row[categorical] = np.nan
        rows.append(row)
    return np.array(rows)


def main() -> None:
    for name in CASES:
        built = case(name)
        print(f"{name}: {built.matrix.shape[0]} held-out rows, {built.probes.shape[0]} probes")
    INDEX.write_text(json.dumps({name: str(CACHE / f"{name}-{_key(name)}") for name in CASES}, indent=2))


if __name__ == "__main__":
    main()
