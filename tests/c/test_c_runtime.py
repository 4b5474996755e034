"""C partitions run in psaspm, interchangeable with Python ones (contract section 9).

The C examples answer the examples' own non-secure scripts exactly as the
Python partitions do, in every configuration they support; the C probe
partition (tests/c/partitions/c_probe.c) exercises one rule per call type.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

import psaspm
from psaspm.cbuild import build_code, system_headers_dir
from psaspm.cli import main
from psaspm.consts import PSA_IPC_CALL, PSA_SUCCESS
from psaspm.crt import SHIM_INCLUDE, SHIM_SOURCE
from psaspm.system import System

from .conftest import EXAMPLES, compile_check, ns_output

PARTITIONS = Path(__file__).resolve().parent / "partitions"
PROBE = PARTITIONS / "c_probe.yaml"
CHECKSUM_PY = EXAMPLES / "stateless" / "checksum.yaml"
CHECKSUM_C = EXAMPLES / "stateless_c" / "checksum.yaml"
FLIH_MANIFEST = (
    "tfm-manifests/tf-m-tests/tests_reg/test/secure_fw/suites/spm/irq/service/"
    "tfm_flih_test_service/tfm_flih_test_service.yaml"
)

ALL_CONFIGS = [("sfn", 1), ("ipc", 1), ("ipc", 2), ("ipc", 3)]
IPC_CONFIGS = [("ipc", 1), ("ipc", 2), ("ipc", 3)]
# The two ways C code runs: on its partition's greenlet, or on an OS thread (c_threads).
THREAD_MODES = pytest.mark.parametrize("c_threads", [False, True], ids=["greenlet", "os-thread"])

# C_PROBE call types (c_probe.c)
COUNT = 0
PANIC = 1
BAD_HANDLE = 2
BAD_WRITE = 3
BAD_CALL = 4
NESTED = 5
DEEP = 6
TOO_MANY = 7
INITS = 8
HAL = 9
NULL_READ = 10
EMPTY_VECS = 11
OUT_AFTER = 12


@pytest.mark.parametrize(("backend", "isolation"), IPC_CONFIGS)
def test_c_echo_answers_like_the_python_echo(
    backend: str, isolation: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/echo/ns_app.py prints the same lines, with the same counters, against the
    C echo partition as against the Python one."""
    python = ns_output("echo", EXAMPLES / "echo" / "echo_service.yaml", backend, isolation, capsys)
    c = ns_output("echo", EXAMPLES / "echo_c" / "echo_service.yaml", backend, isolation, capsys)
    assert c == python
    assert "hello, secure world" in c[0]


