"""Build Arm's psa-arch-tests FF IPC suite for psaspm's host target and run it.

    python arch_tests/run.py [--stateless] [--isolation N] [--suite DIR] [--build DIR]

The suite's sources (``--suite``, default ``../shared/psa-arch-tests`` beside
the checkout, or ``$PSA_ARCH_TESTS_PATH``) are read, never written.  This
script does what the suite's CMake does for a target (``arch_tests/target``,
the host target's PAL, ``pal_config.h`` and ``target.cmake``, whose source
lists this script reads):

- writes the test lists with the suite's own ``tools/scripts/gen_tests_list.py``
  from its ``testsuite.db`` (or ``stateless_rot_testsuite.db``), leaving out the
  tests that need a hardware MPU fault (i068-i087);
- for the stateless build, writes FF-M 1.1 copies of the suite's manifests
  with the edits its README describes;
- compiles the three partitions (client, server, driver) and the non-secure
  program (VAL, the tests' non-secure halves, the target's PAL) with the
  suite's defines, each file with the flags its CMake library gives it, and
  links each into a shared object (rebuilt only when a source or a header
  changed);
- maps the target's memory (NVMEM from a file that starts as 0xFF, the MMIO
  regions of the isolation tests) at the addresses ``pal_config.h`` names;
- loads the system with psaspm (IPC backend, the level asked), boots it and
  runs the non-secure program; a panic reboots the system (``reset()``, NVMEM
  kept) and the program runs again, resuming where the suite's boot state says,
  until ``pal_terminate_simulation``.

Prints ``== psa-arch-tests ff/ipc <connection-based|stateless> ipc L<n>``, then
the suite's output.  Exit status 0 when the run ended (whatever the results:
the report block says them), 1 when it did not.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import hashlib
import json
import mmap
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psaspm
from psaspm import crt
from psaspm.cbuild import INCLUDE_DIR, system_headers_dir
from psaspm.errors import Panic
from psaspm.kernel.door import DOOR
from psaspm.manifest import load_system_manifest
from psaspm.manifest.model import SystemManifest
from psaspm.ns_c import CNsProgram

HERE = Path(__file__).resolve().parent
TARGET = HERE / "target"
ROOT = HERE.parent
LEFT_OUT = range(68, 88)  # i068-i087: they need a hardware MPU fault
MAX_REBOOTS = 400
WATCHDOG_SECONDS = 5.0

# pal_config.h's memory (base, size): NVMEM, and the isolation tests' regions.
NVMEM = (0x102FFC00, 0x400)
MMIO = ((0x00300F00, 0x20), (0x3801FC00, 0x101), (0x3801FE00, 0x101))
PARTITIONS = (("client", 5000), ("server", 5001), ("driver", 5002))
# The manifests' MMIO region names for the memory above (pal_config.h's addresses).
REGIONS = {
    "FF_TEST_NVMEM_REGION": NVMEM,
    "FF_TEST_SERVER_PARTITION_MMIO": MMIO[1],
    "FF_TEST_DRIVER_PARTITION_MMIO": MMIO[2],
}


def default_suite() -> Path:
    env = os.environ.get("PSA_ARCH_TESTS_PATH")
    return Path(env) if env else ROOT.parent / "shared" / "psa-arch-tests"


@dataclass
class Unit:
    """A shared object: its sources, each compiled with the unit's flags."""

    name: str
    groups: list[tuple[list[Path], list[str]]] = field(default_factory=list)


def _page(base: int, size: int) -> tuple[int, int]:
    start = base & ~(mmap.PAGESIZE - 1)
    end = (base + size + mmap.PAGESIZE - 1) & ~(mmap.PAGESIZE - 1)
    return start, end - start


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
)
MAP_FIXED_NOREPLACE = 0x100000


def map_memory(nvmem_file: Path) -> None:
    """Map NVMEM (shared, from ``nvmem_file``, 0xFF at first) and the MMIO regions."""
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    start, length = _page(*NVMEM)
    nvmem_file.write_bytes(b"\xff" * length)
    fd = os.open(nvmem_file, os.O_RDWR)
    try:
        got = _libc.mmap(start, length, prot, mmap.MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0)
    finally:
        os.close(fd)
    if got != start:
        raise OSError(ctypes.get_errno(), f"cannot map NVMEM at {start:#x}")
    done: set[int] = set()
    for base, size in MMIO:
        start, length = _page(base, size)
        if start in done:
            continue
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_FIXED_NOREPLACE
        got = _libc.mmap(start, length, prot, flags, -1, 0)
        if got != start:
            raise OSError(ctypes.get_errno(), f"cannot map the MMIO region at {start:#x}")
        done.add(start)


