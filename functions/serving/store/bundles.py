"""Bundles in the model bucket: publish a version, point the champion at one, list and load.

The layout and the rules of a bundle are ``serving.model.bundle``'s; this
module is how they are written and read through a boto3-style S3 client (boto3
in training, ``serving.store.s3``'s reader in the functions). Every object of a
version is written with ``If-None-Match: *``: nothing published is overwritten.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

from serving.model.bundle import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    MODEL_FILE,
    NAME_PATTERN,
    READABLE_FORMATS,
    Bundle,
    BundleError,
    VersionExists,
    champion_key,
    decode_arrays,
    encode_arrays,
    model_prefix,
    sha256,
    summary,
    upgrade_format_1,
    version_prefix,
)
from serving.store.s3 import error_status

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


HISTORY_LIMIT = 20  # versions and promotions a history shows, newest first


def history(s3, bucket: str, name: str, limit: int = HISTORY_LIMIT) -> dict[str, Any]:
    """A model's newest versions (what each was trained on and how it scored) and its newest
    promotions, newest first, at most ``limit`` of each; what the catalogue shows."""
    versions = []
    for version in list_versions(s3, bucket, name)[::-1][:limit]:
        try:
            manifest = read_manifest(s3, bucket, name, version)
        except BundleError as error:  # a manifest this code cannot read: shown as such, not a failure
            versions.append({"version": version, "unreadable": str(error)})
            continue
        lineage = manifest.get("lineage") or {}
        versions.append({
            "version": version, "created_at": manifest.get("created_at"), **summary(manifest),
            "rows": lineage.get("rows"), "rows_train": lineage.get("rows_train"),
            "data_sha256": lineage.get("data_sha256"), "dataset": lineage.get("dataset"),
            "ignored_columns": [dropped["name"] for dropped in manifest.get("dropped_columns") or []],
            "framework": manifest.get("framework"),
        })
    keys = [item["Key"] for page in _pages(s3, bucket, f"{model_prefix(name)}champion-history/")
            for item in page.get("Contents", [])]
    promotions = []
    for key in sorted(keys, reverse=True)[:limit]:  # keys start with the promotion's UTC time
        pointer = json.loads(_get(s3, bucket, key))
        promotions.append({field: pointer.get(field) for field in
                           ("version", "promoted_at", "reason", "previous_version")})
    return {"name": name, "versions": versions, "promotions": promotions}


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
        shown = pointer.get("summary")
        if shown is None:  # a pointer written before summaries: read it from the manifest
            shown = summary(read_manifest(s3, bucket, name, int(pointer["version"])))
        models.append({"name": name, "version": int(pointer["version"]),
                       "promoted_at": pointer.get("promoted_at"), **shown})
    return models


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
        "summary": summary(json.loads(manifest_bytes)),
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
        arrays = upgrade_format_1(arrays)
    return Bundle(manifest=manifest, arrays=arrays)


def load_champion(s3, bucket: str, name: str) -> Bundle | None:
    pointer = read_champion(s3, bucket, name)
    if pointer is None:
        return None
    return load(s3, bucket, name, int(pointer["version"]), pointer.get("manifest_sha256"))
