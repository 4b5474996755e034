"""A loaded system: manifests + partition code, built into a kernel and booted.

The backend and interface are chosen once, here, from the backend and
isolation level as TF-M's build chooses them: the SFN backend with the SFN
interface; the IPC backend with cross calls at level 1 and SVCs at levels 2
and 3.  The kernel never asks which one it runs.
"""

from __future__ import annotations

import contextlib
import enum
import importlib.util
import itertools
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from threading import get_ident
from types import ModuleType
from typing import Any, NoReturn, TypeVar

from psaspm import crt, sprt
from psaspm.cbuild import C_SUFFIXES, CXX_SUFFIXES, SO_SUFFIX, system_headers_dir
from psaspm.consts import PSA_LIFECYCLE_UNKNOWN
from psaspm.crt import CImage
from psaspm.errors import (
    ConfigError,
    Deadlock,
    InternalError,
    Panic,
    PanicRecord,
    is_psaspm_file,
)
from psaspm.kernel.contract import Backend, KernelBug, Rejected, SpeHalt, WatchdogExpired
from psaspm.kernel.door import DOOR, Hal
from psaspm.kernel.instruments import Counters, Tracer
from psaspm.kernel.interfaces import (
    Interface,
    cross_interface,
    sfn_interface,
    svc_interface,
    traced,
)
from psaspm.kernel.ipc import IpcBackend
from psaspm.kernel.memory import (
    PRIVILEGED,
    AddressSpace,
    Kind,
    MemoryFault,
    Ptr,
    Region,
    Subject,
    allocate,
    span,
)
from psaspm.kernel.objects import Buffer, InVec, OutVec
from psaspm.kernel.runtime import IrqRuntime, PartitionRuntime, ServiceRuntime
from psaspm.kernel.sfn import SfnBackend
from psaspm.kernel.spm import Spm
from psaspm.manifest import constants_dict, layout_dict, load_system_manifest
from psaspm.manifest.model import Handling, Model, Partition, PartitionType, SystemManifest
from psaspm.platform import Devices, Timer, Uart, build_address_space, load_platform
from psaspm.watchdog import Watchdog

_T = TypeVar("_T")
CodeSpec = ModuleType | str | Path | Sequence[str | Path]
_module_ids = itertools.count(1)
_C_SOURCES = (*C_SUFFIXES, *CXX_SUFFIXES)
# A partition's code: a Python module, or C code (sources, or one prebuilt .so).
CCode = tuple[Path, ...]


class SystemState(enum.StrEnum):
    """``system.state``; its values are the contract's strings.

    ``LOADED`` until ``boot()`` (and again, briefly, inside ``reset()``);
    ``RUNNING`` once booted; ``PANICKED`` once the SPE halted (``system.panic``
    says why) until ``reset()``; ``BROKEN`` once SPM code itself raised (an
    internal error: a psaspm bug), for good: every later call raises it again.
    """

    LOADED = "loaded"
    RUNNING = "running"
    PANICKED = "panicked"
    BROKEN = "broken"


def _boundary(part: Partition, isolation: int, arot_index: int) -> int:
    if isolation == 1 or part.type is PartitionType.PSA_ROT:
        return PRIVILEGED  # level 1: SPE vs NSPE only; PSA-RoT is privileged at every level
    if isolation == 2:
        return 2  # every App-RoT partition shares one unprivileged domain
    return (arot_index + 1) << 1  # level 3: each App-RoT partition alone


def import_python_file(path: Path, kind: str, label: str) -> ModuleType:
    """Import a Python file as a fresh module (``kind`` names it in ``sys.modules``).

    The file's folder is on ``sys.path`` while it runs, so it may import modules
    beside it.  Any failure is a ConfigError naming ``label`` and the file.
    """
    name = f"psaspm_{kind}_{label.lower()}_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{label}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        where = _own_frames(exc)
        raise ConfigError(
            f"{label}: importing {path} failed: {type(exc).__name__}: {exc}{where}"
        ) from exc
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    return module


