"""Running a workload: boot a system, run a non-secure script, measure it.

What ``psaspm run`` and ``psaspm compare`` do, without the printing:

- :func:`load_script` imports an NS script (a Python file with ``main(ns)`` or
  ``main(ns, system)``);
- :func:`run_script` loads and boots a system in one configuration and runs
  the script against it, counting NS calls and timing them;
- :func:`compare` does that under every configuration TF-M can build (SFN
  backend at level 1; IPC at levels 1, 2 and 3), skipping, with the reason,
  those the manifests cannot run in;
- :func:`footprint` is the memory TF-M would reserve for the system: stacks,
  threads and the connection pool, sized as TF-M's build sizes them.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from psaspm import ns_c
from psaspm.errors import ConfigError, Panic
from psaspm.kernel.instruments import COUNTER_NAMES, Tracer
from psaspm.manifest.model import SystemManifest
from psaspm.manifest.values import c_int
from psaspm.system import NsClient, System, import_python_file, load

CONFIGURATIONS: tuple[tuple[str, int], ...] = (("sfn", 1), ("ipc", 1), ("ipc", 2), ("ipc", 3))

# TF-M sizes (config_impl.h.template, idle partition load info; see docs/architecture.md).
SFN_MIN_TOTAL_STACK = 2048  # CONFIG_TFM_TOTAL_STACK_SIZE is at least this
IPC_NS_AGENT_STACK = 1024  # CONFIG_TFM_NS_AGENT_TZ_STACK_SIZE under the IPC backend
IPC_NS_AGENT_STACK_FIH = 1256  # ... at isolation level 1 with fault injection hardening
IDLE_STACK = 0x100  # the idle partition's stack (IDLE_SP_STACK_SIZE)

NsMain = Callable[..., Any]


# --------------------------------------------------------------------------- footprint
@dataclass
class Footprint:
    """The memory TF-M would reserve; ``None`` where a size is an undefined C macro."""

    backend: str
    partition_stacks: dict[str, int | None]  # IPC: each partition's own stack; SFN: none
    shared_stack: int | None  # SFN: the one stack everything runs on (the NS agent's)
    total_stack_size: int | None  # SFN: CONFIG_TFM_TOTAL_STACK_SIZE
    ns_agent_stack: int | None  # the TrustZone NS agent's stack
    idle_stack: int  # IPC: the idle thread's stack
    threads: int
    connection_pool: int  # slots (CONFIG_TFM_CONN_HANDLE_MAX_NUM), 0 if stack-local
    unknown: list[str] = field(default_factory=list)  # stack_size macros without a value

    @property
    def stacks(self) -> int | None:
        """All stacks together; None if one of them is unknown."""
        if self.backend == "sfn":
            return self.shared_stack
        sizes = [*self.partition_stacks.values(), self.ns_agent_stack]
        if any(size is None for size in sizes):
            return None
        return sum(size for size in sizes if size is not None) + self.idle_stack

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stacks"] = self.stacks
        return data


def _config_int(config: Mapping[str, object], name: str) -> int | None:
    value = config.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return c_int(value)
    return None


def _flag(config: Mapping[str, object], name: str) -> bool:
    value = config.get(name)
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "off", "false", "no", "n")
    return bool(value)


def footprint(
    manifest: SystemManifest,
    config: Mapping[str, object] | None = None,
    max_connections: int = 8,
) -> Footprint:
    """Stacks, threads and connection pool of ``manifest`` as TF-M would build it.

    SFN backend: partitions run on their caller's stack, so there is one stack,
    the TrustZone NS agent's, of half ``CONFIG_TFM_TOTAL_STACK_SIZE`` (the sum
    of every partition's ``stack_size``, at least 2048) rounded up to 8; one
    thread; a connection pool only if a service is connection-based (otherwise
    each call uses a connection on the caller's stack).  IPC backend: a stack
    per partition, the NS agent's 1024 bytes (1256 with FIH at level 1; the SPM
    borrows it for its own code), the idle thread's; a thread for each
    partition, the NS agent and idle; a pool of ``max_connections``.
    """
    config = config or {}
    sizes: dict[str, int | None] = {}
    unknown: list[str] = []
    for part in manifest.partitions:
        size = part.stack_size
        if isinstance(size, str):
            value = _config_int(config, size)
            if value is None:
                unknown.append(size)
            sizes[part.name] = value
        else:
            sizes[part.name] = size
    if manifest.backend == "sfn":
        total: int | None = None
        shared: int | None = None
        if not unknown:
            total = max(sum(s for s in sizes.values() if s is not None), SFN_MIN_TOTAL_STACK)
            shared = (total // 2 + 7) & ~7
        connection_based = any(s.connection_based for p in manifest.partitions for s in p.services)
        return Footprint(
            backend="sfn",
            partition_stacks={},
            shared_stack=shared,
            total_stack_size=total,
            ns_agent_stack=shared,
            idle_stack=0,
            threads=1,
            connection_pool=max_connections if connection_based else 0,
            unknown=unknown,
        )
    fih = _flag(config, "TFM_FIH_PROFILE_ON") or str(
        config.get("TFM_FIH_PROFILE", "OFF")
    ).upper() in ("LOW", "MEDIUM", "HIGH")
    agent = IPC_NS_AGENT_STACK_FIH if fih and manifest.isolation == 1 else IPC_NS_AGENT_STACK
    return Footprint(
        backend="ipc",
        partition_stacks=sizes,
        shared_stack=None,
        total_stack_size=None,
        ns_agent_stack=agent,
        idle_stack=IDLE_STACK,
        threads=len(manifest.partitions) + 2,
        connection_pool=max_connections,
        unknown=unknown,
    )


# --------------------------------------------------------------------------- NS scripts
def load_script(path: str | Path) -> NsMain:
    """The ``main`` of an NS script file (or of a C program: ``app.c``, ``a.c,b.c``,
    ``app.so``); ConfigError if there is none."""
    if ns_c.is_c_program(str(path)):
        return ns_c.CNsProgram(str(path))
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such NS script")
    module = import_python_file(path, "ns_script", path.stem)
    main = getattr(module, "main", None)
    if not callable(main):
        raise ConfigError(f"{path}: an NS script needs a function main(ns) or main(ns, system)")
    _check_signature(path, main)
    return main  # type: ignore[no-any-return]


def _check_signature(path: Path, main: NsMain) -> None:
    """``main`` can be called as ``main(ns)`` or ``main(ns, system)``."""
    try:
        signature = inspect.signature(main)
    except (TypeError, ValueError):
        return  # a builtin or C callable: let the call say
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    keyword_only = [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    if (not positional and not varargs) or len(required) > 2 or keyword_only:
        raise ConfigError(
            f"{path}: main{signature} cannot be called with the NS client: an NS script "
            "needs def main(ns) or def main(ns, system)"
        )


def _wants_system(main: NsMain) -> bool:
    try:
        params = inspect.signature(main).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in positional)


class CountingNsClient(NsClient):
    """An NS client that counts its calls (and reports progress every 64)."""

    def __init__(
        self, system: System, client_id: int = -1, on_call: Callable[[int], None] | None = None
    ) -> None:
        super().__init__(system, client_id)
        self.calls = 0
        self._on_call = on_call

    def _count(self) -> None:
        self.calls += 1
        if self._on_call is not None and not self.calls & 63:
            self._on_call(self.calls)

    def framework_version(self) -> int:
        self._count()
        return super().framework_version()

    def version(self, sid: int) -> int:
        self._count()
        return super().version(sid)

    def connect(self, sid: int, version: int) -> int:
        self._count()
        return super().connect(sid, version)

    def call(self, *args: Any, **kwargs: Any) -> int:  # the signature of NsClient.call
        self._count()
        return super().call(*args, **kwargs)

    def close(self, handle: int) -> None:
        self._count()
        super().close(handle)


# --------------------------------------------------------------------------- running
@dataclass
class RunResult:
    """One configuration's run.  ``status``: ok, panic, error (the script failed) or skipped."""

    backend: str
    isolation: int
    status: str = "ok"
    reason: str = ""  # why it was skipped, or what failed
    interface: str = ""
    ns_calls: int = 0
    boot_seconds: float = 0.0
    seconds: float = 0.0  # the script's wall time, boot excluded
    stats: dict[str, int] = field(default_factory=dict)  # counted while the script ran
    boot_stats: dict[str, int] = field(default_factory=dict)  # counted during boot
    output: str = ""  # what the script printed, when captured
    panic: dict[str, str | None] | None = None  # partition, api, reason, traceback
    footprint: Footprint | None = None
    warnings: list[str] = field(default_factory=list)  # the loader's (SystemManifest.warnings)

    @property
    def label(self) -> str:
        return f"{self.backend.upper()} L{self.isolation}"

    def per_call(self, counter: str) -> float | None:
        if not self.ns_calls or counter not in self.stats:
            return None
        return self.stats[counter] / self.ns_calls

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["footprint"] = self.footprint.as_dict() if self.footprint else None
        data["per_ns_call"] = {
            name: self.per_call(name) for name in COUNTER_NAMES if self.per_call(name) is not None
        }
        data["seconds_per_ns_call"] = self.seconds / self.ns_calls if self.ns_calls else None
        return data


