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
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from psaspm.errors import ConfigError, ManifestError
from psaspm.manifest import layout_dict, load_system_manifest, parse_config_header
from psaspm.manifest.config import backend_from_config, check_backend, isolation_from_config
from psaspm.manifest.model import Partition, SystemManifest

EXIT_OK = 0
EXIT_ERROR = 2

Subparsers = Any  # argparse's _SubParsersAction is private


def add_system_options(parser: argparse.ArgumentParser) -> None:
    """SOURCES and the options that say how to build the system from them."""
    parser.add_argument("sources", nargs="+", metavar="SOURCES", help="manifest lists or manifests")
    parser.add_argument("--backend", choices=("ipc", "sfn"), help="SPM backend (default ipc)")
    parser.add_argument(
        "--isolation", type=int, choices=(1, 2, 3), help="isolation level (default 1)"
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


def add_layout_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("layout", help="show partitions, services, signals and handles")
    add_system_options(parser)
    parser.add_argument("--json", action="store_true", help="print the layout as JSON")
    parser.set_defaults(handler=run_layout)


def run_layout(args: argparse.Namespace) -> int:
    system = load_system_manifest(**system_options(args))
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
    try:
        system = load_system_manifest(**system_options(args))
    except ManifestError as exc:
        for problem in exc.problems:
            print(f"psaspm: error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    services = sum(len(p.services) for p in system.partitions)
    irqs = sum(len(p.irqs) for p in system.partitions)
    print(
        f"ok: {len(system.partitions)} partitions, {services} services, {irqs} irqs "
        f"(backend {system.backend}, isolation {system.isolation})"
    )
    return EXIT_OK


COMMANDS: list[Callable[[Subparsers], None]] = [add_layout_command, add_check_command]


def layout_tables(system: SystemManifest) -> list[Table]:
    """Partitions in load order, then their services, then their IRQs."""
    ordered = sorted(system.partitions, key=lambda p: p.load_order)  # stable: pid.h order ties
    return [_partitions_table(system, ordered), _services_table(ordered), _irqs_table(ordered)]


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
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one psaspm command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"psaspm: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _one_line(exc: ConfigError) -> str:
    message = " ".join(str(exc).split())
    if isinstance(exc, ManifestError) and len(exc.problems) > 1:
        message += f" (and {len(exc.problems) - 1} more problems: 'psaspm check' lists them)"
    return message


if __name__ == "__main__":
    sys.exit(main())