def _own_frames(exc: BaseException) -> str:
    """Where the user's code raised, as `` (at FILE:LINE in FUNC: SOURCE <- ...)``: the
    frames of the imported file and what it imported, innermost first, without
    psaspm's and importlib's.  Empty when there is none (a SyntaxError names its line)."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not is_psaspm_file(frame.filename) and not frame.filename.startswith("<frozen ")
    ]
    if not frames:
        return ""
    parts = []
    for frame in reversed(frames):
        text = f"{frame.filename}:{frame.lineno} in {frame.name}"
        if frame.line:
            text += f": {frame.line.strip()}"
        parts.append(text)
    return " (at " + " <- ".join(parts) + ")"


def _import_file(path: Path, owner: str) -> ModuleType:
    """Load a partition's Python file as a fresh module (fresh state at every boot)."""
    if not path.is_file():
        raise ConfigError(_missing_code(path, owner))
    return import_python_file(path, "partition", owner)


def _missing_code(path: Path, owner: str) -> str:
    if path.suffix == ".py":
        return (
            f"{owner}: no partition code: neither {path} nor {path.with_suffix('.c')} exists "
            f"(put one beside the manifest, or pass code={{'{owner}': ...}} / --code {owner}=FILE)"
        )
    return (
        f"{owner}: no partition code: {path} does not exist "
        f"(put it beside the manifest, or pass code={{'{owner}': ...}} / --code {owner}=FILE)"
    )


def _code_spec(owner: str, spec: object) -> ModuleType | Path | CCode:
    """One ``code=`` entry checked: a module, the path of a ``.py`` file, C code (a
    ``.c`` path or a list of C/C++ sources, as a tuple) or one prebuilt ``.so``."""
    if isinstance(spec, ModuleType):
        return spec
    if isinstance(spec, str | Path):
        files: list[object] = [spec]
    elif isinstance(spec, list | tuple):
        files = list(spec)
    else:
        raise ConfigError(f"{owner}: code {spec!r} is not a module, a file or a list of files")
    if not files or not all(isinstance(f, str | Path) and str(f) for f in files):
        raise ConfigError(f"{owner}: code {spec!r} is not a module, a file or a list of files")
    paths = [Path(str(f)) for f in files]
    named = ", ".join(str(p) for p in paths)
    if all(p.suffix in _C_SOURCES for p in paths):
        return tuple(paths)
    if len(paths) == 1 and paths[0].suffix == SO_SUFFIX:
        return (paths[0],)
    if len(paths) > 1 and any(p.suffix == SO_SUFFIX for p in paths):
        raise ConfigError(f"{owner}: code {named}: a prebuilt .so is used alone")
    if len(paths) > 1 or paths[0].suffix != ".py":
        raise ConfigError(
            f"{owner}: code {named}: expected one .py file, C sources (.c, .cc, .cpp) "
            "or one prebuilt .so"
        )
    return paths[0]


def partition_symbols(part: Partition) -> list[str]:
    """The functions a partition's code must define, by the names TF-M generates (what
    ``System._bind_code`` looks up): the IPC ``entry_point``; an SFN partition's
    ``entry_init`` and ``<service>_sfn`` functions; each FLIH IRQ's ``<irq>_flih``."""
    names = [irq.flih_function for irq in part.irqs if irq.handling is Handling.FLIH]
    if part.model is Model.IPC:
        return [*names, *([part.entry_point] if part.entry_point else [])]
    if part.entry_init:
        names.append(part.entry_init)
    return names + [svc.sfn_function for svc in part.services]


def _symbol(module: ModuleType | CImage, owner: str, name: str, required: bool = True) -> Any:
    if isinstance(module, CImage):
        if module.address(name) is None and not required:
            return None
        return module.require(name)
    fn = getattr(module, name, None)
    if fn is None:
        if not required:
            return None
        where = getattr(module, "__file__", None) or module.__name__
        raise ConfigError(f"{owner}: partition code {where} has no function {name}()")
    if not callable(fn):
        raise ConfigError(f"{owner}: {name} in the partition code is not a function")
    return fn


def _checked_code(
    manifest: SystemManifest, code: Mapping[str, CodeSpec]
) -> dict[str, ModuleType | Path | CCode]:
    """``code=`` for the enabled partitions.  Entries for partitions a conditional
    disabled are ignored (contract section 2); a name that is no partition at all is
    an error, naming it and the partitions there are."""
    names = [p.name for p in manifest.partitions]
    unknown = [k for k in code if k not in names and k not in manifest.disabled_partitions]
    if unknown:
        known = ", ".join(names) or "none"
        raise ConfigError(
            f"code given for {', '.join(map(repr, unknown))}: no such partition in this system "
            f"(partitions: {known})"
        )
    return {k: _code_spec(k, v) for k, v in code.items() if k in names}


