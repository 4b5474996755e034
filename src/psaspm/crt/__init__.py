"""psaspm's C runtime: C partition code behind the same PSA door as Python's.

A small C library of psaspm's, the shim (``shim.c``, generated from the PSA API
table by ``tools/gen_api.py``), is built with :mod:`psaspm.cbuild` and loaded
once, ``RTLD_GLOBAL``, before any partition image: it defines every ``psa_*``
function of the table that has a C prototype and the ``psaspm/hal.h``
functions, each forwarding to a Python callback installed here (cffi, ABI
mode).  The callbacks call :mod:`psaspm.psa` and :mod:`psaspm.hal`, the one
door, converting arguments: vectors and buffers are copied between the
partition's memory and Python buffers on the calling partition's own thread,
so the SPM never touches a suspended partition's stack.

Every pointer partition code hands psaspm is checked against the process's
mappings (readable for what psaspm reads, writable for what it writes) before
it is used; a bad one is that partition's programmer error, a panic naming
the partition and the API, never a crash of psaspm.

Partition code is entered only through ``psaspm_enter``, the shim's setjmp
trampoline.  A callback that raises (the SPE halting, a kernel bug, anything)
has its exception parked here; the shim longjmps back to the trampoline and
:func:`enter` re-raises the exception in Python, so no exception unwinds
through C frames.  Each C partition's thread is its ordinary partition
greenlet (greenlet saves and restores C stacks), so an IPC C partition blocks
in ``psa_wait`` as a Python one does.  In the OS-thread mode (:class:`CThread`)
the code itself runs on an OS thread of the image's, and the greenlet makes the
PSA calls that thread hands back, so the kernel stays on one thread.

Each boot loads fresh images (:class:`CImage`): the built object is copied to
a file of its own, kept on disk while it runs, and opened ``RTLD_LOCAL``, so
globals and heap state start as at the first boot.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import shutil
import struct
import tempfile
import weakref
from bisect import bisect_right
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from psaspm import cbuild, hal, psa
from psaspm.consts import (
    PSA_ERROR_CONNECTION_BUSY,
    PSA_ERROR_PROGRAMMER_ERROR,
    PSA_MAX_IOVEC,
    PSA_SUCCESS,
)
from psaspm.crt._cdef import CALLBACKS, CDEF, ENTER_FLIH, ENTER_SFN, ENTER_STATUS, ENTER_VOID
from psaspm.errors import ConfigError
from psaspm.kernel.contract import Rejected
from psaspm.kernel.door import DOOR
from psaspm.kernel.objects import PsaMsg

__all__ = ["CImage", "CThread", "enter", "load_image", "runtime_ready"]

_HERE = Path(__file__).resolve().parent
SHIM_SOURCE = _HERE / "shim.c"
SHIM_INCLUDE = _HERE / "include"

# cffi, created with the shim (_Runtime): importing psaspm does not import cffi and
# its C parser; everything below that uses _ffi runs once the shim is loaded.
_ffi: Any = None

# psa_msg_t and the vectors in the host ABI (checked against the shim's sizeof at load).
_MSG = struct.Struct("@iiiP4N4N")
_VEC = struct.Struct("@PN")
_SIZE = struct.Struct("@N")
_MSG_SIZE = _MSG.size
_VEC_SIZE = _VEC.size
_LEN_OFFSET = struct.calcsize("@P")


# --------------------------------------------------------------------------- pointers
_Ranges = tuple[list[int], list[int], list[memoryview]]
# Mappings the kernel provides that are not ordinary memory (reading some vvar pages
# faults): never a valid vector.
_KERNEL_PAGES = ("[vvar]", "[vvar_vclock]", "[vsyscall]")


class _Mappings:
    """The process's readable and writable address ranges, from ``/proc/self/maps``.

    Adjacent mappings with the permission are merged, so a buffer spanning two
    of them passes, and each range has a memoryview over it, through which
    psaspm copies (checking and copying are one slice).  The parse is cached and
    redone on a miss (the heap grew, a library was loaded, a stack was mapped)
    before a pointer is refused.  Memory that partition code unmapped after the
    last parse still passes: using it is the partition's use-after-free, as on
    the target.
    """

    def __init__(self) -> None:
        # Updated in place by reload(), so that module-level aliases stay current.
        self.read_ranges: _Ranges = ([], [], [])
        self.write_ranges: _Ranges = ([], [], [])

    def reload(self) -> None:
        read: list[list[int]] = []
        write: list[list[int]] = []
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            for line in maps:
                span, _, rest = line.partition(" ")
                if rest.rstrip().endswith(_KERNEL_PAGES):
                    continue
                perms = rest[:4]
                low, _, high = span.partition("-")
                start, end = int(low, 16), int(high, 16)
                for wanted, ranges in (("r", read), ("w", write)):
                    if wanted not in perms:
                        continue
                    if ranges and ranges[-1][1] == start:
                        ranges[-1][1] = end
                    else:
                        ranges.append([start, end])
        for table, spans in ((self.read_ranges, read), (self.write_ranges, write)):
            starts, ends, views = table
            starts[:] = [start for start, _ in spans]
            ends[:] = [end for _, end in spans]
            views[:] = [
                memoryview(_ffi.buffer(_ffi.cast("char *", start), end - start))
                for start, end in spans
            ]

    def find(self, addr: int, size: int, write: bool) -> int:
        """The index of the range holding all ``size`` bytes at ``addr`` (reloading
        once on a miss), or -1."""
        starts, ends, _ = self.write_ranges if write else self.read_ranges
        index = bisect_right(starts, addr) - 1
        if index >= 0 and addr + size <= ends[index]:
            return index
        self.reload()
        index = bisect_right(starts, addr) - 1
        if index >= 0 and addr + size <= ends[index]:
            return index
        return -1

    def view(self, addr: int, size: int, write: bool) -> memoryview | None:
        """The ``size`` bytes at ``addr`` as a memoryview, if all of them are mapped
        readable (``write``: writable); None otherwise."""
        index = self.find(addr, size, write)
        if index < 0:
            return None
        starts, _, views = self.write_ranges if write else self.read_ranges
        offset = addr - starts[index]
        return views[index][offset : offset + size]


MAPPINGS = _Mappings()
_view = MAPPINGS.view
_find = MAPPINGS.find
_R_STARTS, _R_ENDS, _R_VIEWS = MAPPINGS.read_ranges
_W_STARTS, _W_ENDS, _W_VIEWS = MAPPINGS.write_ranges
_DOOR = DOOR
_EMPTY = memoryview(bytearray())


def _refuse(
    api: str, what: str, addr: int, size: int, access: str, why: str | None = None
) -> NoReturn:
    """A bad pointer from partition code: the caller's programmer error (TF-M's memory
    check fails), a panic of the running partition.  psaspm checks host memory, not
    the caller's isolation boundary: a pointer into another partition's memory, which
    TF-M refuses at isolation levels 2 and 3, passes here (less strict than TF-M)
    unless a memory guard (:func:`set_memory_guard`) says whose memory it is."""
    DOOR.hal.fault(
        api,
        f"PSA_ERROR_PROGRAMMER_ERROR: {what} at {addr:#x} ({size} bytes) is not memory "
        f"the caller may {access}" + (f": {why}" if why else ""),
    )


# A memory guard: for memory of the host that a platform gives owners (e.g. the
# psa-arch-tests host target's MMIO regions at fixed addresses), why the running
# caller may not use the ``size`` bytes at ``addr`` (None: it may).  Called after the
# mapping check passed, only when installed; empty costs one test per pointer.
MemoryGuard = Callable[[int, int], "str | None"]
_GUARD: list[MemoryGuard] = []


def set_memory_guard(guard: MemoryGuard | None) -> None:
    """Install ``guard`` for every pointer C code hands psaspm (None: remove it)."""
    _GUARD[:] = [] if guard is None else [guard]


def _guard(api: str, what: str, addr: int, size: int, access: str) -> None:
    why = _GUARD[0](addr, size)
    if why is not None:
        _refuse(api, what, addr, size, access, why)


def _source(api: str, what: str, addr: int, size: int) -> memoryview:
    """Partition memory psaspm reads, checked readable (no bytes: any pointer)."""
    if not size:
        return _EMPTY
    view = _view(addr, size, False)
    if view is None:
        _refuse(api, what, addr, size, "read")
    if _GUARD:
        _guard(api, what, addr, size, "read")
    return view


def _target(api: str, what: str, addr: int, size: int) -> memoryview:
    """Partition memory psaspm writes, checked writable (no bytes: any pointer)."""
    if not size:
        return _EMPTY
    view = _view(addr, size, True)
    if view is None:
        _refuse(api, what, addr, size, "write")
    if _GUARD:
        _guard(api, what, addr, size, "write")
    return view


def _c_string(api: str, addr: int) -> str:
    """A NUL-terminated string at ``addr`` (at most 255 bytes), checked readable."""
    index = _find(addr, 1, False)
    if index < 0:
        _refuse(api, "the string", addr, 1, "read")
    limit = min(256, _R_ENDS[index] - addr)
    offset = addr - _R_STARTS[index]
    raw = _R_VIEWS[index][offset : offset + limit].tobytes()
    end = raw.find(b"\0")
    if end < 0:
        DOOR.hal.fault(api, f"the string at {addr:#x} has no NUL in its first {limit} bytes")
    return raw[:end].decode("utf-8", "replace")


# --------------------------------------------------------------------------- callbacks
# MM-IOVEC: the buffers handed to C for mapped vectors, per message handle, kept
# alive while mapped: {handle: {vector (0-3 in, 4-7 out): (buffer, view)}}.
_mapped: dict[int, dict[int, tuple[Any, memoryview]]] = {}


def _psa_call(handle: int, type: int, in_vec: int, in_len: int, out_vec: int, out_len: int) -> int:
    try:
        if in_len + out_len > PSA_MAX_IOVEC:
            # Too many vectors: let the SPM refuse them as it refuses Python's.
            many = min(in_len, PSA_MAX_IOVEC + 1)
            empty = [bytearray() for _ in range(min(out_len, PSA_MAX_IOVEC + 1))]
            return psa.psa_call(handle, type, [b""] * many, empty)
        ins: list[bytes] = []
        if in_len:
            table = _source("psa_call", "in_vec", in_vec, in_len * _VEC_SIZE)
            for index in range(in_len):
                base, size = _VEC.unpack_from(table, index * _VEC_SIZE)
                # A copy: the caller's stack is swapped out while the service runs.
                ins.append(_source("psa_call", f"in-vector {index}", base, size).tobytes())
        if not out_len:
            return _DOOR.iface.psa_call(handle, type, ins, ())
        table = _target("psa_call", "out_vec", out_vec, out_len * _VEC_SIZE)
        targets: list[memoryview] = []
        outs: list[bytearray] = []
        for index in range(out_len):
            base, size = _VEC.unpack_from(table, index * _VEC_SIZE)
            targets.append(_target("psa_call", f"out-vector {index}", base, size))
            outs.append(bytearray(size))
        status = _DOOR.iface.psa_call(handle, type, ins, outs)
        if status == PSA_ERROR_CONNECTION_BUSY or status.__class__ is Rejected:
            # The SPM found no free connection, or refused a non-secure caller's call: it
            # was never delivered, and TF-M leaves the out-vectors as they were.  (The
            # other refusals panic a secure caller.)  A service replying
            # CONNECTION_BUSY to a call is treated alike.
            return int(status)
        # Back on the caller's own stack: copy what the service wrote, and its length.
        for index, out in enumerate(outs):
            written = len(out)
            targets[index][:written] = out
            _SIZE.pack_into(table, index * _VEC_SIZE + _LEN_OFFSET, written)
        return status
    except NsPointerRefused:
        # A bad pointer of non-secure C code (NsPointerRefused, below): a status.
        return PSA_ERROR_PROGRAMMER_ERROR


class NsPointerRefused(Exception):
    """A bad pointer in non-secure C code's ``psa_call`` (raised by the non-secure
    side's ``Hal.fault``, ``psaspm.ns_c``): the call returns
    ``PSA_ERROR_PROGRAMMER_ERROR``, as TF-M returns it to a non-secure caller whose
    vectors fail its memory check (the NSPE is never panicked)."""


def _psa_get(signal: int, msg: int) -> int:
    index = bisect_right(_W_STARTS, msg) - 1
    if index < 0 or msg + _MSG_SIZE > _W_ENDS[index]:
        index = _find(msg, _MSG_SIZE, True)
        if index < 0:
            _refuse("psa_get", "the psa_msg_t", msg, _MSG_SIZE, "write")
    if _GUARD:
        _guard("psa_get", "the psa_msg_t", msg, _MSG_SIZE, "write")
    got = _DOOR.iface.psa_get(signal)
    rhandle = got.rhandle
    _MSG.pack_into(
        _W_VIEWS[index],
        msg - _W_STARTS[index],
        got.type,
        got.handle,
        got.client_id,
        rhandle if rhandle.__class__ is int else 0,
        *got.in_size,
        *got.out_size,
    )
    return PSA_SUCCESS


def _psa_set_rhandle(msg_handle: int, rhandle: int) -> None:
    # A C reverse handle is an address, kept as an int and handed back by psa_get.
    psa.psa_set_rhandle(msg_handle, rhandle or None)


# psa_read, psa_write, psa_get and psa_reply are the hot ones: the range lookup is
# inlined, and the door's interface is called as psaspm.psa's functions call it,
# without their extra frame.
def _psa_read(msg_handle: int, invec_idx: int, buffer: int, num_bytes: int) -> int:
    data = _DOOR.iface.psa_read(msg_handle, invec_idx, num_bytes)
    size = len(data)
    if not size:
        return 0  # as TF-M: nothing left to read returns 0 before the buffer is checked
    # As TF-M, the buffer must be writable for all of num_bytes, not only what was read.
    index = bisect_right(_W_STARTS, buffer) - 1
    if index < 0 or buffer + num_bytes > _W_ENDS[index]:
        index = _find(buffer, num_bytes, True)
        if index < 0:
            _refuse("psa_read", "the buffer", buffer, num_bytes, "write")
    if _GUARD:
        _guard("psa_read", "the buffer", buffer, num_bytes, "write")
    offset = buffer - _W_STARTS[index]
    _W_VIEWS[index][offset : offset + size] = data
    return size


def _psa_write(msg_handle: int, outvec_idx: int, buffer: int, num_bytes: int) -> None:
    index = bisect_right(_R_STARTS, buffer) - 1
    if index < 0 or buffer + num_bytes > _R_ENDS[index]:
        if not num_bytes:
            _DOOR.iface.psa_write(msg_handle, outvec_idx, b"")
            return
        index = _find(buffer, num_bytes, False)
        if index < 0:
            _refuse("psa_write", "the buffer", buffer, num_bytes, "read")
    if _GUARD and num_bytes:
        _guard("psa_write", "the buffer", buffer, num_bytes, "read")
    offset = buffer - _R_STARTS[index]
    _DOOR.iface.psa_write(msg_handle, outvec_idx, _R_VIEWS[index][offset : offset + num_bytes])


def _psa_reply(msg_handle: int, status: int) -> None:
    if _mapped:
        for vector, (buffer, view) in _mapped.pop(msg_handle, {}).items():
            if vector >= PSA_MAX_IOVEC and not view.readonly:
                view[:] = _ffi.buffer(buffer, len(view))  # mapped, never unmapped
    _DOOR.iface.psa_reply(msg_handle, status)


def _map(view: memoryview, msg_handle: int, vector: int) -> int:
    buffer = _ffi.new("char[]", max(len(view), 1))
    _ffi.memmove(buffer, view, len(view))
    _mapped.setdefault(msg_handle, {})[vector] = (buffer, view)
    return int(_ffi.cast("uintptr_t", buffer))


def _psa_map_invec(msg_handle: int, invec_idx: int) -> int:
    return _map(psa.psa_map_invec(msg_handle, invec_idx), msg_handle, invec_idx)


def _psa_unmap_invec(msg_handle: int, invec_idx: int) -> None:
    psa.psa_unmap_invec(msg_handle, invec_idx)
    _mapped.get(msg_handle, {}).pop(invec_idx, None)


def _psa_map_outvec(msg_handle: int, outvec_idx: int) -> int:
    view = psa.psa_map_outvec(msg_handle, outvec_idx)
    return _map(view, msg_handle, outvec_idx + PSA_MAX_IOVEC)


def _psa_unmap_outvec(msg_handle: int, outvec_idx: int, length: int) -> None:
    psa.psa_unmap_outvec(msg_handle, outvec_idx, length)
    entry = _mapped.get(msg_handle, {}).pop(outvec_idx + PSA_MAX_IOVEC, None)
    if entry is not None and length:
        buffer, view = entry
        view[:length] = _ffi.buffer(buffer, length)


def _hal_assert_irq(source: int) -> None:
    hal.assert_irq(_c_string("psaspm_hal_assert_irq", source))


def _hal_deassert_irq(source: int) -> None:
    hal.deassert_irq(_c_string("psaspm_hal_deassert_irq", source))


# The callbacks that convert; every other one is psaspm.psa's (or psaspm.hal's)
# function of that name itself, its arguments and result being plain integers.
_CONVERTERS: dict[str, Callable[..., Any]] = {
    "psa_call": _psa_call,
    "psa_get": _psa_get,
    "psa_set_rhandle": _psa_set_rhandle,
    "psa_read": _psa_read,
    "psa_write": _psa_write,
    "psa_reply": _psa_reply,
    "psa_map_invec": _psa_map_invec,
    "psa_unmap_invec": _psa_unmap_invec,
    "psa_map_outvec": _psa_map_outvec,
    "psa_unmap_outvec": _psa_unmap_outvec,
    "psaspm_hal_assert_irq": _hal_assert_irq,
    "psaspm_hal_deassert_irq": _hal_deassert_irq,
}


def _implementation(name: str, pointers: bool) -> Callable[..., Any]:
    converter = _CONVERTERS.get(name)
    if converter is not None:
        return converter
    if pointers:
        raise ConfigError(f"psaspm C runtime: {name} takes a pointer but has no converter")
    if name.startswith("psaspm_hal_"):
        fn: Callable[..., Any] = getattr(hal, name.removeprefix("psaspm_hal_"))
        return fn
    fn = getattr(psa, name)
    return fn


class _Parked:
    """The exception a callback raised, until the trampoline returns."""

    __slots__ = ("exc",)

    def __init__(self) -> None:
        self.exc: BaseException | None = None


_PARKED = _Parked()


class _Runtime:
    """The loaded shim and its callbacks (one per process)."""

    def __init__(self) -> None:
        global _ffi
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(CDEF)
        _ffi = ffi
        so = cbuild.build_code(
            [SHIM_SOURCE],
            label="psaspm C runtime",
            include_dirs=[SHIM_INCLUDE],
            cflags=["-O2"],
        )
        copy = _copy(so, "psaspm-shim.so", "psaspm C runtime")
        self.lib: Any = _ffi.dlopen(str(copy), _ffi.RTLD_NOW | _ffi.RTLD_GLOBAL)
        sizes = [self.lib.psaspm_sizeof(i) for i in range(3)]
        if sizes != [_MSG_SIZE, _VEC_SIZE, _VEC_SIZE]:
            raise ConfigError(f"psaspm C runtime: unexpected struct sizes {sizes} in the shim")
        unwind_next = self.lib.psaspm_unwind_next

        def onerror(_type: object, exc: BaseException, _tb: object) -> None:
            _PARKED.exc = exc
            unwind_next()

        table = _ffi.new("struct psaspm_callbacks *")
        self.callbacks = []  # kept alive: the shim holds their addresses
        for name, ctype, pointers in CALLBACKS:
            callback = _ffi.callback(ctype, _implementation(name, pointers), onerror=onerror)
            self.callbacks.append(callback)
            setattr(table, name, callback)
        self.lib.psaspm_install(table)
        self.enter: Callable[[int, int, int], int] = self.lib.psaspm_enter


_RUNTIME: list[_Runtime] = []
_RUN_DIR: list[Path] = []


def _run_dir() -> Path:
    """This process's folder of loaded images (removed when the process exits)."""
    if not _RUN_DIR:
        pid = os.getpid()
        folder = Path(tempfile.mkdtemp(prefix=f"psaspm-c-{pid}-"))

        def remove() -> None:
            if os.getpid() == pid:  # not a forked child's exit: the folder is the parent's
                shutil.rmtree(folder, ignore_errors=True)

        atexit.register(remove)
        _RUN_DIR.append(folder)
    folder = _RUN_DIR[0]
    folder.mkdir(parents=True, exist_ok=True)  # someone may have cleaned /tmp
    return folder


