"""A PostgreSQL server for the tuning workers' shared Optuna study, as RDS is in an account.

    python -m infra.postgres start     # start (initialising it the first time); prints the study's URL
    python -m infra.postgres stop      # stop it and delete its data

Debian's PostgreSQL (installed with apt-get where missing), on 127.0.0.1 only, port 5433 (not the
system's 5432), its data in .local/postgres/, password authentication (scram-sha-256) for one
role, ``optuna``, whose generated password is kept in .local/postgres/password (mode 600).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from infra import packages
from infra.console import logger

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".local" / "postgres"
DATA = HOME / "data"
PASSWORD = HOME / "password"
PORT = int(os.environ.get("POSTGRES_PORT", "5433"))
ROLE = DATABASE = "optuna"
log = logger("postgres")


def binaries() -> Path:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "pg_ctl").exists():
            return folder
    packages.apt_install("postgresql", "the tuning workers' shared study",
                         "PostgreSQL is not installed: install its server, then run this again")
    return binaries()


def _as_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, its commands run as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def url() -> str:
    return f"postgresql+psycopg://{ROLE}:{PASSWORD.read_text().strip()}@127.0.0.1:{PORT}/{DATABASE}"


def running() -> bool:
    status = subprocess.run(_as_owner([str(binaries() / "pg_ctl"), "status", "-D", str(DATA)]),  # noqa: S603
                            capture_output=True, check=False)
    return status.returncode == 0


def start() -> str:
    """A running server with the study's database; its SQLAlchemy URL."""
    bin_dir = binaries()
    if not (DATA / "PG_VERSION").exists():
        _initialise(bin_dir)
    if running():
        return url()
    log(f"starting PostgreSQL on 127.0.0.1:{PORT} (data in {DATA.relative_to(ROOT)})")
    subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "start", "-D", str(DATA), "-w", "-t", "60",  # noqa: S603
                              "-l", str(HOME / "server.log"), "-o",
                              f"-p {PORT} -c listen_addresses=127.0.0.1 -c unix_socket_directories={HOME}"]),
                   check=True, stdout=subprocess.DEVNULL)
    return url()


def _initialise(bin_dir: Path) -> None:
    HOME.mkdir(parents=True, exist_ok=True)
    PASSWORD.write_text(secrets.token_urlsafe(24))
    PASSWORD.chmod(0o600)
    if os.geteuid() == 0:
        shutil.chown(HOME, "postgres", "postgres")
        shutil.chown(PASSWORD, "postgres", "postgres")
        local = ROOT / ".local"
        local.chmod(local.stat().st_mode | 0o011)  # the postgres user passes through it
    log(f"initialising a PostgreSQL cluster in {DATA.relative_to(ROOT)}")
    subprocess.run(_as_owner([str(bin_dir / "initdb"), "-D", str(DATA), "-U", ROLE, "--pwfile", str(PASSWORD),  # noqa: S603
                              "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8",
                              "--locale=C"]),
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "start", "-D", str(DATA), "-w", "-o",  # noqa: S603
                              f"-p {PORT} -c listen_addresses=127.0.0.1 -c unix_socket_directories={HOME}",
                              "-l", str(HOME / "server.log")]), check=True, stdout=subprocess.DEVNULL)
    subprocess.run(_as_owner([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(PORT), "-U", ROLE,  # noqa: S603
                              DATABASE]), check=True, env={**os.environ, "PGPASSWORD": PASSWORD.read_text()})


def stop() -> None:
    if (DATA / "PG_VERSION").exists() and running():
        subprocess.run(_as_owner([str(binaries() / "pg_ctl"), "stop", "-D", str(DATA), "-m", "fast"]),  # noqa: S603
                       check=True, stdout=subprocess.DEVNULL)
        log("stopped PostgreSQL")
    shutil.rmtree(HOME, ignore_errors=True)


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    if command == "start":
        print(start())
    elif command == "stop":
        stop()
    else:
        raise SystemExit("usage: python -m infra.postgres start|stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
