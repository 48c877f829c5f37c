"""The training image (training/Dockerfile), built here without a container registry.

    python -m infra.training_image      # build it; prints its tag

training/Dockerfile starts from ``python:3.12-slim-bookworm`` and copies uv from
``ghcr.io/astral-sh/uv``, both pulled from registries in an account's build. Both are build
arguments (BASE, UV_IMAGE); here they are images made the same way from packages:

- the base: Debian bookworm from Debian's archive (``debootstrap --variant=minbase``, the mirror
  apt uses here) with the project's CPython 3.12 under /usr/local, as the official image keeps it,
  and the machine's certificate bundle (``SSL_CERT_FILE``: a network that inspects TLS adds its CA);
- uv: the uv binary `make install` put in .local/tools, alone in an image.

Making the base needs root (debootstrap); without it, the Dockerfile's own images are pulled.
Each carries the digest of its inputs in its environment and is rebuilt only when they change;
``docker build`` (its own layer cache) then installs the locked dependencies from PyPI as in an
account. The ``.dockerignore`` keeps the build context to what the Dockerfile copies.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from infra import docker_engine, packages
from infra.console import logger
from infra.lambda_image import as_root, copy_into, copy_python, libraries
from infra.local_cloud import uv

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".local" / "training-image"
BASE_TAG = "local/python:3.12-slim-bookworm"
UV_TAG = "local/uv:latest"
TAG = "tabular-serverless-training:local"
PREFIX = Path(sys.base_prefix)
log = logger("training-image")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join([*parts, Path(__file__).read_text()]).encode()).hexdigest()[:16]


def _built(tag: str) -> str | None:
    result = subprocess.run([docker_engine.docker(), "image", "inspect", tag, "--format",  # noqa: S603
                             "{{json .Config.Env}}"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    return dict(item.split("=", 1) for item in json.loads(result.stdout)).get("IMAGE_INPUTS")


def _import(rootfs: Path, tag: str, digest: str, env: dict[str, str], cmd: list[str]) -> None:
    archive = WORK / f"{tag.replace('/', '_').replace(':', '_')}.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".", filter=as_root)
    changes = [f"ENV {key}={value}" for key, value in {**env, "IMAGE_INPUTS": digest}.items()]
    changes.append(f"CMD {json.dumps(cmd)}")
    subprocess.run([docker_engine.docker(), "import", *[a for c in changes for a in ("--change", c)],  # noqa: S603
                    str(archive), tag], check=True, stdout=subprocess.DEVNULL)
    archive.unlink()


def mirror() -> str:
    """The Debian archive apt uses on this machine (deb.debian.org where none is found)."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "debian" in line and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def trust_store() -> Path:
    """The machine's certificate bundle: where TLS is inspected on the way out, it holds that CA too."""
    return Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")


def base() -> str:
    certificates = trust_store()
    digest = _digest(sys.version, str(PREFIX), mirror(),
                     hashlib.sha256(certificates.read_bytes()).hexdigest() if certificates.exists() else "")
    if _built(BASE_TAG) == digest:
        return BASE_TAG
    if not shutil.which("debootstrap"):
        packages.apt_install("debootstrap", "the training image's Debian base",
                             "debootstrap is needed to make the image's Debian base: install it")
    rootfs = WORK / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    log(f"Debian bookworm (minbase) from {mirror()} into {rootfs.relative_to(ROOT)}")
    subprocess.run([shutil.which("debootstrap") or "/usr/sbin/debootstrap", "--variant=minbase", "bookworm",  # noqa: S603
                    str(rootfs), mirror()], check=True, stdout=subprocess.DEVNULL)
    local = rootfs / "usr" / "local"
    copy_python(local)
    binaries = [local / "bin" / "python3.12", *(local / "lib").rglob("*.so*")]
    for library in libraries(binaries, rootfs):  # what Debian's minimal base lacks (libssl3, libsqlite3...)
        copy_into(library, rootfs)
    if certificates.exists():  # uv (rustls) and Python read SSL_CERT_FILE, as they do on this machine
        (rootfs / "etc" / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
        shutil.copy2(certificates, rootfs / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    # libpython in /usr/local/lib, in the image's loader cache as in the official image
    subprocess.run([shutil.which("ldconfig") or "/usr/sbin/ldconfig", "-r", str(rootfs)], check=True)  # noqa: S603
    shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    log(f"importing {BASE_TAG}")
    env = {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "PYTHON_VERSION": sys.version.split()[0], "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}
    _import(rootfs, BASE_TAG, digest, env, ["python3"])
    shutil.rmtree(rootfs)
    return BASE_TAG


def uv_image() -> str:
    binary = Path(uv())
    digest = _digest(hashlib.sha256(binary.read_bytes()).hexdigest())
    if _built(UV_TAG) == digest:
        return UV_TAG
    rootfs = WORK / "uv"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    shutil.copy2(binary, rootfs / "uv")
    _import(rootfs, UV_TAG, digest, {}, ["/uv"])
    shutil.rmtree(rootfs)
    return UV_TAG


def build() -> str:
    docker_engine.ensure()
    if os.geteuid() == 0:
        arguments = ["--build-arg", f"BASE={base()}", "--build-arg", f"UV_IMAGE={uv_image()}"]
    else:  # debootstrap needs root; where it is not, the registries usually are (a CI runner)
        log("not root: the Dockerfile's own base images, pulled from their registries")
        arguments = []
    log(f"docker build -f training/Dockerfile -t {TAG} (the locked dependencies from PyPI)")
    # the classic builder: BuildKit would ask a registry for its Dockerfile frontend
    subprocess.run([docker_engine.docker(), "build", *arguments, "-f", "training/Dockerfile",  # noqa: S603
                    "-t", TAG, "."], check=True, cwd=ROOT, env={**os.environ, "DOCKER_BUILDKIT": "0"},
                   stdout=sys.stderr)
    return TAG


def main() -> int:
    print(build())
    return 0


if __name__ == "__main__":
    sys.exit(main())
