"""The ``psaspm`` command line.

Each subcommand is one ``add_<name>_command(subparsers)`` function that adds
its parser and sets ``handler`` (a function ``(args) -> int``); to add a
command, write such a function and list it in :data:`COMMANDS`.  Commands that
load a system share :func:`add_system_options` and :func:`system_options`.
Any ConfigError becomes one line ``psaspm: error: <message>`` and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from psaspm.errors import ConfigError, ManifestError
from psaspm.kernel.instruments import COUNTER_NAMES
from psaspm.manifest import layout_dict, load_system_manifest, parse_config_header
from psaspm.manifest.config import (
    ISOLATION_LEVELS,
    backend_from_config,
    check_backend,
    isolation_from_config,
)
from psaspm.manifest.model import Partition, SystemManifest

if TYPE_CHECKING:
    from psaspm.trace import ChromeTrace

EXIT_OK = 0
EXIT_FAILED = 1  # the workload panicked or its script failed
EXIT_ERROR = 2

INTERFACE_NAMES = {"sfn": "SFN interface", "cross": "cross-call interface", "svc": "SVC interface"}
COUNTER_LABELS = {
    "ns_calls": "NS calls",
    "psa_calls": "PSA calls",
    "messages": "messages",
    "context_switches": "context switches",
    "svc_entries": "SVC entries",
    "boundary_switches": "boundary switches",
    "interrupts": "interrupts",
    "panics": "panics",
}

Subparsers = Any  # argparse's _SubParsersAction is private


def add_system_options(
    parser: argparse.ArgumentParser,
    *,
    configuration: bool = True,
    code: bool = True,
    c_build: bool = True,
) -> None:
    """SOURCES and the options that say how to build the system from them.

    ``configuration=False`` leaves --backend and --isolation out of the help (``compare``
    runs every configuration and refuses them); ``code=False`` leaves out --code and
    ``c_build=False`` --cflags, --c-threads and --sanitize (``layout`` looks at manifests
    only; ``headers`` checks --code's partition names but builds nothing).
    """
    parser.add_argument("sources", nargs="+", metavar="SOURCES", help="manifest lists or manifests")
    # Without them (compare), they are still parsed, unlisted, to be refused in plain words.
    parser.add_argument(
        "--backend",
        choices=("ipc", "sfn"),
        help="SPM backend (default ipc)" if configuration else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--isolation",
        type=int,
        choices=ISOLATION_LEVELS,
        help="isolation level (default 1)" if configuration else argparse.SUPPRESS,
    )
    if code:
        parser.add_argument(
            "--code",
            dest="code",
            action="append",
            default=[],
            metavar="PARTITION=FILE[,FILE]",
            help="a partition's code: a .py, C sources or a .so (default: the .py, else the "
            ".c, beside its manifest); repeatable",
        )
    if code and c_build:
        parser.add_argument(
            "--cflags",
            default="",
            metavar='"FLAGS"',
            help='compiler flags for C partition code, e.g. "-I inc -DX=1"',
        )
        parser.add_argument(
            "--c-threads",
            action="store_true",
            help="run each C partition's code on an OS thread of its own (pointers into a "
            "blocked partition's stack stay valid, errno is per partition)",
        )
        parser.add_argument(
            "--sanitize",
            choices=("address",),
            help="build C partition code with AddressSanitizer (implies --c-threads)",
        )
    parser.add_argument(
        "-c",
        "--config",
        dest="config_headers",
        action="append",
        default=[],
        metavar="CONFIG.h",
        help="C header of #define lines (conditionals, TFM_ISOLATION_LEVEL, CONFIG_TFM_SPM_BACKEND)",
    )
    parser.add_argument(
        "-D",
        dest="defines",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="set a config flag (NAME alone means 1); overrides -c",
    )
    parser.add_argument(
        "--path",
        dest="paths",
        action="append",
        default=[],
        metavar="VAR=DIR",
        help="value of ${VAR} in manifest paths (falls back to the environment)",
    )


def system_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``load_system_manifest`` (and ``psaspm.load``) from the options."""
    config: dict[str, object] = {}
    for header in args.config_headers:
        config.update(parse_config_header(header))
    for define in args.defines:
        name, sep, value = define.partition("=")
        if not name:
            raise ConfigError(f"-D {define!r}: a flag name is needed")
        config[name] = value if sep else "1"
    paths: dict[str, str] = {}
    for item in args.paths:
        name, sep, value = item.partition("=")
        if not name or not sep:
            raise ConfigError(f"--path {item!r}: expected VAR=DIR")
        paths[name] = value
    backend = check_backend(args.backend) if args.backend else backend_from_config(config, "ipc")
    isolation = args.isolation or isolation_from_config(config, 1)
    return {
        "sources": list(args.sources),
        "backend": backend,
        "isolation": isolation,
        "config": config,
        "paths": paths,
    }


def code_options(args: argparse.Namespace) -> dict[str, str | list[str]]:
    """``code=`` for ``psaspm.load`` from ``--code NAME=FILE[,FILE...]`` options."""
    code: dict[str, str | list[str]] = {}
    for item in args.code:
        name, sep, value = item.partition("=")
        files = [f for f in value.split(",") if f]
        if not name or not sep or not files:
            raise ConfigError(f"--code {item!r}: expected PARTITION=FILE[,FILE...]")
        if name in code:
            raise ConfigError(f"--code {item!r}: code for {name} is already given")
        code[name] = files[0] if len(files) == 1 else files
    return code


def c_options(args: argparse.Namespace) -> dict[str, Any]:
    """``cflags=``, ``c_threads=`` and ``sanitize=`` for ``psaspm.load`` (C code)."""
    if args.sanitize == "address":
        from psaspm import crt

        crt.asan_reexec(args.reexec)  # returns when the ASan runtime is loaded
    return {"cflags": cflag_options(args), "c_threads": args.c_threads, "sanitize": args.sanitize}


def cflag_options(args: argparse.Namespace) -> list[str]:
    """``cflags=`` for ``psaspm.load`` from ``--cflags "..."`` (split as a shell would)."""
    import shlex

    try:
        return shlex.split(args.cflags)
    except ValueError as exc:
        raise ConfigError(f"--cflags {args.cflags!r}: {exc}") from None


def add_layout_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("layout", help="show partitions, services, signals and handles")
    add_system_options(parser, code=False)
    parser.add_argument("--json", action="store_true", help="print the layout as JSON")
    parser.set_defaults(handler=run_layout)


def print_warnings(warnings: Sequence[str]) -> None:
    """Problems that do not stop psaspm but would break the system on TF-M: one line each."""
    for warning in warnings:
        print(f"psaspm: warning: {warning}", file=sys.stderr)


def run_layout(args: argparse.Namespace) -> int:
    system = load_system_manifest(**system_options(args))
    print_warnings(system.warnings)
    if args.json:
        print(json.dumps(layout_dict(system), indent=2))
    else:
        console = Console()
        if not console.is_terminal:  # piped: do not squeeze the tables into 80 columns
            console = Console(width=160)
        for table in layout_tables(system):
            console.print(table)
    return EXIT_OK


def add_check_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("check", help="validate manifests and list every problem")
    add_system_options(parser)
    parser.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    from psaspm.system import System

    code = code_options(args)
    options = system_options(args)
    try:
        system = load_system_manifest(**options)
    except ManifestError as exc:
        for problem in exc.problems:
            print(f"psaspm: error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    print_warnings(system.warnings)
    checked = System(system, code=code, config=options["config"], **c_options(args))
    code_warnings, code_errors = checked.check_code()
    print_warnings(code_warnings)
    for error in code_errors:
        print(f"psaspm: error: {' '.join(error.split())}", file=sys.stderr)
    if code_errors:
        return EXIT_ERROR
    services = sum(len(p.services) for p in system.partitions)
    irqs = sum(len(p.irqs) for p in system.partitions)
    print(
        f"ok: {len(system.partitions)} partitions, {services} services, {irqs} irqs "
        f"(backend {system.backend}, isolation {system.isolation})"
    )
    return EXIT_OK


def add_watchdog_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--watchdog",
        type=float,
        metavar="SECONDS",
        help="halt the SPE (a panic, api 'watchdog') when partition code runs longer than "
        "this without the SPE going idle or blocking",
    )


def watchdog_options(args: argparse.Namespace) -> dict[str, Any]:
    """``load()``'s watchdog keyword, when the command line asked for one."""
    return {"watchdog": args.watchdog} if args.watchdog is not None else {}


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """``load()``'s keywords from the command line: the system, ``--code``, the C and the
    watchdog options (what ``run``, ``compare`` and ``serve`` build a system with)."""
    return (
        system_options(args)
        | {"code": code_options(args)}
        | c_options(args)
        | watchdog_options(args)
    )


def _add_workload_options(parser: argparse.ArgumentParser) -> None:
    add_watchdog_option(parser)
    parser.add_argument(
        "--max-connections",
        type=int,
        default=8,
        metavar="N",
        help="connection pool size (CONFIG_TFM_CONN_HANDLE_MAX_NUM, default 8)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress display (run: and no summary, only the script's output)",
    )
    output.add_argument("--json", action="store_true", help="print one JSON document")


def add_run_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="boot a system, run a non-secure script against it, summarise"
    )
    add_system_options(parser)
    parser.add_argument(
        "--ns",
        dest="script",
        metavar="SCRIPT",
        help="non-secure program: a Python file with main(ns) or main(ns, system), or C "
        "code with int main(void) (app.c, a.c,b.c or app.so)",
    )
    parser.add_argument(
        "--trace", metavar="FILE", help="write the run as Chrome trace-event JSON (Perfetto)"
    )
    parser.add_argument(
        "--stats", action="store_true", help="print every counter, total and per NS call"
    )
    _add_workload_options(parser)
    parser.set_defaults(handler=run_run)


