"""Layering: lower layers of psaspm never import upper ones.

errors/consts < manifest < kernel < psa < sprt < system < cli; within the kernel
each module imports only lower-ranked ones, and ``kernel.door`` (partition code's
only way into the SPM) imports only the API's typed surface and plain data.  Checked by parsing every module's imports with ``ast``,
including imports under ``if TYPE_CHECKING`` and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "psaspm"

# Rank of each layer; a module may import only from layers of lower or equal rank.
LAYERS = {
    "errors": 0,
    "consts": 0,
    "manifest": 1,
    "kernel": 2,
    "cbuild": 2,  # compiling C partition code (uses the manifest layer's headers)
    "psa": 3,
    "hal": 3,
    "sprt": 4,
    "crt": 4,  # the C runtime: C partition code behind the PSA door
    "platform": 4,
    "watchdog": 4,  # the host thread that stops runaway partition code
    "system": 5,
    "trace": 5,
    "__init__": 6,
    "runner": 6,
    "ns_c": 6,  # non-secure programs in C
    "agents": 6,  # mailbox NS agent partition code
    "mailbox": 6,  # wire protocol and the serve side
    "remote": 6,  # the multi-process NS client
    "cli": 7,
    "__main__": 8,
}


# Rank of each kernel module: a kernel module imports only kernel modules of lower rank,
# so the kernel has no import cycles (type-only imports included).
KERNEL = {
    "memory": 0,
    "api": 0,
    "instruments": 0,
    "objects": 1,
    "_generated_api": 2,
    "runtime": 2,
    "door": 3,
    "contract": 3,
    "interrupts": 4,
    "scheduler": 4,
    "sfn": 4,
    "ipc": 5,
    "spm": 6,
    "_generated_entries": 7,
    "interfaces": 8,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1 and parts[-2] != "psaspm":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    """The layer of a ``psaspm.*`` module name: its first component below the package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> set[str]:
    """Every psaspm module ``path`` imports, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            if target != "psaspm":
                found.add(target)
                continue
            # ``from psaspm import psa`` imports a submodule; other names come from __init__.
            for alias in node.names:
                sub = PACKAGE / alias.name
                is_module = sub.with_suffix(".py").is_file() or sub.is_dir()
                found.add(f"psaspm.{alias.name}" if is_module else "psaspm")
    return {name for name in found if name == "psaspm" or name.startswith("psaspm.")}


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    """Every top-level part of the package belongs to a known layer."""
    for path in MODULES:
        assert layer_of(module_name(path)) in LAYERS, path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_upward_imports(path: Path) -> None:
    """A module imports psaspm modules of its own or lower layers only."""
    here = layer_of(module_name(path))
    for target in imports(path):
        if target == "psaspm":
            # The package's own names (load, Panic...) come from system: upper layers only.
            assert LAYERS[here] >= LAYERS["__init__"], f"{path.name} imports the psaspm package"
            continue
        there = layer_of(target)
        assert LAYERS[there] <= LAYERS[here], f"{module_name(path)} imports {target}"


KERNEL_MODULES = sorted((PACKAGE / "kernel").glob("*.py"))


def test_every_kernel_module_has_a_rank() -> None:
    """Every module of the kernel package has a rank in the kernel's own layering."""
    for path in KERNEL_MODULES:
        assert path.stem == "__init__" or path.stem in KERNEL, path


@pytest.mark.parametrize("path", KERNEL_MODULES, ids=lambda p: p.stem)
def test_kernel_modules_import_only_lower_ranks(path: Path) -> None:
    """A kernel module imports kernel modules of strictly lower rank only (so no cycles)."""
    if path.stem == "__init__":
        assert not imports(path)
        return
    for target in imports(path):
        if target.startswith("psaspm.kernel."):
            there = target.split(".")[2]
            assert KERNEL[there] < KERNEL[path.stem], f"kernel.{path.stem} imports {target}"


def test_door_imports_only_the_api_surface() -> None:
    """kernel.door, between partition code and the SPM, imports only the API's typed
    surface and plain data: nothing that acts (no SPM, backend or interface)."""
    door = PACKAGE / "kernel" / "door.py"
    allowed = {"api", "_generated_api", "objects", "memory"}
    assert {t.split(".")[2] for t in imports(door)} <= allowed


def test_backends_never_import_the_spm() -> None:
    """Backends and the interrupt handler reach the SPM only through the port protocol."""
    for name in ("sfn", "ipc", "scheduler", "interrupts"):
        targets = imports(PACKAGE / "kernel" / f"{name}.py")
        assert "psaspm.kernel.spm" not in targets, name


def test_psa_reaches_the_spm_only_through_the_door() -> None:
    """psaspm.psa uses from the kernel only the door and the plain data objects."""
    kernel = {t for t in imports(PACKAGE / "psa.py") if layer_of(t) == "kernel"}
    assert kernel <= {"psaspm.kernel.door", "psaspm.kernel.objects"}