@contextlib.contextmanager
def _captured(capture: bool) -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    if not capture:
        yield buffer
        return
    with contextlib.redirect_stdout(buffer):
        yield buffer


def run_script(
    options: Mapping[str, Any],
    main: NsMain,
    *,
    tracer: Tracer | None = None,
    max_connections: int = 8,
    capture: bool = False,
    on_call: Callable[[int], None] | None = None,
    on_loaded: Callable[[System], None] | None = None,
    repeat: int = 1,
) -> RunResult:
    """Load ``options`` (``psaspm.load`` keywords), boot, run ``main``; never raises for
    a panic (status ``panic``).  ConfigError propagates; so does an exception in the
    script unless ``capture`` is set (then it becomes status ``error``)."""
    system = load(**options, max_connections=max_connections, tracer=tracer)
    if on_loaded is not None:
        on_loaded(system)
    result = RunResult(system.backend_name, system.isolation, interface=system.interface)
    result.footprint = footprint(system.manifest, options.get("config"), max_connections)
    result.warnings = list(system.manifest.warnings)
    ns = CountingNsClient(system, -1, on_call)
    with _captured(capture) as out:
        started = time.perf_counter()
        booting = True
        try:
            system.boot()
            booting = False
            booted = time.perf_counter()
            result.boot_seconds = booted - started
            result.boot_stats = system.stats
            args = (ns, system) if _wants_system(main) else (ns,)
            for _ in range(repeat):
                main(*args)
            result.seconds = time.perf_counter() - booted
        except Panic as exc:
            record = exc.record
            result.status = "panic"
            result.reason = f"{record.partition} in {record.api}: {record.reason}"
            result.panic = {
                "partition": record.partition,
                "api": record.api,
                "reason": record.reason,
                "traceback": record.traceback,
            }
            result.seconds = time.perf_counter() - started - result.boot_seconds
        except Exception as exc:
            if not capture or booting:
                raise  # during boot: bad partition code (a ConfigError), not a failed script
            result.status = "error"
            result.reason = f"{type(exc).__name__}: {exc}"
    result.output = out.getvalue()
    result.ns_calls = ns.calls
    after = system.stats
    result.stats = {
        name: value - result.boot_stats.get(name, 0) if name in COUNTER_NAMES else value
        for name, value in after.items()
    }
    return result


