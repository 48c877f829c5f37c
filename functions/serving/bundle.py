"""The model bundle: the contract between training (writes) and serving (reads).

Layout in the model bucket, for a model called ``<name>``::

    models/<name>/versions/000007/manifest.json     what the version is (below)
    models/<name>/versions/000007/model.npz         arrays for serving.ensemble
    models/<name>/versions/000007/<native file>     model.cbm / model.txt, for re-scoring
    models/<name>/champion.json                     the champion pointer
    models/<name>/champion-history/<time>-000007.json  every promotion, kept

A version is immutable: every object is written with ``If-None-Match: *``, so a
second writer of the same version fails instead of overwriting, and the
publisher moves on to the next number. The manifest is written last; a version
without a manifest is incomplete and is never served.

The manifest holds: format version, name, version, created_at, framework,
feature_schema (name, type, range, categories, nullable), classes, metrics,
hyperparameters, lineage (data set, sha256 of the training data, rows, code
revision, tracking run), example rows, and the sha256 and size of every file.
The champion pointer names a version and the sha256 of its manifest; it is one
small object replaced in one PUT (atomic in S3), and bucket versioning plus the
history prefix keep every earlier pointer.

Only the standard library, numpy and a boto3 S3 client are used: serving
imports this module.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

FORMAT_VERSION = 1
MODEL_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"


class BundleError(Exception):
    """A bundle that is missing, incomplete or does not match its checksums."""


class VersionExists(BundleError):
    pass


def model_prefix(name: str) -> str:
    return f"models/{name}/"


def version_prefix(name: str, version: int) -> str:
    return f"models/{name}/versions/{version:06d}/"


def champion_key(name: str) -> str:
    return f"models/{name}/champion.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # uncompressed: loads faster, the zip of the package compresses
    return buffer.getvalue()


def decode_arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


@dataclass(frozen=True)
class Bundle:
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> int:
        return int(self.manifest["version"])

    @property
    def feature_schema(self) -> list[dict[str, Any]]:
        return self.manifest["feature_schema"]

    @property
    def classes(self) -> list:
        return self.manifest["classes"]


# ---- writing (training) ------------------------------------------------------------


def _is_precondition_failure(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def _put_new(s3, bucket: str, key: str, body: bytes, content_type: str) -> None:
    try:
        s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*",
            ChecksumAlgorithm="SHA256",
        )
    except Exception as error:
        if _is_precondition_failure(error):
            raise VersionExists(f"s3://{bucket}/{key} already exists") from error
        raise


def list_versions(s3, bucket: str, name: str) -> list[int]:
    """Published versions (those with a manifest), oldest first."""
    versions = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{model_prefix(name)}versions/"):
        for item in page.get("Contents", []):
            parts = item["Key"].split("/")
            if parts[-1] == MANIFEST_FILE:
                versions.append(int(parts[-2]))
    return sorted(versions)


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
    """Publish a new immutable version; returns its manifest."""
    files = {MODEL_FILE: encode_arrays(arrays), **(extra_files or {})}
    taken = 0  # a number lost to another writer, whose manifest may not exist yet
    for _ in range(attempts):
        existing = list_versions(s3, bucket, name)
        version = max(taken, existing[-1] if existing else 0) + 1
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **manifest_fields,
            "files": {
                file: {"sha256": sha256(data), "size": len(data)} for file, data in files.items()
            },
        }
        prefix = version_prefix(name, version)
        try:
            for file, data in files.items():
                if progress:
                    progress(f"uploading {file} ({len(data) / 1e6:.2f} MB) to s3://{bucket}/{prefix}")
                _put_new(s3, bucket, prefix + file, data, "application/octet-stream")
            _put_new(s3, bucket, prefix + MANIFEST_FILE, _dump(manifest), "application/json")
            return manifest
        except VersionExists:
            taken = version  # another publisher has this number: take a later one
    raise BundleError(f"could not find a free version number for {name} in {attempts} tries")


def _dump(document: dict) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True, allow_nan=False).encode()


def set_champion(s3, bucket: str, name: str, version: int, reason: str) -> dict[str, Any]:
    """Point the champion at a published version (one atomic PUT) and record it."""
    manifest_bytes = _get(s3, bucket, version_prefix(name, version) + MANIFEST_FILE)
    previous = read_champion(s3, bucket, name)
    pointer = {
        "name": name,
        "version": version,
        "manifest_sha256": sha256(manifest_bytes),
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reason": reason,
        "previous_version": previous["version"] if previous else None,
    }
    body = _dump(pointer)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
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
        code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            raise BundleError(f"s3://{bucket}/{key} does not exist") from error
        raise


def read_champion(s3, bucket: str, name: str) -> dict[str, Any] | None:
    """The champion pointer, or None when nothing was ever promoted."""
    try:
        return json.loads(_get(s3, bucket, champion_key(name)))
    except BundleError:
        return None


def read_manifest(s3, bucket: str, name: str, version: int, expected_sha256: str | None = None):
    data = _get(s3, bucket, version_prefix(name, version) + MANIFEST_FILE)
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise BundleError(f"manifest of {name} v{version} does not match the champion pointer")
    manifest = json.loads(data)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"unsupported bundle format {manifest.get('format_version')!r}")
    return manifest


def read_file(s3, bucket: str, manifest: dict[str, Any], file: str) -> bytes:
    """One file of a version, verified against the manifest's sha256."""
    expected = manifest["files"].get(file)
    if expected is None:
        raise BundleError(f"{file} is not part of {manifest['name']} v{manifest['version']}")
    data = _get(s3, bucket, version_prefix(manifest["name"], manifest["version"]) + file)
    if sha256(data) != expected["sha256"]:
        raise BundleError(
            f"{file} of {manifest['name']} v{manifest['version']} does not match its sha256"
        )
    return data


def load(s3, bucket: str, name: str, version: int, manifest_sha256: str | None = None) -> Bundle:
    """A verified bundle with its model arrays, ready for ``serving.ensemble``."""
    manifest = read_manifest(s3, bucket, name, version, manifest_sha256)
    arrays = decode_arrays(read_file(s3, bucket, manifest, MODEL_FILE))
    return Bundle(manifest=manifest, arrays=arrays)


def load_champion(s3, bucket: str, name: str) -> Bundle | None:
    pointer = read_champion(s3, bucket, name)
    if pointer is None:
        return None
    return load(s3, bucket, name, int(pointer["version"]), pointer.get("manifest_sha256"))