@pytest.mark.parametrize(("backend", "isolation"), ALL_CONFIGS)
def test_c_stateless_answers_like_the_python_one(
    backend: str, isolation: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/stateless/ns_app.py prints the same lines, with the same counters, against
    the C checksum partition as against the Python one."""
    python = ns_output("stateless", CHECKSUM_PY, backend, isolation, capsys)
    c = ns_output("stateless", CHECKSUM_C, backend, isolation, capsys)
    assert c == python


def _probe(
    backend: str, isolation: int, checksum: Path = CHECKSUM_PY, c_threads: bool = False
) -> System:
    system = psaspm.load(
        [PROBE, checksum], backend=backend, isolation=isolation, c_threads=c_threads
    )
    system.boot()
    return system


def _call(
    system: System, type: int, ins: list[bytes] | None = None, size: int = 8
) -> tuple[int, bytes]:
    out = bytearray(size)
    handle = system.constants["C_PROBE_HANDLE"]
    status = system.ns_client().call(handle, type, ins or [], [out])
    return status, bytes(out)


@THREAD_MODES
@pytest.mark.parametrize(("backend", "isolation"), ALL_CONFIGS)
@pytest.mark.parametrize("checksum", [CHECKSUM_PY, CHECKSUM_C], ids=["c-to-python", "c-to-c"])
def test_nested_call_with_stack_vectors(
    backend: str, isolation: int, checksum: Path, c_threads: bool
) -> None:
    """A C partition calls another partition (Python or C) with vectors in its own stack
    buffers, on a greenlet or an OS thread: the service reads the in-vectors, its reply
    lands in the stack out-vector, and out_vec.len is the number of bytes written."""
    system = _probe(backend, isolation, checksum, c_threads)
    data = b"The quick brown fox jumps over the lazy dog"
    status, out = _call(system, NESTED, [data])
    assert status == PSA_SUCCESS
    assert out == zlib.crc32(data).to_bytes(4, "big")  # 4 bytes written, not the 8 offered
    assert system.stats["messages"] == 2


@pytest.mark.parametrize(("backend", "isolation"), ALL_CONFIGS)
def test_reset_reloads_c_globals(backend: str, isolation: int) -> None:
    """A C global counts calls from 0 in each boot: reset() loads a fresh image."""
    system = _probe(backend, isolation)
    assert [_call(system, COUNT, size=4)[1] for _ in range(3)] == [
        n.to_bytes(4, "little") for n in (1, 2, 3)
    ]
    system.reset()
    assert _call(system, COUNT, size=4)[1] == (1).to_bytes(4, "little")
    assert _call(system, INITS, size=4)[1] == (1).to_bytes(4, "little")


@pytest.mark.parametrize(("backend", "isolation"), ALL_CONFIGS)
@pytest.mark.parametrize(
    ("type", "api", "reason"),
    [
        (PANIC, "psa_panic", "psa_panic"),
        (BAD_HANDLE, "psa_read", "is not the handle of a message"),
        (DEEP, "psa_read", "is not the handle of a message"),
        (BAD_WRITE, "psa_write", "0x10 (4 bytes) is not memory the caller may read"),
        (BAD_CALL, "psa_call", "in-vector 0 at 0x10 (8 bytes) is not memory the caller may read"),
        (TOO_MANY, "psa_call", "PSA_MAX_IOVEC"),
    ],
    ids=[
        "psa_panic",
        "bad-handle",
        "deep-stack",
        "bad-write-pointer",
        "bad-call-pointer",
        "too-many-vectors",
    ],
)
def test_c_panic_names_partition_and_api(
    backend: str, isolation: int, type: int, api: str, reason: str
) -> None:
    """A panic in C code (psa_panic, a programmer error, a bad pointer handed to psaspm, at
    any depth) unwinds the C frames: system.panic names the partition, the API and the
    reason, psaspm goes on, and after reset() the partition serves again."""
    system = _probe(backend, isolation)
    with pytest.raises(psaspm.Panic):
        _call(system, type, [b"abc"])
    assert system.state == "panicked"
    assert system.panic is not None
    assert (system.panic.partition, system.panic.api) == ("TFM_SP_C_PROBE", api)
    assert reason in system.panic.reason
    system.reset()
    assert _call(system, COUNT, size=4) == (PSA_SUCCESS, (1).to_bytes(4, "little"))


@pytest.mark.parametrize(("backend", "isolation"), [("sfn", 1), ("ipc", 1)])
def test_c_hal_reads_and_writes_modelled_memory(backend: str, isolation: int) -> None:
    """psaspm_hal_read32/write32 reach the modelled memory with psaspm.hal's checks: a
    privileged C partition updates a word of NS RAM, and an address with no memory is
    its MemManage fault, a panic naming it and the address."""
    system = _probe(backend, isolation)
    word = system.ns_memory.alloc(4, (41).to_bytes(4, "little"))
    status, out = _call(system, HAL, [word.addr.to_bytes(8, "little")], size=4)
    assert (status, out) == (PSA_SUCCESS, (42).to_bytes(4, "little"))
    assert system.ns_memory.read(word) == (42).to_bytes(4, "little")
    with pytest.raises(psaspm.Panic):
        _call(system, HAL, [(8).to_bytes(8, "little")])
    assert system.panic is not None
    assert (system.panic.partition, system.panic.api) == ("TFM_SP_C_PROBE", "MemManage")
    assert "0x00000008" in system.panic.reason


@pytest.mark.parametrize(("backend", "isolation"), ALL_CONFIGS)
def test_empty_vectors_may_be_null(backend: str, isolation: int) -> None:
    """A C caller's zero-length in- and out-vectors may point nowhere (NULL): nothing is
    read or written through them, and the call succeeds."""
    status, out = _call(_probe(backend, isolation), EMPTY_VECS, size=4)
    assert (status, out) == (PSA_SUCCESS, zlib.crc32(b"abc").to_bytes(4, "big"))


@pytest.mark.parametrize(("backend", "isolation"), IPC_CONFIGS)
def test_undelivered_call_leaves_c_out_vectors_alone(backend: str, isolation: int) -> None:
    """A C partition's call that finds no free connection returns
    PSA_ERROR_CONNECTION_BUSY with its out-vector's bytes and len as they were; a
    delivered call sets len to the bytes written."""
    system = psaspm.load([PROBE, CHECKSUM_PY], backend=backend, isolation=isolation)
    system.boot()
    status, out = _call(system, OUT_AFTER, size=12)
    assert status == PSA_SUCCESS
    assert out[:8] == PSA_SUCCESS.to_bytes(4, "little") + (4).to_bytes(4, "little")
    assert out[8:] == zlib.crc32(b"abc").to_bytes(4, "big")
    busy = psaspm.load(
        [PROBE, CHECKSUM_PY], backend=backend, isolation=isolation, max_connections=1
    )
    busy.boot()  # the NS call to C_PROBE takes the one connection
    status, out = _call(busy, OUT_AFTER, size=12)
    assert status == PSA_SUCCESS
    busy_status = psaspm.psa.PSA_ERROR_CONNECTION_BUSY.to_bytes(4, "little", signed=True)
    assert out == busy_status + (8).to_bytes(4, "little") + b"\xaa" * 4


def test_psa_read_checks_the_buffer_only_when_there_is_data() -> None:
    """As in TF-M, psa_read of an in-vector with nothing left returns 0 without checking
    the buffer (here NULL); with bytes left, a NULL buffer is a panic naming psa_read."""
    system = _probe("ipc", 1)
    out = bytearray(b"\xff" * 4)
    with pytest.raises(psaspm.Panic):
        system.ns_client().call(system.constants["C_PROBE_HANDLE"], NULL_READ, [b"abc"], [out])
    assert system.panic is not None
    assert system.panic.api == "psa_read" and "the buffer at 0x0 (16 bytes)" in system.panic.reason
    assert out == (0).to_bytes(4, "little")  # written before the panic: the empty read gave 0


def test_rhandle_keeps_a_c_pointer_across_calls() -> None:
    """The C echo's session, a calloc'd struct in the reverse handle, is the same on
    every call of its connection and separate per connection."""
    system = psaspm.load(EXAMPLES / "echo_c" / "echo_service.yaml")
    system.boot()
    ns = system.ns_client()
    sid = system.constants["EXAMPLE_ECHO_SID"]
    first, second = ns.connect(sid, 1), ns.connect(sid, 1)
    for _ in range(3):
        assert ns.call(first, 0, [b"x"], [bytearray(1)]) == PSA_SUCCESS
    assert ns.call(second, 0, [b"y"], [bytearray(1)]) == PSA_SUCCESS
    counts = []
    for handle in (first, second):
        out = bytearray(4)
        assert ns.call(handle, 1, [], [out]) == PSA_SUCCESS
        counts.append(int.from_bytes(out, "little"))
    assert counts == [3, 1]
    ns.close(first)
    ns.close(second)
    assert system.stats["connections_in_use"] == 0


@THREAD_MODES
@pytest.mark.parametrize(("backend", "isolation"), ALL_CONFIGS)
def test_flih_in_c(shared_dir: Path, backend: str, isolation: int, c_threads: bool) -> None:
    """tf-m-tests' FLIH test partition in C: the C FLIH runs as the line rises (on an OS
    thread: above the partition's blocked frames, as an interrupt on its stack), lowers
    it through psaspm/hal.h, and PSA_FLIH_SIGNAL wakes the partition's psa_wait."""
    system = psaspm.load(
        shared_dir / FLIH_MANIFEST,
        backend=backend,
        isolation=isolation,
        code={"TFM_SP_FLIH_TEST": PARTITIONS / "flih_test.c"},
        c_threads=c_threads,
    )
    system.boot()
    out = bytearray(64)
    handle = system.constants["TFM_FLIH_TEST_CASE_HANDLE"]
    assert system.ns_client().call(handle, PSA_IPC_CALL, [], [out]) == PSA_SUCCESS
    assert out.decode() == "timer start,flih,woken 0x80000000"
    assert system.stats["interrupts"] == 1


def test_missing_symbol_names_it_and_the_file() -> None:
    """C code without a function the manifest names is a ConfigError naming the symbol and
    the source, at boot and from check_code()."""
    source = PARTITIONS / "no_sfn.c"
    system = psaspm.load([PROBE, CHECKSUM_PY], code={"TFM_SP_C_PROBE": source})
    warnings, errors = system.check_code()
    assert warnings == []
    assert len(errors) == 1 and "c_probe_sfn()" in errors[0] and str(source) in errors[0]
    with pytest.raises(
        psaspm.ConfigError, match=r"TFM_SP_C_PROBE: .*no_sfn\.c has no function c_probe_sfn\(\)"
    ):
        system.boot()


def test_c_code_beside_the_manifest_is_found_and_checked() -> None:
    """With no .py beside a manifest, the .c there is the partition's code; check_code()
    builds it and finds every symbol."""
    system = psaspm.load(CHECKSUM_C)
    assert system.check_code() == ([], [])
    system.boot()
    assert system.state == "running"


def test_compile_error_is_a_config_error(tmp_path: Path) -> None:
    """A C source that does not compile is a ConfigError with the compiler's message, and
    the caller's cflags reach the compiler."""
    source = tmp_path / "broken.c"
    source.write_text("#ifndef WANTED\n#error WANTED is not defined\n#endif\n")
    system = psaspm.load([PROBE, CHECKSUM_PY], code={"TFM_SP_C_PROBE": source})
    with pytest.raises(psaspm.ConfigError, match="WANTED is not defined"):
        system.boot()
    flagged = psaspm.load(
        [PROBE, CHECKSUM_PY], code={"TFM_SP_C_PROBE": source}, cflags=["-DWANTED=1"]
    )
    with pytest.raises(psaspm.ConfigError, match=r"no function c_probe_init\(\)"):
        flagged.boot()


MM = PARTITIONS / "c_mm.yaml"


@pytest.mark.parametrize(("backend", "isolation"), IPC_CONFIGS)
def test_mm_iovec_from_c(backend: str, isolation: int) -> None:
    """An IPC C partition maps its vectors: it reads the in-vector and writes the
    out-vector through the mappings, and unmapping the out-vector sets its length; an
    out-vector still mapped at psa_reply reports 0 bytes written, as in TF-M."""
    system = psaspm.load([MM, CHECKSUM_PY], backend=backend, isolation=isolation)
    system.boot()
    ns = system.ns_client()
    handle = system.constants["C_MM_HANDLE"]
    out = bytearray(16)
    assert ns.call(handle, 0, [b"abcdef"], [out]) == PSA_SUCCESS
    assert out == b"fedcba"
    out = bytearray(4)
    assert ns.call(handle, 1, [], [out]) == PSA_SUCCESS
    assert out == b""


@THREAD_MODES
@pytest.mark.parametrize(("backend", "isolation"), IPC_CONFIGS)
def test_ipc_c_partition_panics_deep_and_resets(
    backend: str, isolation: int, c_threads: bool
) -> None:
    """psa_panic 32 C frames below an IPC C partition's psa_wait loop is its panic, on a
    greenlet or an OS thread; after reset() its thread runs again from its entry point."""
    system = psaspm.load(
        [MM, CHECKSUM_PY], backend=backend, isolation=isolation, c_threads=c_threads
    )
    system.boot()
    handle = system.constants["C_MM_HANDLE"]
    with pytest.raises(psaspm.Panic):
        system.ns_client().call(handle, 2)
    assert system.panic is not None
    assert (system.panic.partition, system.panic.api) == ("TFM_SP_C_MM", "psa_panic")
    system.reset()
    out = bytearray(3)
    assert system.ns_client().call(handle, 0, [b"abc"], [out]) == PSA_SUCCESS
    assert out == b"cba"


def _loaded_images(label: str) -> set[str]:
    """The files of this process's loaded images of partition ``label`` (from its maps)."""
    prefix = f"{label.lower()}-"
    with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
        paths = {line.split()[-1] for line in maps if "/psaspm-c-" in line}
    return {p for p in paths if Path(p).name.startswith(prefix)}


def test_each_boot_runs_its_own_image_file() -> None:
    """Each boot maps a fresh copy of the partition's object, kept on disk while it runs
    (a debugger can load its symbols); reset() replaces it, and the C thread blocked in
    psa_wait in the old image is unwound, not left running."""
    system = psaspm.load(EXAMPLES / "echo_c" / "echo_service.yaml")
    before = _loaded_images("TFM_SP_EXAMPLE_ECHO")
    system.boot()
    first = _loaded_images("TFM_SP_EXAMPLE_ECHO") - before
    assert len(first) == 1 and Path(next(iter(first))).is_file()
    system.reset()
    second = _loaded_images("TFM_SP_EXAMPLE_ECHO") - before - first
    assert len(second) == 1 and Path(next(iter(second))).is_file()
    assert not Path(next(iter(first))).exists()
    ns = system.ns_client()
    handle = ns.connect(system.constants["EXAMPLE_ECHO_SID"], 1)
    out = bytearray(2)
    assert ns.call(handle, 0, [b"ok"], [out]) == PSA_SUCCESS and out == b"ok"


def test_shim_matches_the_psa_headers() -> None:
    """The generated shim compiles warning-free against psaspm's PSA headers, so every
    forwarder has the prototype psa/client.h, psa/service.h and psaspm/hal.h declare."""
    done = compile_check(SHIM_SOURCE, [SHIM_INCLUDE], "-Wall", "-Wextra", "-Werror")
    assert done.returncode == 0, done.stderr


@THREAD_MODES
@pytest.mark.parametrize(("backend", "isolation"), IPC_CONFIGS)
def test_cxx_partition_throws_and_catches_across_psa_wait(
    backend: str, isolation: int, c_threads: bool
) -> None:
    """A C++ partition (its sources given as .cpp) keeps a std::vector in a global, and
    an exception thrown after psa_wait returns is caught by a try block around that
    psa_wait, on a greenlet or an OS thread; reset() runs the image's static
    constructors again."""
    system = psaspm.load(
        PARTITIONS / "cxx_echo.yaml",
        backend=backend,
        isolation=isolation,
        code={"TFM_SP_CXX_ECHO": PARTITIONS / "cxx_echo.cpp"},
        c_threads=c_threads,
    )
    system.boot()
    ns = system.ns_client()
    handle = system.constants["CXX_ECHO_HANDLE"]
    out = bytearray(8)
    assert ns.call(handle, 0, [b"ab"], [out]) == PSA_SUCCESS and out == b"ab"
    assert ns.call(handle, 1) == psaspm.psa.PSA_ERROR_INVALID_ARGUMENT
    out = bytearray(8)
    assert ns.call(handle, 0, [b"cd"], [out]) == PSA_SUCCESS and out == b"abcd"
    system.reset()
    out = bytearray(8)
    assert ns.call(handle, 0, [b"ef"], [out]) == PSA_SUCCESS and out == b"ef"


@THREAD_MODES
@pytest.mark.parametrize(("backend", "isolation"), IPC_CONFIGS)
def test_deep_c_stack_survives_a_blocking_call(
    backend: str, isolation: int, c_threads: bool
) -> None:
    """An IPC C partition 100 frames deep (a 256-byte buffer in each), on a greenlet or an
    OS thread, blocks in psa_call while the called partition runs; when it runs again
    every frame is intact and the reply is in its stack out-vector."""
    system = psaspm.load(
        [MM, CHECKSUM_PY], backend=backend, isolation=isolation, c_threads=c_threads
    )
    system.boot()
    out = bytearray(8)
    assert system.ns_client().call(system.constants["C_MM_HANDLE"], 3, [], [out]) == PSA_SUCCESS
    assert out[:4] == zlib.crc32(b"deep").to_bytes(4, "big")
    assert int.from_bytes(out[4:], "little") == 101
    assert system.stats["context_switches"] >= 4


def test_prebuilt_shared_object_runs(tmp_path: Path) -> None:
    """code= takes a prebuilt .so (here built by psaspm.cbuild against the system's
    generated headers, then copied elsewhere): it runs, and runs again after reset()."""
    system = psaspm.load(CHECKSUM_C)
    built = build_code(
        [CHECKSUM_C.with_suffix(".c")],
        label="TFM_SP_EXAMPLE_CHECKSUM",
        include_dirs=[system_headers_dir(system.manifest)],
    )
    prebuilt = tmp_path / "checksum.so"
    prebuilt.write_bytes(built.read_bytes())
    system = psaspm.load(CHECKSUM_C, code={"TFM_SP_EXAMPLE_CHECKSUM": prebuilt})
    system.boot()
    handle = system.constants["EXAMPLE_CHECKSUM_HANDLE"]
    for boot in range(2):
        if boot:
            system.reset()
        out = bytearray(4)
        assert system.ns_client().call(handle, 0, [b"abc"], [out]) == PSA_SUCCESS
        assert out == zlib.crc32(b"abc").to_bytes(4, "big")


def test_unresolved_symbol_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    """C code that calls a function nothing defines builds (a shared object may leave
    symbols undefined) but does not load: a ConfigError naming the file and the symbol,
    and the system can still be loaded again with good code."""
    source = tmp_path / "calls_nothing.c"
    source.write_text(
        '#include "psa/service.h"\n'
        "void not_defined_anywhere(void);\n"
        "psa_status_t c_probe_init(void) { not_defined_anywhere(); return 0; }\n"
        "psa_status_t c_probe_sfn(const psa_msg_t *msg) { (void)msg; return 0; }\n"
    )
    system = psaspm.load([PROBE, CHECKSUM_PY], code={"TFM_SP_C_PROBE": source})
    with pytest.raises(psaspm.ConfigError, match=r"calls_nothing\.c.*not_defined_anywhere"):
        system.boot()
    assert _call(_probe("sfn", 1), COUNT, size=4)[0] == PSA_SUCCESS


def test_cli_runs_and_checks_c_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """psaspm run takes C code with --code and compiler flags with --cflags (a value that
    starts with '-'); psaspm check reports C that does not compile (exit 2), naming the
    file, with the compiler's message."""
    source = tmp_path / "checksum.c"
    source.write_text(
        "#ifndef CHECKSUM_OK\n#error CHECKSUM_OK is not defined\n#endif\n"
        + CHECKSUM_C.with_suffix(".c").read_text()
    )
    script = str(EXAMPLES / "stateless" / "ns_app.py")
    code = f"TFM_SP_EXAMPLE_CHECKSUM={source}"
    args = [str(CHECKSUM_C), "--code", code]
    assert main(["check", *args]) == 2
    err = capsys.readouterr().err
    assert str(source) in err and "CHECKSUM_OK is not defined" in err
    assert main(["run", *args, "--cflags", "-DCHECKSUM_OK=1 -Wall", "--ns", script, "-q"]) == 0
    assert "CRC-32" in capsys.readouterr().out


@pytest.mark.parametrize(("backend", "isolation"), IPC_CONFIGS)
@pytest.mark.parametrize("echo", ["echo", "echo_c"])
def test_c_client_of_a_connection_based_service(backend: str, isolation: int, echo: str) -> None:
    """C code connects to a connection-based service (the Python or the C echo), calls it
    on that connection, and closes it: each call blocks its thread while the service's
    runs, and the service's per-connection count is the C client's."""
    system = psaspm.load(
        [PARTITIONS / "c_client.yaml", EXAMPLES / echo / "echo_service.yaml"],
        backend=backend,
        isolation=isolation,
    )
    system.boot()
    out = bytearray(7)
    status = system.ns_client().call(system.constants["C_CLIENT_HANDLE"], 0, [b"hi!"], [out])
    assert status == PSA_SUCCESS
    assert out == b"hi!" + (2).to_bytes(4, "little")
    assert system.stats["connections_in_use"] == 0
