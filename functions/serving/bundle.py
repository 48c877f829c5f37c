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

Only the standard library, numpy and a boto3-style S3 client are used:
serving imports this module.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from serving import ensemble, explain, model_format
from serving.s3 import error_status

FORMAT_VERSION = 2  # 2: the task is in model.npz and the manifest; 1 is read and upgraded
READABLE_FORMATS = (1, 2)
MODEL_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"
FEATURE_TYPES = ("numeric", "categorical", "boolean", "datetime")


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


def _upgrade_format_1(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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


def served_predictions(arrays: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """What the served form answers for rows X: class probabilities, or values (n, 1)."""
    return ensemble.from_arrays(arrays).predict(np.asarray(X))


def served_explanations(arrays: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """The served SHAP contributions for rows X: (n, outputs, n_features + 1), the expected value last."""
    X = np.asarray(X, np.float64)
    return explain.explainer(ensemble.from_arrays(arrays), arrays).contributions(X)


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
    task = manifest.get("task", header.task)
    if task != header.task:
        refuse(f"task {task!r} but {MODEL_FILE} holds a {header.task} model")
    classes = manifest.get("classes") or []
    expected = {"binary": 2, "multiclass": header.n_outputs, "regression": 0}[header.task]
    if len(classes) != expected:
        refuse(f"{len(classes)} classes for a {header.task} model with {header.n_outputs} outputs; "
               f"expected {expected}")


# ---- writing (training) ------------------------------------------------------------


def _put_new(s3, bucket: str, key: str, body: bytes, content_type: str) -> None:
    try:
        s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*",
            ChecksumAlgorithm="SHA256",
        )
    except Exception as error:
        # 412 PreconditionFailed: the key exists; 409: another conditional write is under way
        if error_status(error) in (409, 412):
            raise VersionExists(f"s3://{bucket}/{key} already exists") from error
        raise


def _pages(s3, bucket: str, prefix: str, delimiter: str | None = None, max_keys: int | None = None):
    """The pages of a listing, following continuation tokens (boto3's client or serving.s3's reader)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if delimiter is not None:
        kwargs["Delimiter"] = delimiter
    if max_keys is not None:
        kwargs["MaxKeys"] = max_keys
    while True:
        page = s3.list_objects_v2(**kwargs)
        yield page
        if not page.get("IsTruncated") or max_keys is not None:
            return
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def list_versions(s3, bucket: str, name: str) -> list[int]:
    """Published versions (those with a manifest), oldest first."""
    versions = []
    for page in _pages(s3, bucket, f"{model_prefix(name)}versions/"):
        for item in page.get("Contents", []):
            parts = item["Key"].split("/")
            if parts[-1] == MANIFEST_FILE:
                versions.append(int(parts[-2]))
    return sorted(versions)


def has_versions(s3, bucket: str, name: str) -> bool:
    """Whether anything was ever published under the model's name (one key is enough)."""
    page = next(_pages(s3, bucket, f"{model_prefix(name)}versions/", max_keys=1))
    return bool(page.get("Contents"))


def list_models(s3, bucket: str) -> list[str]:
    """The names under models/ (valid names only: anything else there is not a model)."""
    names = []
    for page in _pages(s3, bucket, "models/", delimiter="/"):
        for item in page.get("CommonPrefixes", []):
            name = item["Prefix"].removeprefix("models/").rstrip("/")
            if NAME_PATTERN.fullmatch(name) and ".." not in name:
                names.append(name)
    return sorted(names)


def list_champions(s3, bucket: str) -> list[dict[str, Any]]:
    """Every model that has a champion, with what its pointer says about it."""
    models = []
    for name in list_models(s3, bucket):
        pointer = read_champion(s3, bucket, name)
        if pointer is None:
            continue
        summary = pointer.get("summary")
        if summary is None:  # a pointer written before summaries: read it from the manifest
            summary = _summary(read_manifest(s3, bucket, name, int(pointer["version"])))
        models.append({"name": name, "version": int(pointer["version"]),
                       "promoted_at": pointer.get("promoted_at"), **summary})
    return models


def _summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a listing of models shows of a version: its task, classes or target, held-out metrics."""
    test = (manifest.get("metrics") or {}).get("test") or {}
    return {
        "task": manifest.get("task", "binary" if len(manifest.get("classes") or []) == 2 else "multiclass"),
        "classes": manifest.get("classes") or [],
        "target": manifest.get("target"),
        "metrics": {k: v for k, v in test.items() if isinstance(v, int | float) and not isinstance(v, bool)},
    }


def publish(
    s3,
    bucket: str,
    name: str,
    arrays: dict[str, np.ndarray],
    manifest_fields: dict[str, Any],
    extra_files: dict[str, bytes] | None = None,
    attempts: int = 5,
    progress=None,
) -> dict[str, Any]:
    """Publish a new immutable version; returns its manifest.

    The arrays and the manifest are checked as ``load`` checks them: a bundle
    that could not be served is never written.
    """
    files = {MODEL_FILE: encode_arrays(arrays), **(extra_files or {})}
    task = Bundle(manifest={"name": name, "version": 0, **manifest_fields}, arrays=arrays).task
    taken = 0  # a number lost to another writer, whose manifest may not exist yet
    for _ in range(attempts):
        existing = list_versions(s3, bucket, name)
        version = max(taken, existing[-1] if existing else 0) + 1
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "version": version,
            "created_at": _now().isoformat(timespec="seconds"),
            "task": task,
            **manifest_fields,
            "files": {
                file: {"sha256": sha256(data), "size": len(data)} for file, data in files.items()
            },
        }
        body = _dump(manifest)  # before any upload: a manifest that is not strict JSON writes nothing
        prefix = version_prefix(name, version)
        try:
            for file, data in files.items():
                if progress:
                    progress(f"uploading {file} ({len(data):,} bytes) to s3://{bucket}/{prefix}")
                _put_new(s3, bucket, prefix + file, data, "application/octet-stream")
            _put_new(s3, bucket, prefix + MANIFEST_FILE, body, "application/json")
            return manifest
        except VersionExists:
            taken = version  # another publisher has this number: take a later one
    raise BundleError(f"could not find a free version number for {name} in {attempts} tries")


def _now() -> datetime:
    return datetime.now(UTC)


def _dump(document: dict) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True, allow_nan=False).encode()


def set_champion(s3, bucket: str, name: str, version: int, reason: str) -> dict[str, Any]:
    """Point the champion at a published version (one atomic PUT) and record it."""
    manifest_bytes = _get(s3, bucket, version_prefix(name, version) + MANIFEST_FILE)
    previous = read_champion(s3, bucket, name)
    now = _now()
    pointer = {
        "name": name,
        "version": version,
        "manifest_sha256": sha256(manifest_bytes),
        "summary": _summary(json.loads(manifest_bytes)),
        "promoted_at": now.isoformat(timespec="seconds"),
        "reason": reason,
        "previous_version": previous["version"] if previous else None,
    }
    body = _dump(pointer)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    s3.put_object(
        Bucket=bucket, Key=f"{model_prefix(name)}champion-history/{stamp}-{version:06d}.json",
        Body=body, ContentType="application/json",
    )
    s3.put_object(Bucket=bucket, Key=champion_key(name), Body=body, ContentType="application/json")
    return pointer


# ---- reading (serving and training) -------------------------------------------------------


def _get(s3, bucket: str, key: str) -> bytes:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as error:
        if error_status(error) == 404:
            raise BundleError(f"s3://{bucket}/{key} does not exist") from error
        raise


def read_champion(s3, bucket: str, name: str) -> dict[str, Any] | None:
    """The champion pointer, or None when nothing was ever promoted."""
    return read_champion_and_etag(s3, bucket, name)[0]


def read_champion_and_etag(s3, bucket: str, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the champion pointer, its ETag), or (None, None) when nothing was ever promoted."""
    try:
        response = s3.get_object(Bucket=bucket, Key=champion_key(name))
    except Exception as error:
        if error_status(error) == 404:
            return None, None
        raise
    return json.loads(response["Body"].read()), response.get("ETag")


def read_manifest(s3, bucket: str, name: str, version: int, expected_sha256: str | None = None):
    data = _get(s3, bucket, version_prefix(name, version) + MANIFEST_FILE)
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise BundleError(f"manifest of {name} v{version} does not match the champion pointer")
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise BundleError(f"{MANIFEST_FILE} of {name} v{version} is not JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") not in READABLE_FORMATS:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise BundleError(f"unsupported bundle format {found!r}; this code reads {READABLE_FORMATS}")
    return manifest


def read_file(s3, bucket: str, manifest: dict[str, Any], file: str) -> bytes:
    """One file of a version, verified against the manifest's sha256."""
    expected = manifest.get("files", {}).get(file)
    if expected is None:
        raise BundleError(f"{file} is not part of {manifest['name']} v{manifest['version']}")
    data = _get(s3, bucket, version_prefix(manifest["name"], manifest["version"]) + file)
    if sha256(data) != expected["sha256"]:
        raise BundleError(
            f"{file} of {manifest['name']} v{manifest['version']} does not match its sha256"
        )
    return data


def load(s3, bucket: str, name: str, version: int, manifest_sha256: str | None = None) -> Bundle:
    """A verified bundle: checksums, the arrays' declaration, the manifest's agreement with them."""
    manifest = read_manifest(s3, bucket, name, version, manifest_sha256)
    arrays = decode_arrays(read_file(s3, bucket, manifest, MODEL_FILE))
    if manifest["format_version"] == 1:
        arrays = _upgrade_format_1(arrays)
    return Bundle(manifest=manifest, arrays=arrays)


def load_champion(s3, bucket: str, name: str) -> Bundle | None:
    pointer = read_champion(s3, bucket, name)
    if pointer is None:
        return None
    return load(s3, bucket, name, int(pointer["version"]), pointer.get("manifest_sha256"))