class NsClient:
    """A non-secure client of the TrustZone NS agent (contract section 4)."""

    def __init__(self, system: System, client_id: int) -> None:
        if client_id.__class__ is not int or client_id >= 0:
            raise ValueError(f"a non-secure client ID must be a negative int, not {client_id!r}")
        self.system = system
        self.client_id = client_id
        # Why the SPM rejected this client's last call; None if it was not rejected.
        self.last_error: str | None = None

    def framework_version(self) -> int:
        return int(self.system._ns_call(self, "psa_framework_version"))

    def version(self, sid: int) -> int:
        return int(self.system._ns_call(self, "psa_version", sid))

    def connect(self, sid: int, version: int) -> int:
        return int(self.system._ns_call(self, "psa_connect", sid, version))

    def call(
        self,
        handle: int,
        type: int = 0,
        in_vecs: Sequence[InVec] = (),
        out_vecs: Sequence[OutVec] = (),
    ) -> int:
        status: int = self.system._ns_call(self, "psa_call", handle, type, in_vecs, out_vecs)
        return status

    def close(self, handle: int) -> None:
        self.system._ns_call(self, "psa_close", handle)


class NsMemory:
    """Non-secure RAM as NS code sees it: allocate buffers to pass as pointer vectors."""

    def __init__(self, region: Region) -> None:
        self.region = region
        self._subject = Subject("NS", True, False, 0)

    def alloc(self, size: int, data: Buffer | None = None) -> Ptr:
        """``size`` bytes of NS RAM, optionally filled with ``data``."""
        ptr = allocate(self.region, size)
        if data is not None:
            self.write(ptr, data)
        return ptr

    def read(self, addr: int | Ptr, size: int | None = None) -> bytes:
        start, size = span(addr, size)
        offset = self._check(start, size)
        return bytes(self.region.data[offset : offset + size])

    def write(self, addr: int | Ptr, data: Buffer) -> None:
        size = memoryview(data).nbytes
        offset = self._check(addr.addr if isinstance(addr, Ptr) else addr, size)
        self.region.data[offset : offset + size] = data

    def _check(self, addr: int, size: int) -> int:
        """The offset of ``[addr, addr + size)`` in NS RAM; the NS side reaches nothing else."""
        region = self.region
        if not (region.base <= addr and addr + size <= region.end):
            raise MemoryFault(self._subject, addr, size, False, "outside non-secure RAM")
        return addr - region.base


class _Kernel:
    """One boot's worth of runtime: the SPM, its backend and interface."""

    __slots__ = ("backend", "iface", "spm")

    def __init__(self, spm: Spm, backend: Backend, iface: Interface) -> None:
        self.spm = spm
        self.backend = backend
        self.iface = iface


class _PlatformHal:
    """``psaspm.hal`` for a system: what the door's :class:`Hal` offers, acting as the
    running partition (a denied access is its modelled MemManage or BusFault)."""

    def __init__(self, system: System) -> None:
        self._system = system

    def constants(self) -> Mapping[str, int]:
        return self._system.constants

    def assert_irq(self, source: str | int) -> None:
        self._system.assert_irq(source)

    def deassert_irq(self, source: str | int) -> None:
        self._system.deassert_irq(source)

    def malloc(self, size: int) -> Ptr:
        spm = self._system.spm
        return spm.memory.allocate_private(spm.current.name, size)

    def _as_caller(self, access: Callable[..., _T], *args: Any) -> _T:
        """A memory access (an ``AddressSpace`` method) made as the running partition: a
        denied one is its fault."""
        spm = self._system.spm
        try:
            return access(spm.memory, spm.current.subject, *args)
        except MemoryFault as fault:
            spm.fault(fault.fault, str(fault))

    def read(self, addr: int, size: int) -> bytes:
        return self._as_caller(AddressSpace.read, addr, size)

    def write(self, addr: int, data: Buffer) -> None:
        self._as_caller(AddressSpace.write, addr, data)

    def read32(self, addr: int) -> int:
        return self._as_caller(AddressSpace.read32, addr)

    def write32(self, addr: int, value: int) -> None:
        self._as_caller(AddressSpace.write32, addr, value)

    def peripheral_base(self, name: str) -> int:
        spec = self._system.platform.peripherals.get(name)
        if spec is None:
            raise KeyError(f"no peripheral named {name!r} in the platform description")
        return spec.base

    def fault(self, api: str, reason: str) -> NoReturn:
        self._system.spm.fault(api, reason)

    def wfi(self) -> None:
        system = self._system
        spm = system.spm
        if spm.interrupts.pending:
            return  # an interrupt is pending already: WFI does not sleep
        if not system._wfi():
            spm.halt(
                PanicRecord(
                    spm.current.name,
                    "wfi",
                    "deadlock: waiting for an interrupt with none pending and no armed "
                    "device event to come",
                    deadlock=True,
                )
            )


