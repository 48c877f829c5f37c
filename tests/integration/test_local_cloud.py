"""The local cloud listens on the loopback interface only: nobody else on the network reaches it."""

import pytest

pytestmark = pytest.mark.integration


def listening(port: int) -> set[str]:
    """The local addresses listening on ``port`` (IPv4 and IPv6), read from the kernel's tables."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]  # noqa: SIM115, PTH123
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_localstack_listens_on_127_0_0_1_and_nowhere_else(cloud):
    addresses = listening(cloud.port)
    assert addresses == {"0100007F"}, f"LocalStack on port {cloud.port} listens on {addresses} (0100007F is 127.0.0.1)"