def run_run(args: argparse.Namespace) -> int:
    from psaspm import runner
    from psaspm.ns_c import NsProgramFailed

    if args.trace:
        check_writable(args.trace, "--trace")
    options = load_options(args)
    main = runner.load_script(args.script) if args.script else _no_script
    tracer: ChromeTrace | None = None
    loaded: list[Any] = []  # the system once loaded; bad input (exit 2) writes no trace
    if args.trace:
        from psaspm.trace import ChromeTrace

        tracer = ChromeTrace()

    def on_loaded(system: Any) -> None:
        loaded.append(system)
        if tracer is not None:
            tracer.attach(system)
        print_warnings(system.manifest.warnings)

    progress = _Progress(_progress_wanted(args), f"running {args.script or 'boot only'}")
    try:
        with progress:
            result = runner.run_script(
                options,
                main,
                tracer=tracer,
                max_connections=args.max_connections,
                capture=args.json,
                on_call=progress.calls,
                on_loaded=on_loaded,
            )
    except ConfigError:
        loaded.clear()  # bad input, also when only boot found it (partition code): no trace
        raise
    except NsProgramFailed as failed:
        print(f"psaspm: error: {failed}", file=sys.stderr)
        return EXIT_FAILED
    except Exception:
        traceback.print_exc()
        print("psaspm: error: the NS script raised an exception", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if tracer is not None and loaded:
            _write_trace(tracer, args.trace)  # also after a failure: the trace shows where
    if args.json:
        data = result.as_dict()
        data["trace"] = args.trace
        print(json.dumps(data, indent=2))
    elif not args.quiet or args.stats:
        _print_run_summary(result, args)
    if result.status == "panic":
        print(f"psaspm: panic: {result.reason}", file=sys.stderr)
        if result.panic is not None and result.panic.get("traceback"):
            print(result.panic["traceback"], end="", file=sys.stderr)
    elif result.status == "error":
        print(f"psaspm: error: the NS script failed: {result.reason}", file=sys.stderr)
    return EXIT_OK if result.status == "ok" else EXIT_FAILED


def check_writable(path: str, option: str) -> None:
    """An output file ``option`` names can be written (checked before any work is done),
    without creating it."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{option} {path}: is a directory, not a file")
    folder = target.parent
    if not folder.is_dir():
        raise ConfigError(f"{option} {path}: cannot be written: no directory {folder}")
    writable = os.access(target, os.W_OK) if target.exists() else os.access(folder, os.W_OK)
    if not writable:
        raise ConfigError(f"{option} {path}: cannot be written: permission denied")


def _write_trace(tracer: ChromeTrace, path: str) -> None:
    try:
        tracer.write(path)
    except OSError as exc:
        raise ConfigError(f"--trace {path}: cannot be written: {exc.strerror or exc}") from None


def _no_script(ns: Any) -> None:
    """Without --ns: boot only."""


def _print_run_summary(result: Any, args: argparse.Namespace) -> None:
    console = _console()
    interface = INTERFACE_NAMES.get(result.interface, result.interface)
    head = f"backend {result.backend}, isolation {result.isolation} ({interface})"
    console.rule(f"[bold]psaspm run[/]: {head}", style="dim")
    stats = result.stats
    parts = [f"{result.ns_calls} NS calls"] + [
        f"{COUNTER_LABELS[name]} {stats.get(name, 0)}" for name in COUNTER_NAMES
    ]
    parts.append(f"time {_ms(result.seconds)} (boot {_ms(result.boot_seconds)})")
    console.print(" · ".join(parts), highlight=False)
    if args.stats:
        table = _table(
            "Counters while the script ran (boot counted apart)",
            "counter",
            "script",
            "per NS call",
            "boot",
        )
        for name in ("ns_calls", *COUNTER_NAMES):
            if name == "ns_calls":
                table.add_row(COUNTER_LABELS[name], str(result.ns_calls), "", "")
                continue
            total = stats.get(name, 0)
            boot = result.boot_stats.get(name)
            table.add_row(
                COUNTER_LABELS[name],
                str(total),
                _per_call(total, result.ns_calls),
                "" if boot is None else str(boot),
            )
        wall = result.seconds / result.ns_calls * 1e6 if result.ns_calls else None
        table.add_row(
            "wall time",
            _ms(result.seconds),
            f"{wall:.1f} µs" if wall else "-",
            _ms(result.boot_seconds),
        )
        console.print(table)
    if args.trace:
        console.print(f"trace written to {args.trace} (open it in https://ui.perfetto.dev)")


def add_compare_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="run one NS script under every backend and isolation level, side by side",
    )
    add_system_options(parser, configuration=False)
    parser.add_argument(
        "--ns",
        dest="script",
        required=True,
        metavar="SCRIPT",
        help="non-secure program: a Python file with main(ns) or main(ns, system), or C "
        "code with int main(void) (app.c, a.c,b.c or app.so)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run the script N times per configuration (steadier wall times)",
    )
    _add_workload_options(parser)
    parser.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from psaspm import runner

    if args.backend or args.isolation:
        raise ConfigError("compare runs every configuration: drop --backend and --isolation")
    if args.repeat < 1:
        raise ConfigError(f"--repeat {args.repeat}: at least 1")
    options = load_options(args)
    main = runner.load_script(args.script)
    configurations = runner.CONFIGURATIONS
    print_warnings(runner.check_inputs(options, configurations))
    progress = _Progress(_progress_wanted(args), "comparing", total=len(configurations))
    with progress:
        results = runner.compare(
            options,
            main,
            max_connections=args.max_connections,
            configurations=configurations,
            on_start=progress.step,
            on_call=progress.calls,
            repeat=args.repeat,
        )
    if args.json:
        document = {
            "sources": list(args.sources),
            "script": args.script,
            "configurations": [r.as_dict() for r in results],
        }
        print(json.dumps(document, indent=2))
    else:
        console = _console()
        console.print(compare_table(results))
        for note in compare_notes(results):
            console.print(note, highlight=False)
    ran = [r for r in results if r.status != "skipped"]
    return EXIT_OK if ran and all(r.status == "ok" for r in ran) else EXIT_FAILED


def compare_table(results: Sequence[Any]) -> Table:
    """Rows: counters per NS call, time, and TF-M's memory; a column per configuration."""
    table = Table(
        title="psaspm compare: per NS call, and the memory TF-M would reserve", title_justify="left"
    )
    table.add_column("", no_wrap=True)
    for r in results:
        interface = INTERFACE_NAMES.get(r.interface, "")
        table.add_column(f"{r.label}\n{interface}" if interface else r.label, justify="right")

    def row(label: str, cell: Callable[[Any], str]) -> None:
        table.add_row(label, *(cell(r) if r.status != "skipped" else "skipped" for r in results))

    row("NS calls", lambda r: str(r.ns_calls))
    for name in COUNTER_NAMES:
        if name == "panics":
            row("panics (total)", lambda r: str(r.stats.get("panics", 0)))
        else:
            row(f"{COUNTER_LABELS[name]} / call", _per_call_cell(name))
    row(
        "wall time / call",
        lambda r: f"{r.seconds / r.ns_calls * 1e6:.1f} µs" if r.ns_calls else "-",
    )
    table.add_section()
    row("stacks: partitions", _partition_stacks)
    row("stack: NS agent", lambda r: _size(r.footprint.ns_agent_stack, shared=r.backend == "sfn"))
    row("stack: idle", lambda r: _size(r.footprint.idle_stack) if r.backend == "ipc" else "-")
    row("stacks: total", lambda r: _size(r.footprint.stacks))
    row("threads", lambda r: str(r.footprint.threads))
    row(
        "connection pool",
        lambda r: (
            f"{r.footprint.connection_pool} slots" if r.footprint.connection_pool else "stack-local"
        ),
    )
    return table


def _per_call_cell(name: str) -> Callable[[Any], str]:
    def cell(result: Any) -> str:
        return _per_call(result.stats.get(name, 0), result.ns_calls)

    return cell


def compare_notes(results: Sequence[Any]) -> list[str]:
    notes = []
    for r in results:
        if r.status == "skipped":
            notes.append(f"{r.label} skipped: {r.reason}")
        elif r.status != "ok":
            notes.append(f"{r.label} {r.status}: {r.reason}")
    unknown = sorted({name for r in results if r.footprint for name in r.footprint.unknown})
    if unknown:
        notes.append(
            f"stack sizes named by undefined macros: {', '.join(unknown)} "
            "(give them with -D NAME=VALUE or -c CONFIG.h)"
        )
    if any(r.backend == "sfn" and r.status != "skipped" for r in results):
        notes.append(
            "SFN: one shared stack, the NS agent's: half of CONFIG_TFM_TOTAL_STACK_SIZE "
            "(the sum of stack_size values, at least 2048), rounded up to 8"
        )
    if any(r.backend == "ipc" and r.status != "skipped" for r in results):
        notes.append(
            "IPC: a stack per partition, the NS agent's (the SPM runs on it), the idle thread's"
        )
    return notes


def _partition_stacks(result: Any) -> str:
    fp = result.footprint
    if result.backend == "sfn":
        return "- (caller's)"
    known = [s for s in fp.partition_stacks.values() if s is not None]
    missing = len(fp.partition_stacks) - len(known)
    text = f"{len(fp.partition_stacks)} = {_size(sum(known))}"
    return text + f" + {missing} unknown" if missing else text


def _size(value: int | None, shared: bool = False) -> str:
    if value is None:
        return "unknown"
    text = f"{value} B"
    return f"{text} (shared)" if shared else text


def _per_call(total: int, calls: int) -> str:
    return f"{total / calls:.2f}" if calls else "-"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def _console() -> Console:
    console = Console()
    if not console.is_terminal:  # piped: do not squeeze tables into 80 columns
        console = Console(width=160)
    return console


def _progress_wanted(args: argparse.Namespace) -> bool:
    return not (args.quiet or args.json) and sys.stderr.isatty()


class _Progress:
    """A transient progress display on stderr, shown for long runs only."""

    DELAY = 0.5  # seconds before a single run shows progress

    def __init__(self, enabled: bool, description: str, total: int | None = None) -> None:
        self.enabled = enabled
        self.description = description
        self.total = total
        self.progress: Progress | None = None
        self.task: Any = None
        self.started = 0.0
        self.label = ""

    def __enter__(self) -> _Progress:
        self.started = time.perf_counter()
        if self.enabled and self.total is not None:
            self._show()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _show(self) -> None:
        from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
        if self.total is not None:
            columns.append(BarColumn())
        columns += [TextColumn("{task.fields[calls]} NS calls"), TimeElapsedColumn()]
        self.progress = Progress(
            *columns,
            console=Console(stderr=True),
            transient=True,
            redirect_stdout=sys.stdout.isatty(),
            redirect_stderr=False,
        )
        self.task = self.progress.add_task(self.description, total=self.total, calls=0)
        self.progress.start()

    def calls(self, count: int) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            if time.perf_counter() - self.started < self.DELAY:
                return
            self._show()
        assert self.progress is not None
        self.progress.update(self.task, calls=count)

    def step(self, index: int, label: str) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task, completed=index, calls=0, description=f"{self.description} {label}"
            )


