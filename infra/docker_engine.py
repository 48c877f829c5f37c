"""A Docker engine for `sam local` and the training image: found, or installed and started.

    python -m infra.docker_engine          # make sure an engine answers; prints the bridge address

Where none answers, Debian's and Ubuntu's ``docker.io`` package is installed (as the browser and
the compiler are, infra/install-*.sh) and ``dockerd`` is started as root in the background, its
log in .local/logs/dockerd.log. Elsewhere it says what to install. Nothing is pulled from a
registry: every image this project runs is built here (infra/lambda_image.py, training/Dockerfile).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from infra import packages
from infra.console import logger

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / ".local" / "logs" / "dockerd.log"
log = logger("docker")


def docker() -> str:
    found = shutil.which("docker")
    if not found:
        raise SystemExit("no docker client: install Docker (Debian/Ubuntu: apt-get install docker.io)")
    return found


def answers() -> bool:
    client = shutil.which("docker")
    if not client:
        return False
    result = subprocess.run([client, "info", "--format", "{{.ServerVersion}}"], capture_output=True,  # noqa: S603
                            text=True, check=False, timeout=30)
    return result.returncode == 0


def ensure(timeout: float = 60) -> None:
    """An engine that answers `docker info`, installing and starting one where this can."""
    if answers():
        return
    if not shutil.which("dockerd"):
        _install()
    if os.geteuid() != 0:
        raise SystemExit("the Docker engine is not running and starting it needs root: "
                         "start it (sudo systemctl start docker, or sudo dockerd &) and run this again")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    log(f"starting dockerd (log: {LOG.relative_to(ROOT)})")
    with open(LOG, "ab") as out:
        subprocess.Popen([shutil.which("dockerd") or "dockerd"], stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                         stdin=subprocess.DEVNULL, start_new_session=True)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if answers():
            log(f"dockerd is ready ({time.monotonic() - started:.1f} s)")
            return
        time.sleep(0.5)
    raise SystemExit(f"dockerd did not answer within {timeout:.0f} s; see {LOG}")


def _install() -> None:
    packages.apt_install("docker.io", "the Docker engine for sam local and the training image",
                         "no Docker engine: install Docker Engine (https://docs.docker.com/engine/install/) "
                         "or, on macOS, Docker Desktop, then run this again")


def bridge_address() -> str:
    """The host's address on Docker's default bridge: what a container reaches the host by."""
    result = subprocess.run(  # noqa: S603
        [docker(), "network", "inspect", "bridge", "--format",
         '{{json .IPAM.Config}} {{index .Options "com.docker.network.bridge.name"}}'],
        capture_output=True, text=True, check=True)
    config, _, interface = result.stdout.strip().rpartition(" ")
    gateways = [item["Gateway"] for item in json.loads(config) if item.get("Gateway")]
    return gateways[0] if gateways else interface_address(interface)


def interface_address(name: str) -> str:
    """A network interface's IPv4 address (the kernel's SIOCGIFADDR)."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
    return socket.inet_ntoa(packed[20:24])


def main() -> None:
    ensure()
    print(bridge_address())


if __name__ == "__main__":
    sys.exit(main())
