"""Fixtures for the C client library tests: C programs built the way a user builds them
(``$(psaspm cflags --client)`` / ``$(psaspm libs --client)``), and ``psaspm serve`` processes."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APP_SOURCE = HERE / "client_app.c"
ECHO_EXAMPLE = REPO / "examples" / "echo" / "echo_service.yaml"
REMOTE_SERVICES = REPO / "tests" / "remote" / "services" / "remote_echo.yaml"
PSASPM = shlex.join([sys.executable, "-m", "psaspm"])


def compiler() -> str:
    found = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    assert found, "these tests need a C compiler ($CC, cc or gcc)"
    return found


@pytest.fixture(scope="session")
def client_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private $PSASPM_CACHE for the client library builds of this session."""
    return tmp_path_factory.mktemp("client-cache")


def psaspm_env(cache: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PSASPM_CACHE=str(cache))
    env.update(extra)
    return env


def build_app(cache: Path, out: Path, libs: str = "libs --client") -> Path:
    """Compile client_app.c as the README says: cflags and libs from the psaspm command."""
    command = (
        f"{shlex.quote(compiler())} -Wall -Wextra -Werror -o {shlex.quote(str(out))} "
        f"$({PSASPM} cflags --client) {shlex.quote(str(APP_SOURCE))} $({PSASPM} {libs})"
    )
    done = subprocess.run(
        ["bash", "-ec", command],
        capture_output=True,
        text=True,
        env=psaspm_env(cache),
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def app(client_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """client_app linked with the shared client library."""
    return build_app(client_cache, tmp_path_factory.mktemp("app") / "client_app")


@dataclass
class Served:
    process: subprocess.Popen[str]
    address: str


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for socket files (a Unix socket path is limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="psaspm-cclient-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


ServeFn = Callable[..., Served]


@pytest.fixture
def serve(sockdir: Path) -> Iterator[ServeFn]:
    """``serve(listen=None, sources=(echo example,))`` runs ``psaspm serve`` in a subprocess
    (a Unix socket in a fresh folder by default) until the test ends."""
    started: list[subprocess.Popen[str]] = []

    def start(listen: str | None = None, sources: tuple[Path, ...] = (ECHO_EXAMPLE,)) -> Served:
        where = listen or f"unix:{sockdir}/s{len(started)}.sock"
        process = subprocess.Popen(
            [sys.executable, "-m", "psaspm", "serve", *map(str, sources), "--listen", where],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        if " on " not in line:
            process.kill()
            _, err = process.communicate(timeout=10)
            raise AssertionError(f"psaspm serve did not start: {line}{err}")
        return Served(process, line.rsplit(" on ", 1)[1].strip())

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Ran:
    returncode: int
    values: dict[str, str]
    stderr: str


def parse(stdout: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in stdout.splitlines():
        for item in line.split():
            key, sep, value = item.partition("=")
            if sep:
                values[key] = value
    return values


def client_env(server: str | None) -> dict[str, str]:
    """This environment with PSASPM_SERVER=server (unset when None)."""
    env = dict(os.environ)
    env.pop("PSASPM_SERVER", None)
    if server is not None:
        env["PSASPM_SERVER"] = server
    return env


def run_app(app: Path, server: str | None, *args: str, timeout: float = 60) -> Ran:
    """Run client_app with PSASPM_SERVER=server (unset when None)."""
    env = client_env(server)
    done = subprocess.run(
        [str(app), *args],
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        timeout=timeout,
        check=False,
    )
    return Ran(done.returncode, parse(done.stdout), done.stderr)


SpawnFn = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def spawn() -> Iterator[SpawnFn]:
    """``spawn(app, server, *args)`` starts client_app (pipes on stdin, stdout, stderr) in its own
    process group; a group still running when the test ends (a failed test) is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(app: Path, server: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [str(app), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=client_env(server),
            start_new_session=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:  # still running (not reaped): its group id is still its own
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # forked children included
        proc.communicate()