def ff11_manifest(source: Path, out: Path) -> Path:
    """The suite's FF-M 1.0 manifest with its README's FF-M 1.1 edits (stateless services)."""
    manifest = json.loads(source.read_text())
    manifest["psa_framework_version"] = 1.1
    manifest["model"] = "IPC"
    for service in manifest.get("services", []):
        service["connection_based"] = False
    for irq in manifest.get("irqs", []):
        irq["name"] = irq.pop("signal")
    copy = out / source.name
    text = json.dumps(manifest, indent=2) + "\n"
    if not copy.is_file() or copy.read_text() != text:
        copy.write_text(text)
    return copy


def manifest_list(suite: Path, build: Path, stateless: bool) -> Path:
    api = suite / "api-tests"
    entries = []
    for name, pid in PARTITIONS:
        source = api / "platform" / "manifests" / f"{name}_partition_psa.json"
        manifest = ff11_manifest(source, build) if stateless else source
        entries.append({"manifest": str(manifest), "pid": pid})
    listing = build / "manifest_list.yaml"
    text = json.dumps({"type": "manifest_list", "manifest_list": entries}, indent=2) + "\n"
    if not listing.is_file() or listing.read_text() != text:
        listing.write_text(text)
    return listing


def test_lists(suite: Path, build: Path, stateless: bool) -> list[str]:
    """Run the suite's list generator on its database minus the left-out tests."""
    api = suite / "api-tests"
    db_name = "stateless_rot_testsuite.db" if stateless else "testsuite.db"
    lines = (api / "ff" / "ipc" / db_name).read_text().splitlines(keepends=True)
    kept = [
        line for line in lines if not (line.startswith("test_i") and int(line[6:9]) in LEFT_OUT)
    ]
    outputs = [
        "testlist.txt",
        "test_entry_list.inc",
        "test_entry_fn_declare_list.inc",
        "client_tests_list_declare.inc",
        "client_tests_list.inc",
        "server_tests_list_declare.inc",
        "server_tests_list.inc",
    ]
    # Generated apart, then copied where changed: an unchanged list keeps its mtime,
    # so the sources that include it are not rebuilt.
    fresh = build / "lists.new"
    fresh.mkdir(exist_ok=True)
    db = fresh / db_name
    db.write_text("".join(kept))
    argv = [sys.executable, str(api / "tools" / "scripts" / "gen_tests_list.py"), "ipc"]
    argv += [str(db), "1", "ALL", *(str(fresh / o) for o in outputs), "None", "None"]
    subprocess.run(argv, check=True, capture_output=True, text=True)
    for name in outputs:
        text = (fresh / name).read_text()
        target = build / name
        if not target.is_file() or target.read_text() != text:
            target.write_text(text)
    return (build / "testlist.txt").read_text().split()


def target_sources(api: Path) -> dict[str, list[Path]]:
    """The source lists of the target's target.cmake (``list(APPEND NAME files...)``)."""
    text = re.sub(r"#.*", "", (TARGET / "target.cmake").read_text())
    lists: dict[str, list[Path]] = {}
    for name, body in re.findall(r"list\s*\(\s*APPEND\s+(\w+)([^)]*)\)", text):
        for item in body.split():
            path = item.replace("${PSA_ROOT_DIR}", str(api))
            path = path.replace("${PSA_TARGET_DIR}", str(TARGET))
            if "${" in path:
                raise SystemExit(f"{TARGET / 'target.cmake'}: unknown variable in {item}")
            lists.setdefault(name, []).append(Path(path))
    return lists