def check_inputs(
    options: Mapping[str, Any], configurations: Sequence[tuple[str, int]] = CONFIGURATIONS
) -> list[str]:
    """Check ``options`` before :func:`compare` does any work; returns the loader's warnings.

    Raises the first ConfigError when no configuration can be loaded at all (bad
    manifests or options), or when partition code is missing, does not import or
    lacks a function in a configuration that can be loaded.  A configuration the
    manifests cannot be loaded in while others can is what ``skipped`` is for.
    """
    first: ConfigError | None = None
    loaded = False
    warnings: list[str] = []
    for backend, isolation in configurations:
        try:
            system = load(**dict(options, backend=backend, isolation=isolation))
        except ConfigError as exc:
            first = first or exc
            continue
        loaded = True
        missing, errors = system.check_code()
        if errors or missing:
            raise ConfigError((errors + missing)[0])
        warnings += [w for w in system.manifest.warnings if w not in warnings]
    if not loaded and first is not None:
        raise first
    return warnings


def compare(
    options: Mapping[str, Any],
    main: NsMain,
    *,
    max_connections: int = 8,
    configurations: Sequence[tuple[str, int]] = CONFIGURATIONS,
    on_start: Callable[[int, str], None] | None = None,
    on_call: Callable[[int], None] | None = None,
    repeat: int = 1,
) -> list[RunResult]:
    """Run the same script under each configuration; skip those the manifests cannot run in."""
    results = []
    for index, (backend, isolation) in enumerate(configurations):
        if on_start is not None:
            on_start(index, f"{backend.upper()} L{isolation}")
        opts = dict(options, backend=backend, isolation=isolation)
        try:
            result = run_script(
                opts,
                main,
                max_connections=max_connections,
                capture=True,
                on_call=on_call,
                repeat=repeat,
            )
        except ConfigError as exc:
            result = RunResult(
                backend, isolation, status="skipped", reason=" ".join(str(exc).split())
            )
        results.append(result)
    return results