def add_serve_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the system for other processes, through a mailbox NS agent (see psaspm.remote)",
        description="Boot the system and serve non-secure clients on a socket, each "
        "connection one NS client of a mailbox NS agent (docs/mailbox-protocol.md). "
        "Stops gracefully on SIGINT/SIGTERM (a second signal stops at once); logs panics "
        "and restarts on stderr.",
    )
    add_system_options(parser)
    parser.add_argument(
        "--listen",
        required=True,
        metavar="ADDR",
        help="unix:PATH (socket file created 0600) or tcp:127.0.0.1:PORT",
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a TCP address that is not loopback"
    )
    parser.add_argument(
        "--restart-on-panic", action="store_true", help="reboot the SPE after a secure panic"
    )
    parser.add_argument(
        "--slots", type=int, default=16, help="mailbox slots: calls in flight (1..32, default 16)"
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=8,
        help="connection pool size (CONFIG_TFM_CONN_HANDLE_MAX_NUM, default 8)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long a shutdown waits for calls in flight; partition code still running "
        "then is interrupted (default 5)",
    )
    add_watchdog_option(parser)
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from psaspm.mailbox.server import (
        Server,
        build_served_system,
        parse_address,
        serve_until_signalled,
    )

    options = load_options(args)
    address = parse_address(args.listen, args.allow_remote)
    if not args.shutdown_timeout >= 0:
        raise ConfigError(f"--shutdown-timeout {args.shutdown_timeout:g}: expected seconds >= 0")
    served = build_served_system(**options, slots=args.slots, max_connections=args.max_connections)
    server = Server(served, address, args.restart_on_panic, args.shutdown_timeout)
    return serve_until_signalled(server)


