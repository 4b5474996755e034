"""Run one example: load its partition manifests, boot, run ns_app.main, print stats.

    python examples/run.py examples/echo [--backend ipc --isolation 2]

Without --backend/--isolation the example's first supported configuration
(``CONFIGS`` in its ns_app.py) is used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType

import yaml

import psaspm
from psaspm import System
from psaspm.system import import_python_file


def partition_manifests(folder: Path) -> list[Path]:
    """Every *.yaml in ``folder`` that is a partition manifest (not a manifest list)."""
    found = []
    for path in sorted(folder.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "name" in document and "manifest_list" not in document:
            found.append(path)
    if not found:
        raise SystemExit(f"{folder}: no partition manifest (*.yaml) found")
    return found


def ns_app(folder: Path) -> ModuleType:
    """The example's ns_app.py, imported under a name of its own."""
    return import_python_file(folder / "ns_app.py", "example", folder.name)


def configs(folder: Path) -> list[tuple[str, int]]:
    """The (backend, isolation) configurations the example supports."""
    return list(getattr(ns_app(folder), "CONFIGS", [("ipc", 1)]))


def run(folder: Path, backend: str, isolation: int) -> System:
    """Load, boot and run the example; return the system (ns_app.main raises on failure)."""
    app = ns_app(folder)
    system = psaspm.load(partition_manifests(folder), backend=backend, isolation=isolation)
    system.boot()
    app.main(system.ns_client(), system)
    return system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="an example folder, e.g. examples/echo")
    parser.add_argument("--backend", choices=["ipc", "sfn"])
    parser.add_argument("--isolation", type=int, choices=[1, 2, 3])
    args = parser.parse_args(argv)
    default_backend, default_isolation = configs(args.folder)[0]
    backend = args.backend or default_backend
    isolation = args.isolation or (default_isolation if backend == default_backend else 1)
    print(f"== {args.folder.name}: backend {backend}, isolation {isolation}")
    system = run(args.folder, backend, isolation)
    print("stats:", ", ".join(f"{key}={value}" for key, value in system.stats.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
