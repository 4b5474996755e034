"""Fixtures for the psaspm serve tests: an in-process server on a Unix socket."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from psaspm.mailbox.server import Server, build_served_system, parse_address

SERVICES = Path(__file__).resolve().parent / "services" / "remote_echo.yaml"
ECHO_SID, STATELESS_SID, PROBE_SID, SECRET_SID = 0xF800, 0xF801, 0xF802, 0xF803
ECHO, PANIC, HOLD, RELEASE, BATCH, SLOW, RAISE, LOOP, STUBBORN = 0, 1, 2, 3, 4, 5, 6, 7, 8

ServeFn = Callable[..., Any]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stress: many client processes (runs in make test)")


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for socket files (a Unix socket path is limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="psaspm-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def serve(sockdir: Path) -> Iterator[ServeFn]:
    """``serve(**options)`` starts a server on a fresh socket; all stop at teardown."""
    servers: list[Server] = []

    def start(
        restart_on_panic: bool = False,
        slots: int = 8,
        max_connections: int = 32,
        log: Callable[[str], None] | None = None,
        **load: Any,
    ) -> Server:
        served = build_served_system(
            load.pop("sources", [SERVICES]), slots=slots, max_connections=max_connections, **load
        )
        server = Server(
            served,
            parse_address(f"unix:{sockdir}/s{len(servers)}.sock"),
            restart_on_panic=restart_on_panic,
            shutdown_timeout=2.0,
            log=log,
        )
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