def _copy(so: Path, name: str, label: str) -> Path:
    """A private copy of ``so`` in the run folder (what the process maps and a debugger
    finds by name)."""
    target = _run_dir() / name
    try:
        shutil.copyfile(so, target)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot copy {so} to {target}: {exc}") from None
    return target


def runtime_ready() -> Callable[[int, int, int], int]:
    """Load the shim (once): the trampoline ``psaspm_enter(kind, fn, arg)``."""
    if not _RUNTIME:
        _RUNTIME.append(_Runtime())
    return _RUNTIME[0].enter


def enter(kind: int, fn: int, arg: int = 0) -> int:
    """Run partition code at address ``fn`` through the trampoline; re-raise what a
    callback raised there (after the C frames are gone)."""
    result = _RUNTIME[0].enter(kind, fn, arg)
    exc = _PARKED.exc
    if exc is not None:
        _PARKED.exc = None
        raise exc
    return result


# The OS-thread mode: each thread's stack (below 2 GiB, TF-M code keeps pointers in
# uint32_t).  A TF-M partition's own stack_size is a few KiB; libc (printf) and
# AddressSanitizer's redzones want more.
THREAD_STACK_SIZE = 1 << 20


class CThread:
    """The OS thread a C partition image's code runs on in the OS-thread mode.

    Started at the first entry; the calling greenlet hands it the baton and makes
    the PSA calls it hands back (``psaspm_thread_run`` in the shim), so the kernel
    runs on the SPE thread only and decides who runs, as for greenlets.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self._handle: Any = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def enter(self, kind: int, fn: int, arg: int = 0) -> int:
        """As :func:`enter`, on this thread."""
        handle = self._handle
        if handle is None:
            handle = self._start()
        result: int = _RUNTIME[0].lib.psaspm_thread_run(handle, kind, fn, arg)
        exc = _PARKED.exc
        if exc is not None:
            _PARKED.exc = None
            raise exc
        return result

    def _start(self) -> Any:
        out = _ffi.new("void **")
        error = _RUNTIME[0].lib.psaspm_thread_new(THREAD_STACK_SIZE, out)
        if error:
            raise ConfigError(
                f"{self.label}: cannot start its OS thread (--c-threads): {os.strerror(error)}"
            )
        self._handle = out[0]
        # A system dropped without a reset: its thread ends when this object goes (no
        # greenlet can still be in enter() then: its frame would hold this object).
        self._finalizer = weakref.finalize(self, _RUNTIME[0].lib.psaspm_thread_end, out[0])
        return self._handle

    def end(self) -> bool:
        """End the thread when no code runs on it (its boot's greenlets were shut down
        first); False when a C frame still waits on it (the thread is left)."""
        handle = self._handle
        if handle is None:
            return True
        if _RUNTIME[0].lib.psaspm_thread_end(handle) != 0:
            return False
        self._handle = None
        if self._finalizer is not None:
            self._finalizer.detach()
        return True


# --------------------------------------------------------------------------- ASan
# sanitize="address": partition code built with these (part of the build cache key).
ASAN_CFLAGS = ("-fsanitize=address", "-fno-omit-frame-pointer")
_ASAN_REEXEC = "PSASPM_ASAN_REEXEC"


def asan_runtime() -> Path | None:
    """AddressSanitizer's runtime library for the compiler that builds C partitions
    (``$CC``, found as cbuild finds it; ``cc -print-file-name``), or None."""
    import subprocess

    try:
        compiler = cbuild.find_c_compiler("AddressSanitizer")
        done = subprocess.run(
            [*compiler.argv, "-print-file-name=libasan.so"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (ConfigError, OSError, subprocess.TimeoutExpired):
        return None
    found = Path(done.stdout.strip())
    return (
        found.resolve() if done.returncode == 0 and found.is_absolute() and found.exists() else None
    )


def asan_loaded() -> bool:
    """Whether AddressSanitizer's runtime is in this process (it must come first)."""
    try:
        ctypes.CDLL(None).__asan_init  # noqa: B018 (a lookup: raises when absent)
    except AttributeError:
        return False
    return True


