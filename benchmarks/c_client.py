"""The sides of c_client_vs_raw_socket: the C client library's 64-byte echo call through
``psaspm serve`` against a raw 64-byte Unix-socket round trip with a Python peer.

Both sides run in the same C program (``fixtures/c_echo_client.c``, linked the way
``psaspm libs --client`` says), which times its own batches with CLOCK_MONOTONIC and
reports them over a pipe, so the harness's pipe does not count.  Side a: ``psa_call`` to
the echo example's connection-based EXAMPLE_ECHO (one in-vector and one out-vector of 64
bytes) on ``psaspm serve`` in another process over a Unix socket.  Side b: the same program
sending 64 bytes and reading 64 back on a plain Unix socket, the peer a Python process
echoing them (``fixtures/raw_echo_peer.py``): the same placement, the least a C client of
a Python server can cost.  c_client_vs_py_remote compares side a with psaspm.remote's
blocking client making the same call to the same server from the benchmark's process.
c_client_fake_vs_raw_socket runs side a against a minimal Python mailbox peer (no SPM):
what the library and the protocol cost over the raw round trip, whatever the server's speed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench import _echo_runner, _spawn, _stop
from psaspm import remote
from psaspm.cbuild import build_client_library, include_flags

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
ECHO_EXAMPLE = HERE.parent / "examples" / "echo" / "echo_service.yaml"

Runner = Callable[[int], float]


def _build(workdir: Path) -> Path:
    compiler = os.environ.get("CC") or shutil.which("cc") or "cc"
    program = workdir / "c_echo_client"
    library = build_client_library()
    argv = [
        compiler,
        "-O2",
        *include_flags(),
        str(FIXTURES / "c_echo_client.c"),
        "-o",
        str(program),
        *library.link_flags(),
    ]
    subprocess.run(argv, check=True)
    return program


def _runner(argv: list[str], env: dict[str, str], procs: list[subprocess.Popen[str]]) -> Runner:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    procs.append(proc)
    stdin, stdout = proc.stdin, proc.stdout
    assert stdin is not None and stdout is not None

    def run(n: int) -> float:
        stdin.write(f"{n}\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"{argv[0]} {argv[1]} stopped (exit status {proc.wait()})")
        return int(line) / 1e9

    return run


def _python_remote(address: str, clients: list[remote.RemoteClient]) -> Runner:
    client = remote.connect(address)
    clients.append(client)
    handle = client.connect(0xF000, 1)  # examples/echo's EXAMPLE_ECHO, as the C side
    if handle <= 0:
        raise RuntimeError(f"psaspm.remote cannot connect to EXAMPLE_ECHO: {handle}")
    return _echo_runner(client, handle, "psaspm.remote's EXAMPLE_ECHO")


@dataclass
class Sides:
    c_call: Runner  # the C client's echo call on psaspm serve
    raw: Runner  # the raw round trip, same C program, Python peer
    py_call: Runner  # psaspm.remote's echo call from this process, same server
    c_fake: Runner  # the C client's echo call on the minimal Python mailbox peer


@contextmanager
def c_client_sides() -> Iterator[Sides]:
    """The runners of the C client cases; their processes stop at exit."""
    workdir = Path(tempfile.mkdtemp(prefix="psaspm-bench-c-", dir="/tmp"))
    procs: list[subprocess.Popen[str]] = []
    clients: list[remote.RemoteClient] = []
    try:
        program = _build(workdir)
        served = workdir / "serve.sock"
        raw = workdir / "raw.sock"
        serve = [sys.executable, "-m", "psaspm", "serve", str(ECHO_EXAMPLE)]
        procs.append(_spawn([*serve, "--listen", f"unix:{served}"], None, "serving"))
        fake = workdir / "fake.sock"
        peer = [sys.executable, str(FIXTURES / "raw_echo_peer.py")]
        procs.append(_spawn([*peer, str(raw), "raw"], None, "ready"))
        procs.append(_spawn([*peer, str(fake), "mailbox"], None, "ready"))
        env = dict(os.environ, PSASPM_SERVER=f"unix:{served}")
        yield Sides(
            c_call=_runner([str(program), "psa"], env, procs),
            raw=_runner([str(program), "raw", str(raw)], env, procs),
            py_call=_python_remote(f"unix:{served}", clients),
            c_fake=_runner([str(program), "psa"], dict(env, PSASPM_SERVER=f"unix:{fake}"), procs),
        )
    finally:
        for client in clients:
            client.disconnect()
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
