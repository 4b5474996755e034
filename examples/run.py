"""Run one example: load its partition manifests, boot, run ns_app.main, print stats.

    python examples/run.py examples/echo [--backend ipc --isolation 2]

Without --backend/--isolation the example's first supported configuration
(``CONFIGS`` in its ns_app.py) is used.  A folder with a manifest list is loaded
through it (so pids are the list's, as with ``psaspm run LIST``); otherwise its
partition manifests are.  Bad input (a ConfigError) is one line and exit 2.
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


def sources(folder: Path) -> list[Path]:
    """The folder's manifest lists if it has any, else every partition manifest in it."""
    lists, manifests = [], []
    for path in sorted(folder.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            continue
        if document.get("type") == "manifest_list" or "manifest_list" in document:
            lists.append(path)
        elif "name" in document:
            manifests.append(path)
    if not lists and not manifests:
        raise psaspm.ConfigError(f"{folder}: no manifest list or partition manifest (*.yaml)")
    return lists or manifests


def ns_app(folder: Path) -> ModuleType:
    """The example's ns_app.py, imported under a name of its own."""
    return import_python_file(folder / "ns_app.py", "example", folder.name)


def configs(folder: Path) -> list[tuple[str, int]]:
    """The (backend, isolation) configurations the example supports."""
    return list(getattr(ns_app(folder), "CONFIGS", [("ipc", 1)]))


def run(folder: Path, backend: str, isolation: int) -> System:
    """Load, boot and run the example; return the system (ns_app.main raises on failure)."""
    app = ns_app(folder)
    system = psaspm.load(sources(folder), backend=backend, isolation=isolation)
    system.boot()
    app.main(system.ns_client(), system)
    return system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="an example folder, e.g. examples/echo")
    parser.add_argument("--backend", choices=["ipc", "sfn"])
    parser.add_argument("--isolation", type=int, choices=[1, 2, 3])
    args = parser.parse_args(argv)
    try:
        if not (args.folder / "ns_app.py").is_file():
            raise psaspm.ConfigError(f"{args.folder}: no ns_app.py (is it an example folder?)")
        default_backend, default_isolation = configs(args.folder)[0]
        backend = args.backend or default_backend
        isolation = args.isolation or (default_isolation if backend == default_backend else 1)
        print(f"== {args.folder.name}: backend {backend}, isolation {isolation}")
        system = run(args.folder, backend, isolation)
    except psaspm.ConfigError as exc:
        print(f"run.py: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print("stats:", ", ".join(f"{key}={value}" for key, value in system.stats.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