def add_headers_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "headers",
        help="write the C headers TF-M's manifest tool generates (sid.h, pid.h, ...)",
        description="Write psa_manifest/sid.h, psa_manifest/pid.h, "
        "psa_manifest/<manifest basename>.h per partition, config_impl.h and "
        "psa/framework_feature.h for this configuration, as TF-M's manifest tool "
        "and build do. Compile partition code with -I DIR and `psaspm cflags`.",
    )
    add_system_options(parser, c_build=False)
    parser.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="folder to write the headers in"
    )
    parser.set_defaults(handler=run_headers)


def run_headers(args: argparse.Namespace) -> int:
    from psaspm.manifest.headers import write_headers
    from psaspm.system import System

    options = system_options(args)
    system = load_system_manifest(**options)
    System(system, code=code_options(args))  # --code names partitions of this system
    written = write_headers(system, args.output, options["config"])
    print(f"wrote {len(written)} headers to {args.output}")
    return EXIT_OK


def add_cflags_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "cflags", help="print the compiler flags for psaspm's PSA headers (psa/client.h, ...)"
    )
    parser.add_argument(
        "--client",
        action="store_true",
        help="flags for a C client of `psaspm serve` (the same -I flags; link with "
        "`psaspm libs --client`)",
    )
    parser.set_defaults(handler=run_cflags)