def require_asan() -> None:
    """Refuse ``sanitize="address"`` unless ASan's runtime was loaded at process start."""
    if asan_loaded():
        return
    runtime = asan_runtime()
    how = (
        f"run Python with LD_PRELOAD={runtime} ASAN_OPTIONS=detect_leaks=0 "
        "(the psaspm command does this itself)"
        if runtime is not None
        else "the compiler ($CC) has no libasan.so: install its AddressSanitizer runtime"
    )
    raise ConfigError(
        "sanitize='address' needs AddressSanitizer's runtime loaded before Python starts: " + how
    )


def asan_reexec(allowed: bool) -> None:
    """``--sanitize address``: re-execute this command with ASan's runtime preloaded
    (once), unless it is already loaded; refuse when that is not possible."""
    import sys

    if asan_loaded():
        return
    runtime = asan_runtime()
    if not allowed or runtime is None or os.environ.get(_ASAN_REEXEC):
        require_asan()  # raises, saying how
    env = dict(os.environ)
    env[_ASAN_REEXEC] = "1"
    env["LD_PRELOAD"] = " ".join(filter(None, [str(runtime), env.get("LD_PRELOAD", "")]))
    # CPython's own allocations are never freed at exit: leaks are not partition bugs.
    env["ASAN_OPTIONS"] = ":".join(filter(None, ["detect_leaks=0", env.get("ASAN_OPTIONS", "")]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


# --------------------------------------------------------------------------- images
_image_ids = itertools.count(1)


class CImage:
    """One boot's image of a C partition: a private copy of its shared object, loaded.

    ``files`` name the code in messages (the sources, or the prebuilt ``.so``).
    """

    def __init__(self, so: Path, label: str, files: Sequence[Path], threads: bool = False) -> None:
        runtime_ready()
        self.label = label
        self.files = tuple(files)
        # The OS-thread mode: this image's code runs on an OS thread of its own.
        self.thread = CThread(label) if threads else None
        self._enter: Callable[..., int] = enter if self.thread is None else self.thread.enter
        self.path = _copy(so, f"{label.lower()}-{next(_image_ids)}.so", label)
        # No trampoline while constructors run: one that makes a PSA call and fails
        # parks the exception and returns, it does not unwind onto another stack.
        lib = _RUNTIME[0].lib
        outer = lib.psaspm_swap_top(_ffi.NULL)
        try:
            # Never closed (ctypes does not dlclose): a greenlet may still hold a C frame.
            self._dll = ctypes.CDLL(str(self.path), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            raise ConfigError(f"{label}: loading {self.where} failed: {exc}") from None
        finally:
            lib.psaspm_swap_top(outer)
            parked, _PARKED.exc = _PARKED.exc, None
        if parked is not None:  # a constructor called the PSA API with no system running
            raise ConfigError(f"{label}: loading {self.where} failed: {parked}") from parked

    @property
    def where(self) -> str:
        return ", ".join(str(f) for f in self.files)

    def __repr__(self) -> str:
        return f"<C partition image {self.path} of {self.where}>"

    def address(self, name: str) -> int | None:
        """The address of function ``name``, or None if the image does not define it."""
        try:
            fn = getattr(self._dll, name)
        except AttributeError:
            return None
        address: int | None = ctypes.cast(fn, ctypes.c_void_p).value
        return address

    def require(self, name: str) -> int:
        address = self.address(name)
        if address is None:
            raise ConfigError(f"{self.label}: partition code {self.where} has no function {name}()")
        return address

    def release(self) -> None:
        """The boot this image ran in is over: its file goes (the mapping stays), and
        its OS thread ends."""
        self.path.unlink(missing_ok=True)
        if self.thread is not None:
            self.thread.end()

    # Partition functions, as the kernel calls Python ones.
    def entry(self, name: str) -> Callable[[], None]:
        address = self.require(name)
        run = self._enter

        def entry_point() -> None:
            run(ENTER_VOID, address)

        return entry_point

    def init(self, name: str) -> Callable[[], int]:
        address = self.require(name)
        run = self._enter

        def entry_init() -> int:
            return run(ENTER_STATUS, address)

        return entry_init

    def flih(self, name: str) -> Callable[[], int]:
        address = self.require(name)
        run = self._enter

        def flih() -> int:
            return run(ENTER_FLIH, address)

        return flih

    def sfn(self, name: str) -> Callable[[PsaMsg], int]:
        """A service function: ``msg`` is written to a psa_msg_t of this function's (a
        partition serves one request at a time), which the C code gets a pointer to."""
        address = self.require(name)
        run = self._enter
        buffer = _ffi.new("char[]", _MSG_SIZE)
        view = _ffi.buffer(buffer)
        at = int(_ffi.cast("uintptr_t", buffer))
        pack = _MSG.pack_into

        def sfn(msg: PsaMsg) -> int:
            rhandle = msg.rhandle
            pack(
                view,
                0,
                msg.type,
                msg.handle,
                msg.client_id,
                rhandle if rhandle.__class__ is int else 0,
                *msg.in_size,
                *msg.out_size,
            )
            return run(ENTER_SFN, address, at)

        sfn.__name__ = name
        return sfn


def load_image(
    files: Sequence[Path],
    label: str,
    include_dirs: Sequence[Path] = (),
    cflags: Sequence[str] = (),
    threads: bool = False,
) -> CImage:
    """Build (or find in the cache) and load a fresh image of a C partition's code
    (``threads``: its code runs on an OS thread of its own)."""
    so = cbuild.build_code(files, label=label, include_dirs=include_dirs, cflags=cflags)
    return CImage(so, label, files, threads)
