"""Non-secure programs in C: ``psaspm run SOURCES --ns app.c`` (contract section 9).

The program is built as C partition code is (``psaspm.cbuild``: psaspm's PSA
headers, then this system's generated headers, so ``psa_manifest/sid.h``
gives it the SIDs and stateless handles) and its ``int main(void)`` runs on
the non-secure side, entered through the C runtime's trampoline.  While it
runs, the PSA door holds a non-secure interface: the ``psa/client.h``
functions act for NS client -1 through the TrustZone NS agent, exactly as
``ns.connect``/``ns.call``... do for a Python script; the partition API
(``psa_wait``...) is refused.  A panic of the SPE unwinds the program (no
exception crosses C frames) and reaches the runner as a Python script's
would.  A non-zero return value is :class:`NsProgramFailed`.

Each run loads a fresh image of the program (globals as at its start), and
its ``stdout`` appears in order with the rest of the run's output, also when
the runner captures that output (``--json``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from psaspm import cbuild, crt
from psaspm.consts import PSA_IPC_CALL
from psaspm.crt._cdef import ENTER_STATUS
from psaspm.errors import ConfigError
from psaspm.kernel._generated_api import Interface
from psaspm.kernel.api import NAMES
from psaspm.kernel.contract import Rejected
from psaspm.kernel.door import DOOR, NO_HAL
from psaspm.kernel.objects import InVec, OutVec
from psaspm.system import NsClient, System

_C_CODE = (*cbuild.C_SUFFIXES, *cbuild.CXX_SUFFIXES, cbuild.SO_SUFFIX)
_CLIENT_APIS = {
    "psa_framework_version": "framework_version",
    "psa_version": "version",
    "psa_connect": "connect",
    "psa_call": "call",
    "psa_close": "close",
}


class NsProgramFailed(Exception):
    """A C non-secure program's ``main`` returned non-zero."""

    def __init__(self, program: str, status: int) -> None:
        super().__init__(f"{program}: main() returned {status}")
        self.status = status


def is_c_program(path: str) -> bool:
    """Whether an ``--ns`` argument names C code (sources or a shared object)."""
    return any(Path(p).suffix in _C_CODE for p in path.split(","))


def _refuse(api: str) -> Any:
    def refuse(*_args: object) -> NoReturn:
        raise RuntimeError(
            f"{api}() called from non-secure code: it is part of the partition API "
            "(psa/service.h); non-secure code has psa/client.h"
        )

    return refuse


def ns_interface(ns: NsClient) -> Interface:
    """The door's interface while non-secure C code runs: psa/client.h through ``ns``."""
    iface = Interface("ns")
    for api in NAMES:
        method = _CLIENT_APIS.get(api)
        setattr(iface, api, getattr(ns, method) if method else _refuse(api))

    def psa_call(
        handle: int,
        type: int = PSA_IPC_CALL,
        in_vecs: Sequence[InVec] = (),
        out_vecs: Sequence[OutVec] = (),
    ) -> int:
        # A call the SPM refused stays a Rejected status, as the kernel returns it to
        # secure code's door: the C runtime then leaves the out-vectors alone.
        status = ns.call(handle, type, in_vecs, out_vecs)
        reason = ns.last_error
        return status if reason is None else Rejected(status, reason)

    iface.psa_call = psa_call
    return iface


class _NsHal:
    """The platform as non-secure C code reaches it: none of it (the calls are refused
    as with no system running), except that a bad pointer in a psa/client.h call is
    the non-secure caller's programmer error, returned as a status (crt)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(NO_HAL, name)

    def fault(self, api: str, reason: str) -> NoReturn:
        raise crt.NsPointerRefused(f"{api}: {reason}")


_NS_HAL = _NsHal()


class CNsProgram:
    """``main(ns, system)`` for a runner, running a C program's ``int main(void)``."""

    def __init__(self, spec: str) -> None:
        self.files = tuple(Path(p) for p in spec.split(",") if p)
        if not self.files:
            raise ConfigError(f"--ns {spec!r}: no file")
        for path in self.files:
            if path.suffix not in _C_CODE:
                raise ConfigError(f"{path}: not C code ({', '.join(_C_CODE)})")
            if not path.is_file():
                raise ConfigError(f"{path}: no such NS program file")
        if len(self.files) > 1 and any(p.suffix == cbuild.SO_SUFFIX for p in self.files):
            raise ConfigError(f"--ns {spec}: a prebuilt .so comes alone, not with sources")
        self.label = self.files[0].name

    def _shared_object(self, system: System) -> Path:
        # Built against this system's generated headers and flags on every run: the
        # build cache answers a repeat in about 2 ms, and a memo keyed on the system
        # could be fooled by a new system at a freed one's id.
        return cbuild.build_code(
            self.files,
            label=self.label,
            include_dirs=[system.generated_headers()],
            cflags=system.cflags,
        )

    def __call__(self, ns: NsClient, system: System) -> None:
        image = crt.CImage(self._shared_object(system), self.label, self.files)
        try:
            main = image.address("main")
            if main is None:
                raise ConfigError(f"{self.label}: {image.where} has no function main()")
            previous, previous_hal = DOOR.iface, DOOR.hal
            DOOR.iface = ns_interface(ns)
            DOOR.hal = _NS_HAL
            try:
                with _c_stdout_to(sys.stdout):
                    status = crt.enter(ENTER_STATUS, main)
            finally:
                DOOR.iface, DOOR.hal = previous, previous_hal
        finally:
            image.release()
        if status != 0:
            raise NsProgramFailed(self.label, status)


_libc = ctypes.CDLL(None)


@contextlib.contextmanager
def _c_stdout_to(stream: Any) -> Iterator[None]:
    """C's ``stdout`` in order with Python's: flush Python's before, C's after; when
    Python's is not the process's standard output (captured), take C's from fd 1 and
    write it there."""
    stream.flush()
    real = sys.__stdout__
    captured = real is None or stream is not real
    if not captured:
        try:
            yield
        finally:
            _libc.fflush(None)
        return
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            _libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            stream.write(sink.read().decode("utf-8", "replace"))


__all__: Sequence[str] = ["CNsProgram", "NsProgramFailed", "is_c_program", "ns_interface"]
