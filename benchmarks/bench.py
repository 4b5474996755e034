"""psaspm benchmarks: each case times its two sides in the same run.

Run with ``make bench`` (or ``python -m benchmarks.bench``).  For every case
the two sides ``a`` and ``b`` are timed in interleaved repetitions (a, b, then
b, a, ...); each repetition runs a batch sized to take about ``--batch-ms``
and records the time per operation; a side's figure is the median over the
repetitions.  ``ratio = a_us / b_us``; lower is better and ``target`` is the
ratio to reach.  The numbers go to ``benchmarks/results.json``.

Nothing here asserts on time: the tests never time anything.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

import psaspm
from psaspm import remote
from psaspm.consts import PSA_IPC_CALL, PSA_SUCCESS
from psaspm.kernel.door import DOOR
from psaspm.kernel.objects import ConnStatus
from psaspm.system import CodeSpec, NsClient, System
from psaspm.trace import ChromeTrace

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
ECHO_SFN = FIXTURES / "echo_sfn.yaml"
ECHO_IPC = FIXTURES / "echo_ipc.yaml"
EXAMPLES = HERE.parent / "examples"
SHARED = Path(os.environ.get("PSASPM_SHARED", HERE.parent.parent / "shared"))
TFM_LIST = SHARED / "tfm-manifests/trusted-firmware-m/tools/tfm_manifest_list.yaml"
TESTS_LIST = (
    SHARED / "tfm-manifests/tf-m-tests/tests_reg/test/secure_fw/tfm_test_manifest_list.yaml"
)
VEC = 64  # bytes in the echo's in-vector and out-vector
SCALE_PARTITIONS = 256
SCALE_CONNECTIONS = 1000
INSTANCES = 3  # systems per side, timed in turn

Runner = Callable[[int], float]  # run n operations, return the elapsed seconds


# --------------------------------------------------------------------------- timing
def _calibrate(run: Runner, batch_s: float) -> int:
    """How many operations make one batch of about ``batch_s`` seconds."""
    run(1)  # warm up
    n = 1
    while True:
        elapsed = run(n)
        if elapsed >= batch_s / 4 or n >= 1 << 22:
            return max(1, round(n * batch_s / max(elapsed, 1e-9)))
        n *= 4


def _rotating(runners: list[Runner]) -> Runner:
    """One runner that uses ``runners`` in turn, one batch each."""
    turn = itertools.cycle(runners)

    def run(n: int) -> float:
        return next(turn)(n)

    return run


def measure(a: Runner, b: Runner, reps: int, batch_s: float) -> tuple[float, float]:
    """Median seconds per operation of ``a`` and ``b``, in interleaved repetitions."""
    na = _calibrate(a, batch_s)
    nb = _calibrate(b, batch_s)
    ta: list[float] = []
    tb: list[float] = []
    for rep in range(reps):
        sides = [(a, na, ta), (b, nb, tb)]
        if rep % 2:
            sides.reverse()
        for run, n, acc in sides:
            gc.collect()
            acc.append(run(n) / n)
    return statistics.median(ta), statistics.median(tb)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


# --------------------------------------------------------------------------- systems
def _module(name: str, source: str) -> ModuleType:
    module = ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def _booted(sources: list[Path], backend: str, isolation: int, **kw: Any) -> System:
    system = psaspm.load(sources, backend=backend, isolation=isolation, **kw)
    system.boot()
    return system


def _echo_call(system: System, handle_name: str) -> Runner:
    """``ns.call`` of the echo: one 64-byte in-vector echoed to a 64-byte out-vector."""
    return _echo_runner(system.ns_client(), system.constants[handle_name], handle_name)


def _echo_runner(ns: NsClient | remote.RemoteClient, handle: int, what: str) -> Runner:
    """Time ``ns.call(handle)`` of an echo, checked once: 64 bytes in, the same 64 out."""
    ins = (bytes(range(VEC)),)
    out = bytearray(VEC)
    outs = (out,)
    if ns.call(handle, PSA_IPC_CALL, ins, outs) != PSA_SUCCESS or out != ins[0]:
        raise RuntimeError(f"{what} does not echo")
    call = ns.call
    clock = time.perf_counter

    def run(n: int) -> float:
        t0 = clock()
        for _ in range(n):
            call(handle, PSA_IPC_CALL, ins, outs)
        return clock() - t0

    return run


def _example_echo(folder: str) -> Runner:
    """``ns.call(ECHO)`` of examples/<folder>'s echo partition over one connection: a
    64-byte in-vector echoed to a 64-byte out-vector (IPC backend, isolation 1)."""
    system = _booted([EXAMPLES / folder / "echo_service.yaml"], "ipc", 1)
    ns = system.ns_client()
    handle = ns.connect(system.constants["EXAMPLE_ECHO_SID"], 1)
    return _echo_runner(ns, handle, f"examples/{folder}")


@contextmanager
def _message_for(
    system: System, service: str, ins: tuple[bytes], outs: tuple[bytearray]
) -> Iterator[Any]:
    """A real message of ``system``, as the service sees it while it serves the message.

    Allocates a stateless connection in the system's own pool, fills it with a
    PSA_IPC_CALL carrying ``ins``/``outs``, marks it delivered and received,
    makes the service's partition the running one and installs the system's
    interface behind the PSA door: exactly the state in which the SFN backend
    calls the service function.  Yields ``(msg, connection)``.
    """
    kernel = system._kernel
    assert kernel is not None
    spm = kernel.spm
    svc = spm.by_sid[system.constants[f"{service}_SID"]]
    target = svc.partition
    conn = spm.pool.allocate(svc, spm.ns_agent, spm.ns_agent.client_id)
    assert conn is not None
    conn.stateless = True
    conn.set_message(PSA_IPC_CALL, ins, outs)
    conn.status = ConnStatus.ACTIVE
    conn.received = True
    previous_iface, previous_current = DOOR.iface, spm.current
    DOOR.iface = kernel.iface
    spm.current = target
    target.current_request = conn
    try:
        yield conn.msg(), conn
    finally:
        target.current_request = None
        spm.current = previous_current
        DOOR.iface = previous_iface
        spm.pool.free(conn)


def _direct_sfn(system: System, module: ModuleType) -> Runner:
    """The SFN echo's service function called directly with an equivalent message."""
    sfn = module.echo_sfn_sfn
    ins = (bytes(range(VEC)),)
    out = bytearray(VEC)
    outs = (out,)
    clock = time.perf_counter

    def run(n: int) -> float:
        with _message_for(system, "ECHO_SFN", ins, outs) as (msg, conn):
            in_pos = conn.in_pos
            out_written = conn.out_written
            t0 = clock()
            for _ in range(n):
                # A fresh message's state: nothing read, nothing written yet.
                in_pos[0] = 0
                out_written[0] = 0
                sfn(msg)
            elapsed = clock() - t0
            if out != ins[0]:
                raise RuntimeError("the direct echo does not echo")
        return elapsed

    return run


