"""System packages the local tools need, installed where they are missing: Debian's and Ubuntu's
apt-get (with sudo when not root), as infra/install-browser.sh does for Chromium; elsewhere the
caller's message says what to install."""

from __future__ import annotations

import os
import shutil
import subprocess

from infra.console import logger

log = logger("install")


def apt_install(package: str, purpose: str, elsewhere: str) -> None:
    """``apt-get install package``; without apt-get, stop with ``elsewhere`` (what to install)."""
    apt = shutil.which("apt-get")
    if not apt:
        raise SystemExit(elsewhere)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log(f"{package} (apt-get): {purpose}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, apt, "update", "-qq"], check=True, env=env)  # noqa: S603
    subprocess.run([*sudo, apt, "install", "-y", "-qq", "--no-install-recommends", package],  # noqa: S603
                   check=True, env=env, stdout=subprocess.DEVNULL)