def units(
    suite: Path,
    build: Path,
    generated: Path,
    tests: list[str],
    defines: list[str],
    heaps: dict[str, int],
) -> list[Unit]:
    api = suite / "api-tests"
    ipc = api / "ff" / "ipc"
    common = [
        f"-I{INCLUDE_DIR}",
        f"-I{generated}",
        f"-I{build}",
        f"-I{api / 'val' / 'common'}",
    ]
    tail = [
        f"-I{api / 'platform' / 'targets' / 'common' / 'nspe'}",
        f"-I{api / 'platform' / 'targets' / 'common' / 'nspe' / 'crypto'}",
        f"-I{TARGET / 'nspe'}",
        f"-I{suite / 'val_common' / 'inc'}",
        f"-I{api / 'ff' / 'partition'}",
    ]
    spe = [*common, f"-I{api / 'val' / 'spe'}", *tail, *defines]
    nspe = [*common, f"-I{api / 'val' / 'nspe'}", f"-I{api / 'val' / 'spe'}", *tail, *defines]
    nspe += [f"-I{ipc / t}" for t in tests]
    val_ns = [
        api / "val" / "nspe" / f"val_{n}.c"
        for n in (
            "platform",
            "entry",
            "dispatcher",
            "framework",
            "crypto",
            "interfaces",
            "peripherals",
            "attestation",
            "storage",
        )
    ]
    val_common = sorted((suite / "val_common" / "src").glob("*.c"))
    pal = target_sources(api)
    ns_pal = pal["PAL_SRC_C_NSPE"]
    ns_tests = [ipc / t / f"test_entry_{t[5:]}.c" for t in tests] + [
        ipc / t / f"{t}.c" for t in tests
    ]
    client = Unit("client", [([api / "ff" / "partition" / "client_partition.c"], spe)])
    client.groups[0][0].extend(ipc / t / f"{t}.c" for t in tests)
    client.groups[0] = (client.groups[0][0], [*spe, f"-I{api / 'val' / 'nspe'}"])
    server = Unit("server", [([api / "ff" / "partition" / "server_partition.c"], spe)])
    server.groups[0][0].extend(ipc / t / f"test_supp_{t[5:]}.c" for t in tests)
    driver_sources = [
        api / "val" / "spe" / "val_driver_service_apis.c",
        api / "ff" / "partition" / "driver_partition.c",
        *pal["PAL_SRC_C_DRIVER_SP"],
        # the VAL's formatter and memory helpers (its peripherals file is the NS side's)
        *(s for s in val_common if s.name != "val_common_peripherals.c"),
    ]
    driver = Unit("driver", [(driver_sources, spe)])
    ns = Unit(
        "ns",
        [
            ([*val_ns, *ns_pal], [*nspe, "-DVAL_NSPE_BUILD"]),
            (val_common, [*nspe, "-DVAL_NSPE_BUILD"]),
            (ns_tests, [*nspe, "-DNONSECURE_TEST_BUILD", "-DCC_OPTIONS", "-DAS_OPTIONS"]),
        ],
    )
    for unit in (client, server, driver):
        size = heaps[f"{unit.name.upper()}_PARTITION"]
        heap = pal["PAL_SRC_C_PARTITION_HEAP"]
        unit.groups.append((heap, [*spe, f"-DPSASPM_ARCH_HEAP_SIZE={size}"]))
    return [client, server, driver, ns]


def _cc() -> list[str]:
    return shlex.split(os.environ.get("CC", "cc"))


def _stale(obj: Path, depfile: Path, command: str, record: Path) -> bool:
    if not obj.is_file() or not depfile.is_file() or not record.is_file():
        return True
    if record.read_text() != command:
        return True
    built = obj.stat().st_mtime_ns
    text = depfile.read_text().replace("\\\n", " ")
    deps = text.split(":", 1)[1].split() if ":" in text else []
    try:
        return any(Path(d).stat().st_mtime_ns > built for d in deps)
    except OSError:
        return True


def _compile(source: Path, obj: Path, flags: list[str]) -> str | None:
    depfile = obj.with_suffix(".d")
    record = obj.with_suffix(".cmd")
    argv = [*_cc(), "-fPIC", "-g", "-O1", "-c", str(source), "-o", str(obj), *flags]
    argv += ["-MD", "-MF", str(depfile)]
    command = "\0".join(argv)
    if not _stale(obj, depfile, command, record):
        return None
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"compiling {source} failed:\n{done.stderr}"
    record.write_text(command)
    return None


def build_unit(unit: Unit, out: Path, jobs: int) -> Path:
    folder = out / unit.name
    folder.mkdir(parents=True, exist_ok=True)
    work: list[tuple[Path, Path, list[str]]] = []
    for sources, flags in unit.groups:
        for source in sources:
            tag = hashlib.sha256(str(source).encode()).hexdigest()[:8]
            work.append((source, folder / f"{source.stem}-{tag}.o", flags))
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        errors = [e for e in pool.map(lambda w: _compile(*w), work) if e]
    if errors:
        raise SystemExit("\n".join(errors))
    so = out / f"{unit.name}.so"
    objects = [str(w[1]) for w in work]
    newest = max(Path(o).stat().st_mtime_ns for o in objects)
    listing = so.with_suffix(".objects")
    if (
        not so.is_file()
        or so.stat().st_mtime_ns < newest
        or listing.read_text() != "\n".join(objects)
    ):
        argv = [*_cc(), "-shared", "-o", str(so), *objects]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"linking {so} failed:\n{done.stderr}")
        listing.write_text("\n".join(objects))
    return so


def heap_sizes(manifest: SystemManifest) -> dict[str, int]:
    """Each partition's manifest heap_size (0 when it gives none)."""
    sizes = {}
    for part in manifest.partitions:
        size = part.heap_size
        sizes[part.name] = size if isinstance(size, int) else int(size, 0)
    return sizes