def _clearing(trace: Any, call: Runner) -> Runner:
    def run(n: int) -> float:
        trace.events.clear()  # keep memory flat; the clearing is outside the timed loop
        return call(n)

    return run


def _load_fixture_code(name: str) -> ModuleType:
    path = FIXTURES / f"{name}.py"
    return _module(f"bench_{name}", path.read_text(encoding="utf-8"))


FILLER_MANIFEST = """{{
  "psa_framework_version": 1.1,
  "name": "BENCH_SP_FILL_{i}",
  "type": "APPLICATION-ROT",
  "priority": "NORMAL",
  "model": "IPC",
  "entry_point": "fill_main",
  "stack_size": "0x400",
  "services": [
    {{"name": "FILL_{i}", "sid": "{sid:#010x}", "non_secure_clients": true,
      "connection_based": true, "version": 1}}
  ]
}}
"""

FILLER_CODE = """
from psaspm.psa import PSA_BLOCK, PSA_SUCCESS, PSA_WAIT_ANY, psa_get, psa_reply, psa_wait

def fill_main():
    while True:
        signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        msg = psa_get(signals & -signals)
        psa_reply(msg.handle, PSA_SUCCESS)
"""


def _scale_system(workdir: Path, partitions: int, connections: int) -> System:
    """The IPC level-1 echo among ``partitions - 1`` fillers, with ``connections`` open."""
    fill = _module("bench_fill", FILLER_CODE)
    sources = [ECHO_IPC]
    code: dict[str, Any] = {"BENCH_SP_ECHO_IPC": _load_fixture_code("echo_ipc")}
    for i in range(partitions - 1):
        path = workdir / f"fill_{partitions}_{i}.yaml"
        path.write_text(FILLER_MANIFEST.format(i=i, sid=0x10000 + i), encoding="utf-8")
        sources.append(path)
        code[f"BENCH_SP_FILL_{i}"] = fill
    system = _booted(sources, "ipc", 1, code=code, max_connections=max(8, connections + 8))
    ns = system.ns_client()
    for c in range(connections):
        i = c % (partitions - 1)
        handle = ns.connect(system.constants[f"FILL_{i}_SID"], 1)
        if handle <= 0:
            raise RuntimeError(f"connect to FILL_{i} failed: {handle}")
    return system