def run_cflags(args: argparse.Namespace) -> int:
    import shlex

    from psaspm.cbuild import include_flags

    print(" ".join(shlex.quote(flag) for flag in include_flags()))
    return EXIT_OK


def add_libs_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "libs",
        help="print the linker flags for a C client of `psaspm serve` (building the library "
        "first if needed)",
        description="Print what to link a C program with so that its psa/client.h functions "
        "talk to `psaspm serve` at $PSASPM_SERVER (docs/mailbox-protocol.md). The library is "
        "built with $CC into psaspm's build cache on first use.",
    )
    parser.add_argument(
        "--client",
        action="store_true",
        required=True,
        help="the C client library (libpsaspm_client)",
    )
    parser.add_argument(
        "--static",
        action="store_true",
        help="the library's object file, linked into the program, instead of the shared library",
    )
    parser.set_defaults(handler=run_libs)


def run_libs(args: argparse.Namespace) -> int:
    import shlex

    from psaspm.cbuild import build_client_library

    flags = build_client_library().link_flags(static=args.static)
    print(" ".join(shlex.quote(flag) for flag in flags))
    return EXIT_OK


COMMANDS: list[Callable[[Subparsers], None]] = [
    add_layout_command,
    add_check_command,
    add_run_command,
    add_compare_command,
    add_serve_command,
    add_headers_command,
    add_cflags_command,
    add_libs_command,
]