def build(suite: Path, out: Path, stateless: bool, isolation: int) -> tuple[Path, dict[str, Path]]:
    """Build one configuration; returns the manifest list and the shared objects."""
    out.mkdir(parents=True, exist_ok=True)
    listing = manifest_list(suite, out, stateless)
    tests = test_lists(suite, out, stateless)
    manifest = load_system_manifest(listing, backend="ipc", isolation=isolation)
    generated = system_headers_dir(manifest)
    defines = [
        "-DPSA_CMAKE_BUILD",
        "-DIPC",
        "-DVERBOSITY=3",
        f"-DPLATFORM_PSA_ISOLATION_LEVEL={isolation}",
        "-Dtgt_ff_psaspm_host",
        "-DSP_HEAP_MEM_SUPP",
        "-DSTATIC_ASSERT_CHECKS",
        "-DWATCHDOG_AVAILABLE",
        "-DSPEC_VERSION=11" if stateless else "-DSPEC_VERSION=10",
        "-DSTATELESS_ROT=1" if stateless else "-DSTATELESS_ROT=0",
    ]
    jobs = max(1, min(4, os.cpu_count() or 1))
    objects = {
        u.name: build_unit(u, out / f"L{isolation}", jobs)
        for u in units(suite, out, generated, tests, defines, heap_sizes(manifest))
    }
    return listing, objects


class Owners:
    """Who may use the target's memory, as the isolation rules say: the partition whose
    manifest names the region owns it; non-secure code may use none of it; at level 2
    an Application RoT partition may not use PSA RoT memory; at level 3 a partition may
    use only its own.  psaspm's C runtime asks for each pointer it reads or writes."""

    def __init__(self, system: psaspm.System, isolation: int) -> None:
        self.system = system
        self.isolation = isolation
        self.kinds: dict[str, str] = {}
        self.spans: list[tuple[int, int, str]] = []
        for part in system.manifest.partitions:
            self.kinds[part.name] = part.type.value
            for region in part.mmio_regions:
                span = REGIONS.get(region.name or "")
                if span is not None:
                    self.spans.append((span[0], span[0] + span[1], part.name))

    def __call__(self, addr: int, size: int) -> str | None:
        for start, end, owner in self.spans:
            if addr < end and addr + size > start:
                why = self._why(owner)
                if why is not None:
                    return why
        return None

    def _why(self, owner: str) -> str | None:
        if DOOR.iface.name == "ns":
            return f"it is {owner}'s memory (secure)"
        caller = self.system.watch_running()
        if caller == owner or self.isolation == 1:
            return None
        if self.isolation == 3:
            return f"it is {owner}'s memory (isolation level 3)"
        if self.kinds.get(caller) == "APPLICATION-ROT" and self.kinds.get(owner) == "PSA-ROT":
            return f"it is {owner}'s memory (PSA RoT; isolation level 2)"
        return None


def run(listing: Path, objects: dict[str, Path], isolation: int, nvmem_file: Path) -> bool:
    """Boot, run the NS program, reboot on every panic; whether the run ended."""
    map_memory(nvmem_file)
    code = {
        "CLIENT_PARTITION": str(objects["client"]),
        "SERVER_PARTITION": str(objects["server"]),
        "DRIVER_PARTITION": str(objects["driver"]),
    }
    system = psaspm.load(
        listing, backend="ipc", isolation=isolation, code=code, watchdog=WATCHDOG_SECONDS
    )
    crt.set_memory_guard(Owners(system, isolation))
    program = CNsProgram(str(objects["ns"]))
    ns = system.ns_client()
    system.boot()
    for _ in range(MAX_REBOOTS):
        try:
            program(ns, system)
        except Panic as exc:
            record = exc.record
            sys.stdout.flush()
            print(f"\n[psaspm] panic: {record.partition} in {record.api}: {record.reason}; reboot")
            sys.stdout.flush()
            system.reset()
            continue
        return True
    print(f"\n[psaspm] more than {MAX_REBOOTS} reboots: the run is stopped")
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stateless", action="store_true", help="STATELESS_ROT_TESTS=1 build")
    parser.add_argument("--isolation", type=int, default=1, choices=(1, 2, 3))
    parser.add_argument("--suite", type=Path, default=default_suite())
    parser.add_argument("--build", type=Path, default=ROOT / "build" / "arch-tests")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args(argv)
    kind = "stateless" if args.stateless else "connection-based"
    out = args.build.resolve() / kind
    listing, objects = build(args.suite.resolve(), out, args.stateless, args.isolation)
    if args.build_only:
        return 0
    print(f"== psa-arch-tests ff/ipc {kind} ipc L{args.isolation}", flush=True)
    print(
        "[psaspm host target] tests i068-i087 are left out: they need a hardware MPU fault",
        flush=True,
    )
    ok = run(listing, objects, args.isolation, out / f"L{args.isolation}" / "nvmem.bin")
    sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