def _connect_close(system: System) -> Runner:
    ns = system.ns_client()
    sid = system.constants["ECHO_CONN_SID"]
    connect = ns.connect
    close = ns.close
    clock = time.perf_counter

    def run(n: int) -> float:
        t0 = clock()
        for _ in range(n):
            close(connect(sid, 1))
        return clock() - t0

    return run


# ---------------------------------------------------------------- TF-M + tf-m-tests boot
def _conditionals(path: Path) -> set[str]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {e["conditional"] for e in doc["manifest_list"] if "conditional" in e}


def _trivial_code(system: System) -> dict[str, ModuleType]:
    """Trivial code for every partition: IPC entries loop on psa_wait/psa_get/psa_reply,
    SFN functions return PSA_SUCCESS, FLIH functions PSA_FLIH_NO_SIGNAL."""
    from psaspm.manifest.model import Handling, Model

    code: dict[str, ModuleType] = {}
    for part in system.manifest.partitions:
        lines = [
            "from psaspm.psa import *",
            "def _ok(*_args):",
            "    return PSA_SUCCESS",
        ]
        for irq in part.irqs:
            if irq.handling is Handling.FLIH:
                lines.append(
                    f"def {irq.name.removesuffix('_SIGNAL').lower()}_flih():\n"
                    "    return PSA_FLIH_NO_SIGNAL"
                )
        if part.model is Model.IPC:
            signals = tuple(s.signal for s in part.services)
            lines.append(
                f"def {part.entry_point}():\n"
                "    while True:\n"
                "        signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)\n"
                f"        for bit in {signals!r}:\n"
                "            if signals & bit:\n"
                "                msg = psa_get(bit)\n"
                "                psa_reply(msg.handle, PSA_SUCCESS)"
            )
        else:
            if part.entry_init:
                lines.append(f"{part.entry_init} = _ok")
            lines.extend(f"{s.name.lower()}_sfn = _ok" for s in part.services)
        code[part.name] = _module(f"bench_trivial_{part.name.lower()}", "\n".join(lines) + "\n")
    return code


def _boot_and_parse() -> tuple[Runner, Runner, int]:
    lists = [TFM_LIST, TESTS_LIST]
    config = {flag: True for path in lists for flag in _conditionals(path)}
    # The FLIH and SLIH tests bind one timer source; a build enables one of them.
    config["TFM_PARTITION_SLIH_TEST"] = False
    probe = psaspm.load(lists, backend="ipc", isolation=1, config=config)
    code = _trivial_code(probe)
    files = [*lists, *(p.manifest_path for p in probe.manifest.partitions)]
    clock = time.perf_counter

    def boot(n: int) -> float:
        t0 = clock()
        for _ in range(n):
            psaspm.load(lists, backend="ipc", isolation=1, config=config, code=code).boot()
        return clock() - t0

    def parse(n: int) -> float:
        t0 = clock()
        for _ in range(n):
            for path in files:
                with open(path, encoding="utf-8") as f:
                    yaml.safe_load(f.read())
        return clock() - t0

    return boot, parse, len(probe.manifest.partitions)


