"""The model bundle: the contract between training (writes) and serving (reads).

Layout in the model bucket, for a model called ``<name>``::

    models/<name>/versions/000007/manifest.json     what the version is (below)
    models/<name>/versions/000007/model.npz         the served model (serving.model_format)
    models/<name>/versions/000007/<native file>     model.cbm / model.txt, for re-scoring
    models/<name>/champion.json                     the champion pointer
    models/<name>/champion-history/<time>-000007.json  every promotion, kept

A version is immutable: every object is written with ``If-None-Match: *``, so a
second writer of the same version fails instead of overwriting, and the
publisher moves on to the next number. The manifest is written last; a version
without a manifest is incomplete and is never served.

The manifest holds: format version, name, version, created_at, task, framework,
feature_schema (name, type, range, categories, nullable), classes, metrics,
hyperparameters, lineage (data set, sha256 of the training data, rows, code
revision, tracking run), example rows, and the sha256 and size of every file.
A bundle is checked when it is published and again when it is loaded: the
arrays against ``serving.model_format``, the manifest against them (task,
classes), the files against their checksums. What fails is refused with a
message that names it.
The champion pointer names a version and the sha256 of its manifest; it is one
small object replaced in one PUT (atomic in S3), and bucket versioning plus the
history prefix keep every earlier pointer.

This module is the format alone (names, keys, the manifest's rules, the arrays'
encoding); ``serving.store.bundles`` reads and writes it in the bucket. It
imports no evaluator: serving and training both import it.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.model import format as model_format
from serving.model.features import FEATURE_TYPES

FORMAT_VERSION = 2  # 2: the task is in model.npz and the manifest; 1 is read and upgraded
READABLE_FORMATS = (1, 2)
MODEL_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"


class BundleError(Exception):
    """A bundle that is missing, incomplete or does not match its checksums."""


class VersionExists(BundleError):
    pass


NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
NAME_RULE = "1-64 characters: lowercase letters, digits, '.', '_' and '-', starting and ending alphanumeric"


def check_name(name: str) -> str:
    """A model name that is safe inside an S3 key (no '/', no '..'); else ValueError saying the rule."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ValueError(f"model name {name!r} is not valid: {NAME_RULE}")
    return name


def model_prefix(name: str) -> str:
    return f"models/{check_name(name)}/"


def version_prefix(name: str, version: int) -> str:
    return f"{model_prefix(name)}versions/{version:06d}/"


def champion_key(name: str) -> str:
    return f"{model_prefix(name)}champion.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # uncompressed: loads faster, the zip of the package compresses
    return buffer.getvalue()


def decode_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a model.npz; never unpickles (whoever writes a bundle must not run code)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (ValueError, OSError, EOFError) as error:  # not a zip, a truncated file, an object array
        raise BundleError(f"{MODEL_FILE} cannot be read as plain arrays: {error}") from None


