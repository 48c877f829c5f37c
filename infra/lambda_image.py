"""`make sam-image`: a Lambda python3.12 base image for `sam local`, built here without a registry.

    python -m infra.lambda_image        # build it unless the image of these inputs exists; prints its tag

`sam local` runs a function in a container made from AWS's base image
(public.ecr.aws/lambda/python:3.12), which has to be pulled; this builds one with the same layout
from what the machine has: the project's own CPython 3.12 under /var/lang, awslambdaric and boto3
(the pins of the LocalStack runtime, infra/local_cloud.py) under /var/runtime, the shared
libraries they load, the shell and the two commands SAM's own layer runs (``mv``, ``chmod``), and
AWS's environment (PATH, LD_LIBRARY_PATH, LAMBDA_TASK_ROOT...). SAM adds its Runtime Interface
Emulator on top (``--invoke-image``; infra/sam_local.py). The image carries the digest of its
inputs in its environment: it is rebuilt only when they change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

from infra import docker_engine
from infra.console import logger
from infra.local_cloud import RUNTIME_REQUIREMENTS, uv

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".local" / "lambda-image"
TAG = "lambda-local/python3.12:latest"
# SAM's image of a function: the base with its emulator layer on top, named after the base's repository
RAPID_TAG = "lambda-local/python3.12:rapid-x86_64"
PREFIX = Path(sys.base_prefix)
SKIPPED = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
           "config-3.12-x86_64-linux-gnu"}
COMMANDS = ("/bin/sh", "/bin/mv", "/bin/chmod", "/bin/ls", "/bin/cat")  # SAM's layer runs mv and chmod
ENV = {
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": ":".join(["/var/lang/lib", "/lib64", "/usr/lib64", "/var/runtime", "/var/runtime/lib",
                                 "/var/task", "/var/task/lib", "/opt/lib"]),
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
    "LANG": "en_US.UTF-8",
    "TZ": ":/etc/localtime",
}
BOOTSTRAP = """#!/bin/sh
export AWS_EXECUTION_ENV=AWS_Lambda_python3.12
# as AWS's image starts a function: the task root first on Python's path, then the runtime's packages
export PYTHONPATH="${LAMBDA_TASK_ROOT:-/var/task}:/var/runtime"
exec /var/lang/bin/python3.12 -m awslambdaric "$_HANDLER"
"""
log = logger("sam-image")


def digest() -> str:
    """What the image is made of: the Python, the runtime's pins, this recipe."""
    parts = [sys.version, str(PREFIX), json.dumps(RUNTIME_REQUIREMENTS), Path(__file__).read_text()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def built_digest() -> str | None:
    result = subprocess.run([docker_engine.docker(), "image", "inspect", TAG, "--format",  # noqa: S603
                             "{{json .Config.Env}}"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    env = dict(item.split("=", 1) for item in json.loads(result.stdout))
    return env.get("LAMBDA_IMAGE_DIGEST")


def ensure() -> str:
    """The tag of the base image, built first when missing or made of other inputs."""
    docker_engine.ensure()
    wanted = digest()
    if built_digest() == wanted:
        log(f"{TAG} is built (inputs {wanted})")
        return TAG
    build(wanted)
    return TAG


def build(wanted: str) -> None:
    rootfs = WORK / "rootfs"
    shutil.rmtree(WORK, ignore_errors=True)
    rootfs.mkdir(parents=True)
    lang = rootfs / "var" / "lang"
    copy_python(lang)
    runtime = rootfs / "var" / "runtime"
    log(f"installing {', '.join(RUNTIME_REQUIREMENTS['python3.12'])} into /var/runtime")
    subprocess.run([uv(), "pip", "install", "--quiet", "--python", sys.executable, "--target", str(runtime),  # noqa: S603
                    *RUNTIME_REQUIREMENTS["python3.12"]], check=True)
    (runtime / "bootstrap").write_text(BOOTSTRAP)
    (runtime / "bootstrap").chmod(0o755)
    binaries = [lang / "bin" / "python3.12", *lang.rglob("*.so*"), *runtime.rglob("*.so")]
    for command in COMMANDS:
        copy_into(Path(command), rootfs)
        binaries.append(Path(command))
    for library in sorted(libraries(binaries, rootfs)):
        copy_into(library, rootfs)
    certificates = Path("/etc/ssl/certs/ca-certificates.crt")
    if certificates.exists():  # boto3 to a real endpoint checks TLS against these
        copy_into(certificates, rootfs)
    for folder in ("tmp", "var/task", "opt", "etc"):
        (rootfs / folder).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                           "sbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\n")
    log("importing the root file system into Docker")
    changes = [f"ENV {key}={value}" for key, value in {**ENV, "LAMBDA_IMAGE_DIGEST": wanted}.items()]
    changes += ["WORKDIR /var/task", 'ENTRYPOINT ["/var/runtime/bootstrap"]']
    archive = WORK / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".", filter=as_root)
    subprocess.run([docker_engine.docker(), "import", *[a for c in changes for a in ("--change", c)],  # noqa: S603
                    str(archive), TAG], check=True, stdout=subprocess.DEVNULL)
    # SAM reuses its emulator image made from an older base unless it is removed
    subprocess.run([docker_engine.docker(), "image", "rm", "--force", RAPID_TAG], capture_output=True,  # noqa: S603
                   check=False)
    archive.unlink()
    shutil.rmtree(rootfs)
    size = subprocess.run([docker_engine.docker(), "image", "inspect", TAG, "--format", "{{.Size}}"],  # noqa: S603
                          capture_output=True, text=True, check=True).stdout.strip()
    log(f"built {TAG} ({int(size) / 1e6:.0f} MB, inputs {wanted})")


def copy_python(prefix: Path) -> None:
    """This CPython 3.12 (the project's) under ``prefix`` of an image: the interpreter, libpython
    and the standard library without its tests and GUI, with an empty site-packages."""
    if sys.version_info[:2] != (3, 12):
        raise SystemExit(f"the image needs a CPython 3.12 to copy; this is {sys.version.split()[0]}")
    log(f"copying CPython {sys.version.split()[0]} from {PREFIX} to /{prefix.name}")
    for folder in ("bin", "lib"):
        (prefix / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy2(PREFIX / "bin" / "python3.12", prefix / "bin" / "python3.12")
    for alias in ("python3", "python"):
        (prefix / "bin" / alias).symlink_to("python3.12")
    libdir = Path(sysconfig.get_config_var("LIBDIR") or PREFIX / "lib")
    for library in libdir.glob("libpython3*.so*"):
        shutil.copy2(library, prefix / "lib" / library.name, follow_symlinks=True)
    shutil.copytree(PREFIX / "lib" / "python3.12", prefix / "lib" / "python3.12",
                    ignore=lambda folder, names: [n for n in names if n in SKIPPED])
    (prefix / "lib" / "python3.12" / "site-packages").mkdir()


def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def copy_into(path: Path, rootfs: Path) -> None:
    """``path`` at the same place under rootfs, a symbolic link's target as a file of the link's name."""
    target = rootfs / str(path).lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copy2(path.resolve(), target)


def libraries(binaries: list[Path], rootfs: Path) -> set[Path]:
    """The shared libraries outside the image's own folders that ``binaries`` load (ldd's answer)."""
    found: set[Path] = set()
    inside = (str(rootfs),)
    for binary in binaries:
        result = subprocess.run([shutil.which("ldd") or "/usr/bin/ldd", str(binary)],  # noqa: S603
                                capture_output=True, text=True, check=False)
        for line in result.stdout.splitlines():
            words = line.split()
            path = words[2] if len(words) >= 3 and words[1] == "=>" else words[0] if words else ""
            if path.startswith("/") and not path.startswith(inside) and "libpython3" not in path:
                found.add(Path(path))
    return found


def main() -> None:
    print(ensure())


if __name__ == "__main__":
    sys.exit(main())