def layout_tables(system: SystemManifest) -> list[Table]:
    """Partitions in load order, then their services, then their IRQs."""
    ordered = sorted(system.partitions, key=lambda p: p.load_order)  # stable: pid.h order ties
    tables = [_partitions_table(system, ordered), _services_table(ordered)]
    if any(p.irqs for p in ordered):
        tables.append(_irqs_table(ordered))  # no empty IRQ table for a system without any
    return tables


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table


def _partitions_table(system: SystemManifest, ordered: Sequence[Partition]) -> Table:
    title = f"Partitions by load order (backend {system.backend}, isolation {system.isolation})"
    table = _table(title, "load order", "pid", "partition", "model", "type", "priority", "FF-M")
    for p in ordered:
        name = p.name + (" (NS agent)" if p.ns_agent else "")
        table.add_row(
            f"0x{p.load_order:04x}",
            str(p.pid),
            name,
            p.model.value,
            p.type.value,
            p.priority.name,
            p.psa_framework_version,
        )
    return table


def _services_table(ordered: Sequence[Partition]) -> Table:
    table = _table(
        "Services", "partition", "service", "SID", "signal", "stateless handle", "version", "NS"
    )
    for p in ordered:
        for s in p.services:
            handle = f"0x{s.stateless_handle:08x}" if s.stateless_handle is not None else "-"
            table.add_row(
                p.name,
                s.name,
                f"0x{s.sid:08x}",
                f"0x{s.signal:08x}",
                handle,
                f"{s.version} {s.version_policy.value}",
                "yes" if s.non_secure_clients else "no",
            )
    return table