class System:
    """A secure system: ``psaspm.load(...)`` returns one (contract sections 2-8)."""

    def __init__(
        self,
        manifest: SystemManifest,
        code: Mapping[str, CodeSpec] | None = None,
        max_connections: int = 8,
        lifecycle: int = PSA_LIFECYCLE_UNKNOWN,
        counters: bool = True,
        tracer: Tracer | None = None,
        platform: str | Path | None = None,
        cflags: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        watchdog: float | None = None,
        c_threads: bool = False,
        sanitize: str | None = None,
    ) -> None:
        if max_connections.__class__ is not int or max_connections <= 0:
            raise ConfigError(f"max_connections must be a positive int, not {max_connections!r}")
        self.manifest = manifest
        self.backend_name = manifest.backend
        self.isolation = manifest.isolation
        self.max_connections = max_connections
        self.lifecycle = lifecycle
        self._code = _checked_code(manifest, code or {})
        # C partition code: the caller's compiler flags, and the configuration its
        # generated headers are rendered for (psaspm.cbuild.system_headers_dir).
        if isinstance(cflags, str) or not all(isinstance(f, str) for f in cflags):
            raise ConfigError(f"cflags must be a list of strings, not {cflags!r}")
        self.cflags = list(cflags)
        if c_threads.__class__ is not bool:
            raise ConfigError(f"c_threads must be True or False, not {c_threads!r}")
        self.c_threads = c_threads  # each C partition's code on an OS thread of its own
        self.sanitize = sanitize
        if sanitize is not None:
            if sanitize != "address":
                raise ConfigError(f"sanitize must be 'address' or None, not {sanitize!r}")
            crt.require_asan()
            # ASan cannot follow greenlets' stack switching: the OS-thread mode.
            self.c_threads = True
        # Partition code's flags (an NS program in C is built with self.cflags alone).
        self._partition_cflags = [*(crt.ASAN_CFLAGS if sanitize else ()), *self.cflags]
        self._config = dict(config or {})
        self._headers: Path | None = None
        self._images: dict[str, CImage] = {}  # the C images of the current boot
        self._counting = counters
        try:
            self._watchdog = Watchdog(watchdog, get_ident()) if watchdog is not None else None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        # One set of counters for the system's life: a reset keeps them (contract section 8).
        # The watchdog reads the context switches even when stats are off.
        self._counters = Counters() if counters or watchdog is not None else None
        self.tracer = tracer
        self._constants = constants_dict(manifest)
        self.platform = load_platform(platform)
        ns_base, ns_size = self.platform.ns_ram
        # Non-secure memory belongs to the NS side: it survives a reset of the SPE.
        self.ns_memory = NsMemory(Region("NS_RAM", ns_base, ns_size, Kind.NS))
        self._devices: Devices = {}
        self._kernel: _Kernel | None = None
        self._depth = 0  # > 0 while secure code runs on behalf of boot() or an NS call
        self._owner = get_ident()  # the OS thread the system runs in (set again at boot)
        self.panic: PanicRecord | None = None
        self.state = SystemState.LOADED
        self._bug: tuple[Exception, str] = (InternalError("no internal error"), "")
        self._hal: Hal = _PlatformHal(self)
        self._boot_modules: list[str] = []  # sys.modules names of this boot's partition code

    # ---------------------------------------------------------------- info
    def layout(self) -> dict[str, Any]:
        return layout_dict(self.manifest)

    @property
    def constants(self) -> Mapping[str, int]:
        from types import MappingProxyType

        return MappingProxyType(self._constants)

    @property
    def stats(self) -> dict[str, int]:
        counters = self._counters
        if counters is None or not self._counting:
            return {}
        stats = counters.as_dict()
        kernel = self._kernel
        stats["connections_in_use"] = kernel.spm.pool.in_use if kernel is not None else 0
        return stats

    @property
    def spm(self) -> Spm:
        """The kernel of the current boot (for tools and ``psaspm.hal``)."""
        return self._running_kernel().spm

    def partition_code(self, name: str) -> ModuleType:
        """The module running a partition's code in the current boot (fresh at each boot)."""
        kernel = self._kernel
        if kernel is None:
            raise ConfigError("the system is not booted: partition code is bound at boot()")
        for part in kernel.spm.partitions:
            if part.name == name:
                if isinstance(part.code, CImage):
                    raise ConfigError(f"{name} runs C code ({part.code.path}), not a module")
                assert isinstance(part.code, ModuleType)
                return part.code
        raise ConfigError(f"no partition named {name!r} in this system")

    @property
    def interface(self) -> str:
        """``"sfn"``, ``"cross"`` or ``"svc"``: how partition code enters the SPM."""
        if self.backend_name == "sfn":
            return "sfn"
        return "cross" if self.isolation == 1 else "svc"

    # ---------------------------------------------------------------- build
    def _code_files(self, part: Partition) -> ModuleType | Path | CCode:
        """What a partition's code is: ``code=``'s entry, else ``<manifest basename>.py``
        beside the manifest, else ``<manifest basename>.c`` there."""
        spec = self._code.get(part.name)
        if spec is not None:
            return spec
        py = part.manifest_path.with_suffix(".py")
        c = part.manifest_path.with_suffix(".c")
        return (c,) if not py.is_file() and c.is_file() else py

    def _load_code(self, part: Partition) -> ModuleType | CImage:
        spec = self._code_files(part)
        if isinstance(spec, ModuleType):
            return spec
        if isinstance(spec, Path):
            module = _import_file(spec, part.name)
            self._boot_modules.append(module.__name__)
            return module
        return self._load_c(part, spec)

    def _load_c(self, part: Partition, files: CCode) -> CImage:
        """A fresh image of C code, built (or found in the build cache) against psaspm's
        PSA headers, this system's generated headers and the caller's ``cflags``."""
        headers = self.generated_headers()
        previous = self._images.pop(part.name, None)
        if previous is not None:
            previous.release()  # its boot is over: reset() shut its threads down first
        image = crt.load_image(files, part.name, [headers], self._partition_cflags, self.c_threads)
        self._images[part.name] = image
        return image

    def generated_headers(self) -> Path:
        """The folder of this system's generated headers (``psa_manifest/sid.h``...), for
        C code built against it (rendered once, shared through the build cache)."""
        if self._headers is None:
            self._headers = system_headers_dir(self.manifest, self._config)
        return self._headers

    def _forget_boot_modules(self) -> None:
        """Drop the modules a boot imported from ``sys.modules`` (the next boot imports
        fresh ones): otherwise every reset would keep another copy alive."""
        for name in self._boot_modules:
            sys.modules.pop(name, None)
        self._boot_modules.clear()

    def check_code(self) -> tuple[list[str], list[str]]:
        """``(warnings, errors)`` about every partition's code, without booting.

        A partition whose code file is not there is a warning naming the file looked
        for (the manifests may still be fine); code that does not import, or lacks a
        function the manifest names, is an error.  Importing runs the files' top level.
        """
        warnings: list[str] = []
        errors: list[str] = []
        for part in self.manifest.partitions:
            given = part.name in self._code
            spec = self._code_files(part)
            if isinstance(spec, Path) and not spec.is_file():
                (errors if given else warnings).append(_missing_code(spec, part.name))
                continue
            try:
                module = self._load_code(part)
                for name in partition_symbols(part):
                    _symbol(module, part.name, name)
            except ConfigError as exc:
                errors.append(str(exc))
        for image in self._images.values():
            image.release()  # built, loaded and checked: nothing runs it
        self._images.clear()
        return warnings, errors

    def _build(self) -> _Kernel:
        self._forget_boot_modules()  # an earlier boot's (or a failed boot's) code
        manifest = self.manifest
        sid_by_name = {s.name: s.sid for p in manifest.partitions for s in p.services}
        runtimes: list[PartitionRuntime] = []
        arot = 0
        for part in manifest.partitions:
            rt = PartitionRuntime(part, part.name, part.pid, part.load_order)
            rt.services = [ServiceRuntime(s, rt) for s in part.services]
            rt.service_by_signal = {s.signal: s for s in rt.services}
            rt.service_signals = sum(s.signal for s in rt.services)
            rt.irqs = [IrqRuntime(i, rt) for i in part.irqs]
            rt.irqs_by_signal = {i.signal: i for i in rt.irqs}
            rt.deps = frozenset(
                sid_by_name[name]
                for name in (*part.dependencies, *part.weak_dependencies)
                if name in sid_by_name
            )
            rt.boundary = _boundary(part, manifest.isolation, arot)
            privileged = bool(rt.boundary & PRIVILEGED)
            rt.subject = Subject(part.name, rt.is_ns_agent, privileged, rt.boundary)
            if part.type is PartitionType.APPLICATION_ROT:
                arot += 1
            self._bind_code(rt, part)
            runtimes.append(rt)
        ns_agent = PartitionRuntime(None, "NS", 0, 0)
        ns_agent.boundary = PRIVILEGED
        memory, self._devices = build_address_space(
            self.platform,
            manifest.partitions,
            {rt.name: rt.boundary for rt in runtimes},
            self.ns_memory.region,
            self._device_line,
        )
        spm = Spm(
            runtimes,
            ns_agent,
            self.max_connections,
            self.lifecycle,
            memory,
            self._counters,
            self.tracer,
            self._wfi,
        )
        # The one place the backend and interface are chosen, as TF-M's build does.
        backend: Backend
        iface: Interface
        if manifest.backend == "sfn":
            backend = SfnBackend(spm)
            iface = sfn_interface(spm)
        else:
            ipc = backend = IpcBackend(spm)
            iface = (cross_interface if manifest.isolation == 1 else svc_interface)(spm, ipc)
        spm.backend = backend
        if self._watchdog is not None:
            spm.watchdog_took = self._watchdog.took
            spm.watchdog_seconds = self._watchdog.seconds
        if self.tracer is not None:
            iface = traced(iface, spm, self.tracer)
        for rt in sorted(runtimes, key=lambda r: r.priority):
            backend.comp_init_assuredly(rt)
        return _Kernel(spm, backend, iface)

    def _bind_code(self, rt: PartitionRuntime, part: Partition) -> None:
        module = self._load_code(part)
        rt.code = module
        name = part.name
        # C code is called through the C runtime's trampoline (psaspm.crt), Python
        # code directly; the kernel sees the same kind of callables either way.
        c = module if isinstance(module, CImage) else None
        for irq in rt.irqs:
            if irq.handling is Handling.FLIH:
                symbol = irq.flih_name
                irq.flih = c.flih(symbol) if c else _symbol(module, name, symbol)
        if part.model is Model.IPC:
            if part.entry_point is None:
                raise ConfigError(f"{name}: an IPC-model partition needs an entry_point")
            rt.entry = c.entry(part.entry_point) if c else _symbol(module, name, part.entry_point)
            rt.entry_name = part.entry_point
            return
        if part.entry_init:
            rt.init = c.init(part.entry_init) if c else _symbol(module, name, part.entry_init)
        else:
            rt.init = None
        sfns: list[Callable[[Any], int] | None] = []
        for svc in rt.services:
            symbol = svc.sfn_name
            svc.sfn = c.sfn(symbol) if c else _symbol(module, name, symbol)
            sfns.append(svc.sfn)
        rt.entry = sprt.common_sfn_thread(rt.init, sfns)

    # ---------------------------------------------------------------- running
    def _secure_call(self, kernel: _Kernel, fn: Callable[..., Any], *args: Any) -> Any:
        """Run secure code, ``fn(*args)``: install the interface behind the door; a halt
        becomes Panic, an exception of SPM code an InternalError that breaks the system
        for good.  A plain call, not a generator context manager: the IRQ line that
        ``psaspm serve`` raises per batch of calls comes this way."""
        door = DOOR
        previous_iface = door.iface
        previous_hal = door.hal
        door.iface = kernel.iface
        door.hal = self._hal
        self._depth += 1
        try:
            return fn(*args)
        except SpeHalt as halt:
            self._halted(halt.record)
        except KernelBug as bug:
            self._broke(bug.error, str(bug))
        except WatchdogExpired as expired:
            self._expired(kernel, expired)
        finally:
            self._depth -= 1
            door.iface = previous_iface
            door.hal = previous_hal
            if self._watchdog is not None:
                self._watchdog.disarm()

    def _halted(self, record: PanicRecord) -> NoReturn:
        self.state = SystemState.PANICKED
        self.panic = record
        if record.deadlock:
            raise Deadlock(record) from None
        raise Panic(record) from None

    def _expired(self, kernel: _Kernel, expired: WatchdogExpired) -> NoReturn:
        """The watchdog's exception reached the system boundary (SFN service code, or
        the NS side's own greenlet): the same halt as inside partition code."""
        try:
            kernel.spm.expired(expired)
        except SpeHalt as halt:
            self._halted(halt.record)

    # The watchdog's view of the system (psaspm.watchdog.Watched).
    def watch_progress(self) -> tuple[int, int] | None:
        watchdog = self._watchdog
        counters = self._counters
        if not self._depth or watchdog is None or counters is None:
            return None
        return watchdog.entries, counters.context_switches

    def watch_running(self) -> str:
        kernel = self._kernel
        return kernel.spm.current.name if kernel is not None else "?"

    def _broke(self, error: Exception, what: str) -> NoReturn:
        """SPM code raised: a bug in psaspm.  Stop loudly, keeping the original traceback."""
        self.state = SystemState.BROKEN
        self._bug = (error, what)
        raise InternalError(f"{what} (the system is broken; this is a psaspm bug)") from error

    def boot(self) -> None:
        """Initialise every partition in load order, then run until the SPE is idle."""
        if self.state is not SystemState.LOADED:
            self._refuse_if_broken()
            raise ConfigError(f"boot() needs a freshly loaded system; this one is {self.state}")
        kernel = self._build()
        self._kernel = kernel
        self._owner = get_ident()
        if self._watchdog is not None:
            self._watchdog.thread_id = self._owner
            self._watchdog.start(self)
        self.state = SystemState.RUNNING
        self._secure_call(kernel, kernel.backend.system_run)

    def reset(self) -> None:
        """Reboot from scratch: fresh handles, signals and partition state."""
        if self._depth:
            raise RuntimeError("reset() cannot be called from secure code")
        self._refuse_if_broken()
        self._check_thread()
        if self._kernel is not None:
            self._kernel.backend.shutdown()
        self._kernel = None
        self.panic = None
        if self._counters is not None:
            self._counters.resets += 1
        self.state = SystemState.LOADED
        self.boot()

    def ns_client(self, client_id: int = -1) -> NsClient:
        return NsClient(self, client_id)

    def _refuse_if_broken(self) -> None:
        if self.state is SystemState.BROKEN:
            error, what = self._bug
            raise InternalError(
                f"this system is broken by an earlier internal error: {what}"
            ) from error

    def _running_kernel(self) -> _Kernel:
        if self.state is SystemState.PANICKED:
            assert self.panic is not None
            raise Panic(self.panic)
        self._refuse_if_broken()
        kernel = self._kernel
        if kernel is None:
            raise ConfigError("the system is not booted: call system.boot() first")
        self._check_thread()
        return kernel

    def _check_thread(self) -> None:
        """A system runs in the OS thread that booted it (its partition threads are
        greenlets of that thread); another thread gets a clear error, not a broken SPE."""
        if get_ident() != self._owner:
            raise RuntimeError(
                "this psaspm system was booted in another thread: call it from that thread "
                "(psaspm serve shows how to feed a system from other threads)"
            )

    def _ns_call(self, client: NsClient, api: str, *args: Any) -> Any:
        kernel = self._kernel
        if (
            kernel is None
            or self._depth
            or self.state is not SystemState.RUNNING
            or get_ident() != self._owner
        ):
            kernel = self._running_kernel()
            if self._depth:
                raise RuntimeError(
                    f"non-secure {api} from secure code: partition code must use psaspm.psa"
                )
        kernel.spm.ns_agent.ns_client_id = client.client_id
        kernel.backend.enter_ns()
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog.entries += 1
        # What _secure_call() does, inline: this is every NS call's path.
        door = DOOR
        previous_iface = door.iface
        previous_hal = door.hal
        iface = kernel.iface
        door.iface = iface
        door.hal = self._hal
        self._depth += 1
        try:
            result = getattr(iface, api)(*args)
        except SpeHalt as halt:
            self._halted(halt.record)
        except KernelBug as bug:
            self._broke(bug.error, str(bug))
        except WatchdogExpired as expired:
            self._expired(kernel, expired)
        finally:
            self._depth -= 1
            door.iface = previous_iface
            door.hal = previous_hal
            if watchdog is not None:
                watchdog.disarm()
        if result.__class__ is Rejected:
            client.last_error = result.reason
            return int(result)
        client.last_error = None
        return result

    # ---------------------------------------------------------------- interrupts
    def tick(self, ticks: int = 1) -> None:
        """Advance platform time: timers count down and may raise their interrupts."""
        if ticks.__class__ is not int or ticks < 0:
            raise ValueError(f"ticks must be a non-negative int, not {ticks!r}")
        kernel = self._running_kernel()
        if self._depth:
            raise RuntimeError("tick() is driven from the non-secure side")
        kernel.backend.enter_ns()
        self._secure_call(kernel, self._tick_devices, ticks)

    def _tick_devices(self, ticks: int) -> None:
        for device in self._devices.values():
            device.tick(ticks)

    def _wfi(self) -> bool:
        """Wait for an interrupt: advance platform time to the next event of an armed
        device model whose interrupt can be taken (its line low, a source bound to it
        enabled), and take it.  False when no device can fire: nothing would ever wake
        the SPE."""
        kernel = self._kernel
        if kernel is None:
            return False
        by_source = kernel.spm.interrupts.by_source
        soonest: int | None = None
        for device in self._devices.values():
            ticks = device.next_event()
            if ticks is None or (soonest is not None and ticks >= soonest):
                continue
            irqs = by_source.get(device.irq) if isinstance(device, Timer) and device.irq else None
            if irqs and any(irq.enabled and not irq.line for irq in irqs):
                soonest = ticks
        if soonest is None:
            return False
        for device in list(self._devices.values()):
            device.tick(soonest)
        return True

    def device(self, name: str) -> Timer | Uart:
        """The device model behind a named peripheral in the current boot."""
        try:
            return self._devices[name]
        except KeyError:
            raise ConfigError(f"no device model behind peripheral {name!r} in this boot") from None

    def _device_line(self, source: str, level: bool) -> None:
        kernel = self._kernel
        if kernel is not None and source in kernel.spm.interrupts.by_source:
            self._drive(source, level)

    def assert_irq(self, source: str | int) -> None:
        self._drive(source, True)

    def deassert_irq(self, source: str | int) -> None:
        self._drive(source, False)

    def _drive(self, source: str | int, level: bool) -> None:
        kernel = self._running_kernel()
        interrupts = kernel.spm.interrupts
        if source not in interrupts.by_source:
            known = ", ".join(sorted(str(s) for s in interrupts.by_source)) or "none"
            raise ConfigError(f"no partition binds interrupt source {source!r} (known: {known})")
        if self._depth:
            # From partition code: change the line; an enabled source is taken at once
            # where the running context may be preempted.
            self._line_and_preempt(kernel, source, level)
            return
        kernel.backend.enter_ns()
        self._secure_call(kernel, self._line_and_preempt, kernel, source, level)

    @staticmethod
    def _line_and_preempt(kernel: _Kernel, source: str | int, level: bool) -> None:
        kernel.spm.interrupts.set_line(source, level)
        kernel.backend.preempt()