def upgrade_format_1(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Format 1 had no task (classifiers only), no CTRs, no leaf counts and, for CatBoost, no n_outputs.

    Its leaf counts are unknown: zeros (the evaluator does not read them; explanations need them).
    """
    arrays = dict(arrays)
    arrays["task"] = np.array("binary" if str(arrays.get("link")) == "sigmoid" else "multiclass")
    if "bias" not in arrays:
        arrays["count"] = np.zeros(arrays["value"].shape)
        return arrays
    arrays["n_outputs"] = np.array(arrays["bias"].shape[0], np.int32)
    arrays["leaf_weights"] = np.zeros(arrays["leaf_values"].shape[:2])
    arrays["cat_hash_offset"] = np.zeros(int(arrays["n_features"]) + 1, np.int32)
    arrays["ctr_offset"] = np.zeros(1, np.int32)
    empty = {"cat_hashes": np.uint64, "element_projection": np.int32, "element_kind": np.int8,
             "element_column": np.int32, "element_border": np.float32, "element_nan_true": bool,
             "element_code": np.float64, "ctr_projection": np.int32, "ctr_keys": np.uint64,
             "ctr_values": np.float32, "ctr_default": np.float32}
    for name, dtype in empty.items():
        arrays[name] = np.zeros(0, dtype)
    return arrays


@dataclass(frozen=True)
class Bundle:
    """A manifest and its model arrays, checked against each other when built."""

    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        try:
            header = model_format.check(self.arrays)
        except model_format.FormatError as error:
            raise BundleError(f"{MODEL_FILE}: {error}") from None
        _check_manifest(self.manifest, header)
        object.__setattr__(self, "header", header)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> int:
        return int(self.manifest["version"])

    @property
    def task(self) -> str:
        return self.header.task

    @property
    def feature_schema(self) -> list[dict[str, Any]]:
        return self.manifest["feature_schema"]

    @property
    def classes(self) -> list:
        return self.manifest.get("classes") or []

    @property
    def ignored_columns(self) -> list[str]:
        """Columns of the training table the model does not read (those training left out, and the
        target): a request or a batch file may carry them, and they are ignored."""
        features = {f["name"] for f in self.feature_schema}
        names = [d["name"] for d in self.manifest.get("dropped_columns") or []]
        if self.manifest.get("target") is not None:
            names.append(self.manifest["target"])
        return [name for name in dict.fromkeys(names) if name not in features]

    @property
    def decision_threshold(self) -> float | None:
        """A binary model's label threshold on the second class's probability (None: the likelier class)."""
        return self.manifest.get("decision_threshold")

    @property
    def id_column(self) -> str | None:
        """The column that names a row (declared, or found ID-like at training), or None."""
        return self.manifest.get("id_column")


def _check_manifest(manifest: dict[str, Any], header: model_format.Header) -> None:
    """The manifest fields serving relies on, and their agreement with the arrays."""
    def refuse(message: str) -> None:
        raise BundleError(f"{MANIFEST_FILE}: {message}")

    for key in ("name", "version", "feature_schema"):
        if key not in manifest:
            refuse(f"{key} is missing")
    schema = manifest["feature_schema"]
    if not isinstance(schema, list) or not schema:
        refuse("feature_schema must be a non-empty list")
    names = []
    for i, feature in enumerate(schema):
        if not isinstance(feature, dict) or not isinstance(feature.get("name"), str):
            refuse(f"feature_schema[{i}] has no name")
        if feature.get("type") not in FEATURE_TYPES:
            refuse(f"feature {feature['name']!r} has type {feature.get('type')!r}, "
                   f"expected one of {', '.join(FEATURE_TYPES)}")
        names.append(feature["name"])
    if len(set(names)) != len(names):
        refuse("feature names are not unique")
    dropped = manifest.get("dropped_columns") or []
    if not isinstance(dropped, list) or not all(isinstance(d, dict) and isinstance(d.get("name"), str)
                                                for d in dropped):
        refuse("dropped_columns must be a list of objects with a name")
    for key in ("target", "id_column"):
        if manifest.get(key) is not None and not isinstance(manifest[key], str):
            refuse(f"{key} must be a column name")
    threshold = manifest.get("decision_threshold")
    if threshold is not None and (header.task != "binary" or isinstance(threshold, bool)
                                  or not isinstance(threshold, int | float) or not 0 < threshold < 1):
        refuse(f"decision_threshold {threshold!r}: a binary model's is a number between 0 and 1")
    task = manifest.get("task", header.task)
    if task != header.task:
        refuse(f"task {task!r} but {MODEL_FILE} holds a {header.task} model")
    classes = manifest.get("classes") or []
    expected = {"binary": 2, "multiclass": header.n_outputs, "regression": 0}[header.task]
    if len(classes) != expected:
        refuse(f"{len(classes)} classes for a {header.task} model with {header.n_outputs} outputs; "
               f"expected {expected}")


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a listing of models shows of a version: its task, classes or target, held-out metrics."""
    test = (manifest.get("metrics") or {}).get("test") or {}
    return {
        "task": manifest.get("task", "binary" if len(manifest.get("classes") or []) == 2 else "multiclass"),
        "classes": manifest.get("classes") or [],
        "target": manifest.get("target"),
        "metrics": {k: v for k, v in test.items() if isinstance(v, int | float) and not isinstance(v, bool)},
    }