def _irqs_table(ordered: Sequence[Partition]) -> Table:
    table = _table("IRQs", "partition", "source", "signal macro", "signal", "handling")
    for p in ordered:
        for q in p.irqs:
            table.add_row(p.name, str(q.source), q.name, f"0x{q.signal:08x}", q.handling.value)
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psaspm", description="A host-side PSA SPM (TF-M).")
    parser.add_argument("--version", action="version", version=f"psaspm {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def _joined_cflags(argv: Sequence[str]) -> list[str]:
    """``--cflags VALUE`` as ``--cflags=VALUE``: the value starts with ``-`` (``"-I inc"``),
    which argparse would otherwise take for an option."""
    out: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--cflags":
            value = next(items, None)
            out.append("--cflags" if value is None else f"--cflags={value}")
        else:
            out.append(item)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run one psaspm command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(_joined_cflags(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    # --sanitize address may re-execute the process (with ASan's runtime) only when it
    # runs the process's own command line.
    args.reexec = argv is None
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        status = handler(args)
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return status
    except ConfigError as exc:
        print(f"psaspm: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("psaspm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``psaspm ... --json | head``): stop quietly.
        # Point stdout at /dev/null so that Python's own flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_FAILED


def _version() -> str:
    from psaspm import __version__

    return __version__


def _one_line(exc: ConfigError) -> str:
    message = " ".join(str(exc).split())
    if isinstance(exc, ManifestError) and len(exc.problems) > 1:
        message += f" (and {len(exc.problems) - 1} more problems: 'psaspm check' lists them)"
    return message


if __name__ == "__main__":
    sys.exit(main())