def load(
    sources: str | Path | Sequence[str | Path],
    backend: str = "ipc",
    isolation: int = 1,
    config: Mapping[str, Any] | None = None,
    paths: Mapping[str, str] | None = None,
    code: Mapping[str, CodeSpec] | None = None,
    max_connections: int = 8,
    lifecycle: int = PSA_LIFECYCLE_UNKNOWN,
    counters: bool = True,
    tracer: Tracer | None = None,
    platform: str | Path | None = None,
    cflags: Sequence[str] = (),
    watchdog: float | None = None,
    c_threads: bool = False,
    sanitize: str | None = None,
) -> System:
    """Load manifests into a :class:`System` (contract section 2); ``cflags`` are added
    to the compiler's flags for C partition code (contract section 9); ``c_threads``
    runs each C partition's code on an OS thread of its own, ``sanitize="address"``
    builds it with AddressSanitizer and implies ``c_threads`` (docs/c-partitions.md)."""
    manifest = load_system_manifest(
        sources, backend=backend, isolation=isolation, config=config, paths=paths
    )
    return System(
        manifest,
        code=code,
        max_connections=max_connections,
        lifecycle=lifecycle,
        counters=counters,
        tracer=tracer,
        platform=platform,
        cflags=cflags,
        config=config,
        watchdog=watchdog,
        c_threads=c_threads,
        sanitize=sanitize,
    )