# --------------------------------------------------------------------------- serve
RAW_ECHO_SERVER = """
import socket, sys
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen(1)
print("ready", flush=True)
conn, _ = listener.accept()
while True:
    data = conn.recv(65536)
    if not data:
        break
    conn.sendall(data)
"""


def _spawn(args: list[str], cpus: set[int] | None, ready: str) -> subprocess.Popen[str]:
    """A server process (on ``cpus`` only, if given) that has printed ``ready``."""

    def pin() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=pin if cpus is not None else None,
        cwd=HERE.parent,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if ready not in line:
        proc.kill()
        raise RuntimeError(f"{args[:4]} did not start: {line!r}")
    return proc


@contextmanager
def _affinity(cpus: set[int] | None) -> Iterator[None]:
    """This process (and threads it starts meanwhile) on ``cpus`` for the duration."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _stop(proc: subprocess.Popen[str]) -> None:
    """End a helper process (its stdin closed first, for those that read it) and close
    its pipes."""
    if proc.stdin is not None:
        proc.stdin.close()
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@dataclass
class RemoteSides:
    remote: Runner  # psaspm.remote call through psaspm serve
    raw: Runner  # the raw round trip
    floor: Runner  # the same call to a minimal server running the SPE with no agent


def _remote_sides(stack: ExitStack, workdir: Path, cpus: set[int] | None) -> RemoteSides:
    """A remote 64-byte echo call through ``psaspm serve``, the raw 64-byte round trip over
    a Unix socket to a Python echo process, and the same remote call to the minimal server
    of ``fixtures/raw_echo_peer.py spm`` (the floor); every server on ``cpus``, if given."""
    tag = "pinned" if cpus is not None else "free"
    raw_path = workdir / f"raw-{tag}.sock"
    raw = _spawn([sys.executable, "-c", RAW_ECHO_SERVER, str(raw_path)], cpus, "ready")
    stack.callback(_stop, raw)
    peer_path = workdir / f"peer-{tag}.sock"
    peer = _spawn(
        [sys.executable, str(FIXTURES / "raw_echo_peer.py"), str(peer_path), "spm", str(ECHO_IPC)],
        cpus,
        "ready",
    )
    stack.callback(_stop, peer)
    serve_path = workdir / f"serve-{tag}.sock"
    serve = _spawn(
        [sys.executable, "-m", "psaspm", "serve", str(ECHO_IPC), "--listen", f"unix:{serve_path}"],
        cpus,
        "serving",
    )
    stack.callback(_stop, serve)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(raw_path))
    stack.callback(sock.close)
    client = remote.connect(f"unix:{serve_path}")
    stack.callback(client.disconnect)
    peer_client = remote.connect(f"unix:{peer_path}")
    stack.callback(peer_client.disconnect)
    handle = psaspm.load([ECHO_IPC]).constants["ECHO_IPC_HANDLE"]
    remote_echo = _echo_runner(client, handle, "the remote echo")
    floor_echo = _echo_runner(peer_client, handle, "the minimal server")
    payload = bytes(range(VEC))
    clock = time.perf_counter
    send = sock.sendall
    recv = sock.recv

    def raw_echo(n: int) -> float:
        t0 = clock()
        for _ in range(n):
            send(payload)
            got = len(recv(65536))
            while got < VEC:
                got += len(recv(65536))
        return clock() - t0

    return RemoteSides(remote_echo, raw_echo, floor_echo)


# --------------------------------------------------------------------------- cases
@dataclass
class Case:
    id: str
    a: str
    b: str
    target: float
    a_us: float = 0.0
    b_us: float = 0.0

    @property
    def ratio(self) -> float:
        return self.a_us / self.b_us

    @property
    def met(self) -> bool:
        return self.target == 0 or self.ratio <= self.target  # target 0: recorded only


def run_cases(reps: int, batch_s: float, only: set[str] | None) -> list[Case]:
    cases: list[Case] = []

    def case(
        cid: str, a_desc: str, b_desc: str, target: float, a: Runner, b: Runner, r: int = reps
    ) -> None:
        if only is not None and cid not in only:
            return
        c = Case(cid, a_desc, b_desc, target)
        a_s, b_s = measure(a, b, r, batch_s)
        c.a_us, c.b_us = a_s * 1e6, b_s * 1e6
        cases.append(c)
        mark = "rec" if not target else "ok " if c.met else "MISS"
        goal = f"target<={target:g}" if target else "no target (recorded)"
        print(
            f"{mark} {cid:<22} a={c.a_us:10.2f} us  b={c.b_us:10.2f} us  "
            f"ratio={c.ratio:6.3f}  {goal}",
            flush=True,
        )
        print(f"       a: {a_desc}\n       b: {b_desc}", flush=True)

    # Every side made of fresh systems is timed on INSTANCES systems in turn: one
    # system instance can run a few percent faster or slower than an identical one
    # (memory layout, greenlet stacks), which matters for targets like 1.05.
    echo_sfn_code = _load_fixture_code("echo_sfn")
    sfns = [
        _booted([ECHO_SFN], "sfn", 1, code={"BENCH_SP_ECHO_SFN": echo_sfn_code})
        for _ in range(INSTANCES)
    ]
    sfn_call = _rotating([_echo_call(s, "ECHO_SFN_HANDLE") for s in sfns])

    def ipc(isolation: int, code: CodeSpec | None = None, **kw: Any) -> list[System]:
        """INSTANCES booted IPC echo systems; ``code``: the echo's (Python by default)."""
        spec = _load_fixture_code("echo_ipc") if code is None else code
        return [
            _booted([ECHO_IPC], "ipc", isolation, code={"BENCH_SP_ECHO_IPC": spec}, **kw)
            for _ in range(INSTANCES)
        ]

    def echo(systems: list[System]) -> Runner:
        return _rotating([_echo_call(s, "ECHO_IPC_HANDLE") for s in systems])

    ipc1 = ipc(1)
    ipc1_call = echo(ipc1)

    case(
        "sfn_vs_direct",
        "SFN backend: ns.call of the stateless 64-byte echo",
        "the same service function called directly with an equivalent message (same SPM)",
        4,
        sfn_call,
        _rotating([_direct_sfn(s, echo_sfn_code) for s in sfns]),
    )
    case(
        "ipc1_vs_sfn",
        "IPC backend, isolation 1 (cross call): the echo as an IPC-model partition",
        "SFN backend: the echo call of sfn_vs_direct",
        2,
        ipc1_call,
        sfn_call,
    )
    case(
        "ipc2_vs_ipc1",
        "IPC backend, isolation 2 (SVC): the echo call",
        "IPC backend, isolation 1 (cross call): the echo call",
        1.2,
        echo(ipc(2)),
        ipc1_call,
    )
    case(
        "ipc3_vs_ipc1",
        "IPC backend, isolation 3 (SVC): the echo call",
        "IPC backend, isolation 1 (cross call): the echo call",
        1.2,
        echo(ipc(3)),
        ipc1_call,
    )
    if only is None or "scale_256_vs_2" in only:
        with tempfile.TemporaryDirectory(prefix="psaspm-bench-") as tmp:
            big = [
                _scale_system(Path(tmp), SCALE_PARTITIONS, SCALE_CONNECTIONS)
                for _ in range(INSTANCES)
            ]
            small = [_scale_system(Path(tmp), 2, 0) for _ in range(INSTANCES)]
        case(
            "scale_256_vs_2",
            f"the IPC level-1 echo call with {SCALE_PARTITIONS} partitions and "
            f"{SCALE_CONNECTIONS} open connections",
            "the same call with 2 partitions and no open connection",
            1.1,
            echo(big),
            echo(small),
        )
        del big, small
    c_echo_cases = {"c_echo_vs_python", "c_echo_vs_python_sfn", "c_echo_vs_python_ipc3"}
    if only is None or (c_echo_cases | {"c_echo_threads"}) & only:
        c_echo = FIXTURES / "echo_ipc.c"
        c_ipc1 = ipc(1, code=c_echo)
        case(
            "c_echo_vs_python",
            "IPC backend, isolation 1: the echo call, partition code in C (fixtures/echo_ipc.c)",
            "IPC backend, isolation 1: the echo call, the same partition in Python",
            1.5,
            echo(c_ipc1),
            ipc1_call,
        )
        if only is None or "c_echo_vs_python_sfn" in only:
            c_sfn = [
                _booted([ECHO_SFN], "sfn", 1, code={"BENCH_SP_ECHO_SFN": FIXTURES / "echo_sfn.c"})
                for _ in range(INSTANCES)
            ]
            case(
                "c_echo_vs_python_sfn",
                "SFN backend: the stateless echo call, service function in C (fixtures/echo_sfn.c)",
                "SFN backend: the same call, the service function in Python (side a of "
                "sfn_vs_direct)",
                0,
                _rotating([_echo_call(s, "ECHO_SFN_HANDLE") for s in c_sfn]),
                sfn_call,
            )
            del c_sfn
        if only is None or "c_echo_vs_python_ipc3" in only:
            case(
                "c_echo_vs_python_ipc3",
                "IPC backend, isolation 3 (SVC): the echo call, partition code in C",
                "IPC backend, isolation 3: the same call, the same partition in Python",
                0,
                echo(ipc(3, code=c_echo)),
                echo(ipc(3)),
            )
        if only is None or "c_echo_threads" in only:
            case(
                "c_echo_threads",
                "IPC backend, isolation 1: the C echo call, its code on an OS thread "
                "(c_threads=True)",
                "the same call, the C code on the partition's greenlet (side a of "
                "c_echo_vs_python)",
                0,
                echo(ipc(1, code=c_echo, c_threads=True)),
                echo(c_ipc1),
            )
        del c_ipc1
    case(
        "c_example_echo_vs_python",
        "IPC backend, isolation 1: an ECHO call of examples/echo_c (C; its psa_read loop "
        "reads each in-vector to its end: 5 psa_read calls)",
        "the same call of examples/echo (Python; 4 psa_read calls)",
        1.5,
        _rotating([_example_echo("echo_c") for _ in range(INSTANCES)]),
        _rotating([_example_echo("echo") for _ in range(INSTANCES)]),
    )
    case(
        "connect_close_vs_call",
        "IPC backend, isolation 1: one psa_connect + psa_close pair",
        "IPC backend, isolation 1: the echo call",
        3,
        _rotating([_connect_close(s) for s in ipc1]),
        ipc1_call,
    )
    bare_call = echo(ipc(1, counters=False))
    case(
        "counters_vs_bare",
        "IPC level-1 echo call, counters on, no tracer",
        "the same call with no instrument installed",
        1.05,
        echo(ipc(1, counters=True)),
        bare_call,
        r=max(reps, 21),
    )

    def traced(factory: Callable[[], Any]) -> Runner:
        calls: list[Runner] = []
        for _ in range(INSTANCES):
            trace = factory()
            call = _echo_call(ipc(1, counters=False, tracer=trace)[0], "ECHO_IPC_HANDLE")
            calls.append(_clearing(trace, call))
        return _rotating(calls)

    case(
        "trace_vs_bare",
        "IPC level-1 echo call with the trace writer on, no counters: "
        "psaspm.trace.ChromeTrace (events kept in memory)",
        "the same call with no instrument installed",
        2,
        traced(ChromeTrace),
        bare_call,
    )
    for placement, pinned in (("pinned", True), ("unpinned", False)):
        cid = f"remote_vs_raw_{placement}"
        floor_id = f"remote_floor_vs_raw_{placement}"
        if only is not None and not {cid, floor_id} & only:
            continue
        if pinned and not hasattr(os, "sched_setaffinity"):
            print(f"skip {cid}, {floor_id}: this OS cannot pin processes to a CPU", flush=True)
            continue
        cpus = {max(os.sched_getaffinity(0))} if pinned else None
        where = "every process on one CPU" if pinned else "processes unpinned"
        raw_desc = f"a raw 64-byte Unix-socket round trip to a Python echo process, {where}"
        with (
            ExitStack() as stack,
            tempfile.TemporaryDirectory(prefix="psaspm-", dir="/tmp") as tmp,
            _affinity(cpus),
        ):
            remote_sides = _remote_sides(stack, Path(tmp), cpus)
            case(
                cid,
                f"psaspm.remote call of the stateless 64-byte IPC echo through psaspm serve "
                f"(another process, Unix socket), {where}",
                raw_desc,
                2.5,
                remote_sides.remote,
                remote_sides.raw,
            )
            case(
                floor_id,
                "the floor of side a of remote_vs_raw: the same psaspm.remote call to a "
                "minimal Python server whose SPE runs the echo with no mailbox NS agent "
                f"(fixtures/raw_echo_peer.py spm), {where}",
                raw_desc,
                0,
                remote_sides.floor,
                remote_sides.raw,
            )
    c_cases = {"c_client_vs_raw_socket", "c_client_vs_py_remote", "c_client_fake_vs_raw_socket"}
    if only is None or c_cases & only:
        from benchmarks.c_client import c_client_sides

        with c_client_sides() as sides:
            c_desc = (
                "C client library: psa_call of the 64-byte echo (examples/echo) on psaspm "
                "serve in another process, over a Unix socket"
            )
            raw_desc = "the same C program: a raw 64-byte Unix-socket round trip, Python peer"
            case("c_client_vs_raw_socket", c_desc, raw_desc, 0, sides.c_call, sides.raw)
            case(
                "c_client_vs_py_remote",
                c_desc,
                "psaspm.remote (blocking client, this process): the same call, same server",
                0,
                sides.c_call,
                sides.py_call,
            )
            case(
                "c_client_fake_vs_raw_socket",
                "the C client's echo call on a minimal Python mailbox peer (no SPM)",
                raw_desc,
                0,
                sides.c_fake,
                sides.raw,
            )
    if only is None or "boot_vs_parse" in only:
        boot, parse, count = _boot_and_parse()
        case(
            "boot_vs_parse",
            f"load, validate and boot TF-M's list + the tf-m-tests list "
            f"({count} partitions, every flag on but the SLIH test, trivial code)",
            "yaml.safe_load of the same files (both lists and every manifest)",
            3,
            boot,
            parse,
            r=max(7, reps // 2),
        )
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=21, help="repetitions per side (>= 7)")
    parser.add_argument("--batch-ms", type=float, default=50.0, help="time per batch")
    parser.add_argument("--only", action="append", help="run only this case (repeatable)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)
    reps = max(7, args.reps)
    info = machine()
    print(f"machine: {info}\nmedian of {reps} interleaved repetitions per side", flush=True)
    cases = run_cases(reps, args.batch_ms / 1000.0, set(args.only) if args.only else None)
    result = {
        "machine": info,
        "cases": [
            {
                "id": c.id,
                "a_us": round(c.a_us, 3),
                "b_us": round(c.b_us, 3),
                "ratio": round(c.ratio, 3),
                "target": c.target,
            }
            for c in cases
        ],
    }
    if args.only is None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    targeted = [c for c in cases if c.target]
    met = sum(c.met for c in targeted)
    print(f"{met}/{len(targeted)} targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
