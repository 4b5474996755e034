"""psaspm's own PSA headers: FF-M 1.1's values, types and signatures, proven by compiling.

The strongest evidence is Arm's conformance suite: its partitions and test
sources (unmodified, compiled from the shared tree) assign every PSA function
to a function pointer of the signature FF-M gives, so a wrong signature is a
compile error under ``-Werror=incompatible-pointer-types``.
"""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import pytest

from psaspm import consts
from psaspm.cbuild import INCLUDE_DIR
from psaspm.manifest import load_system_manifest
from psaspm.manifest.headers import write_headers
from psaspm.system import import_python_file

from .conftest import compile_check, gcc

REPO = Path(__file__).resolve().parents[2]

HEADERS = ("psa/client.h", "psa/service.h", "psa/error.h", "psa/lifecycle.h", "psaspm/hal.h")

# psaspm.consts names that are not macros of TF-M's headers.
NOT_IN_HEADERS = {
    "PSA_CONNECTION_REFUSED",  # FF-M 1.0 spellings, gone from TF-M's client.h
    "PSA_CONNECTION_ACCEPTED",
    "PSA_MAX_IOVEC_LEN",
}

# The options psa-arch-tests' CMake gives every file of the IPC suite.
ARCH_DEFINES = (
    "-DPSA_CMAKE_BUILD",
    "-DIPC",
    "-DVERBOSITY=3",
    "-DPLATFORM_PSA_ISOLATION_LEVEL=1",
    "-Dtgt_ff_tfm_an521",
)
STRICT = ("-Wall", "-Werror=incompatible-pointer-types", "-Werror=implicit-function-declaration")


def _generated(tmp_path: Path, manifests: list[Path], paths: dict[str, str] | None = None) -> Path:
    out = tmp_path / "generated"
    system = load_system_manifest(manifests, paths=paths)
    write_headers(system, out)
    return out


def _arch_includes(arch_tests: Path, build: Path) -> list[Path]:
    api = arch_tests / "api-tests"
    return [
        build,
        api / "val" / "common",
        api / "val" / "spe",
        api / "platform" / "targets" / "common" / "nspe",
        api / "platform" / "targets" / "tgt_ff_tfm_an521" / "nspe",
        arch_tests / "val_common" / "inc",
    ]


def _test_lists(build: Path, names: list[str]) -> None:
    """The .inc files psa-arch-tests' tools/scripts/gen_tests_list.py writes, for ``names``."""
    build.mkdir(parents=True, exist_ok=True)
    (build / "client_tests_list_declare.inc").write_text(
        "".join(f"extern client_test_t {n}_client_tests_list[];\n" for n in names)
    )
    (build / "server_tests_list_declare.inc").write_text(
        "".join(f"extern server_test_t {n}_server_tests_list[];\n" for n in names)
    )
    (build / "client_tests_list.inc").write_text(
        "".join(f"\t{n}_client_tests_list,\n" for n in names)
    )
    (build / "server_tests_list.inc").write_text(
        "".join(f"\t{n}_server_tests_list,\n" for n in names)
    )
    (build / "test_entry_fn_declare_list.inc").write_text(
        "".join(
            f"void test_entry_{n[5:]}(val_api_t *val_api, psa_api_t *psa_api);\n" for n in names
        )
    )


def _secure_sources(arch_tests: Path) -> list[Path]:
    api = arch_tests / "api-tests"
    sources = sorted((api / "ff" / "partition").glob("*.c"))
    for folder in sorted((api / "ff" / "ipc").glob("test_i*")):
        sources += [folder / f"{folder.name}.c", folder / f"test_supp_{folder.name[5:]}.c"]
    return sources


def _compile_all(
    sources: list[Path], includes: list[Path], *defines: str
) -> list[tuple[Path, str]]:
    failures = []
    for source in sources:
        done = compile_check(source, includes, *ARCH_DEFINES, *defines, *STRICT)
        if done.returncode != 0:
            failures.append((source, done.stderr[:2000]))
    return failures


def test_arch_test_sources_compile_against_psaspm_headers(
    tmp_path: Path, ff_list: Path, arch_tests: Path
) -> None:
    """Every FF IPC partition and secure test source of psa-arch-tests compiles unmodified."""
    generated = _generated(
        tmp_path,
        [ff_list],
        paths={"PSA_ARCH_TESTS_PATH": str(arch_tests)},
    )
    sources = _secure_sources(arch_tests)
    assert len(sources) > 150  # 3 partitions + 2 sources for each of the 90 tests
    build = tmp_path / "build"
    _test_lists(build, [s.parent.name for s in sources if s.name.startswith("test_i")])
    includes = [generated, *_arch_includes(arch_tests, build)]
    failures = _compile_all(sources, includes, "-DSPEC_VERSION=10", "-DSTATELESS_ROT=0")
    assert not failures, "\n".join(f"{s}:\n{err}" for s, err in failures)


def test_arch_test_ns_sources_compile_against_psaspm_headers(
    tmp_path: Path, ff_list: Path, arch_tests: Path
) -> None:
    """The suite's non-secure side (val_interfaces.c and each test's NS build) compiles too."""
    generated = _generated(tmp_path, [ff_list], paths={"PSA_ARCH_TESTS_PATH": str(arch_tests)})
    api = arch_tests / "api-tests"
    folders = sorted((api / "ff" / "ipc").glob("test_i*"))
    sources = [api / "val" / "nspe" / "val_interfaces.c"]
    for folder in folders:
        number = folder.name[5:]
        sources += [folder / f"{folder.name}.c", folder / f"test_entry_{number}.c"]
    build = tmp_path / "build"
    _test_lists(build, [f.name for f in folders])
    includes = [generated, *_arch_includes(arch_tests, build), api / "val" / "nspe"]
    includes.remove(api / "val" / "spe")
    failures = _compile_all(
        sources, includes, "-DNONSECURE_TEST_BUILD", "-DSPEC_VERSION=10", "-DSTATELESS_ROT=0"
    )
    assert not failures, "\n".join(f"{s}:\n{err}" for s, err in failures)


def _ff11_manifests(arch_tests: Path, out: Path) -> list[Path]:
    """The suite's manifests with its README's FF-M 1.1 edits (stateless services), made by
    the arch-test runner's own ff11_manifest."""
    runner = import_python_file(REPO / "arch_tests" / "run.py", "arch_runner", "run")
    out.mkdir()
    manifests = arch_tests / "api-tests" / "platform" / "manifests"
    return [
        runner.ff11_manifest(manifests / f"{name}_partition_psa.json", out)
        for name in ("driver", "server", "client")
    ]


def test_arch_test_sources_compile_in_the_stateless_build(tmp_path: Path, arch_tests: Path) -> None:
    """With FF-M 1.1 manifests the suite's STATELESS_ROT=1 sources find every <SVC>_HANDLE."""
    manifests = _ff11_manifests(arch_tests, tmp_path / "manifests")
    generated = _generated(tmp_path, manifests)
    sources = _secure_sources(arch_tests)
    build = tmp_path / "build"
    _test_lists(build, [s.parent.name for s in sources if s.name.startswith("test_i")])
    includes = [generated, *_arch_includes(arch_tests, build)]
    failures = _compile_all(sources, includes, "-DSPEC_VERSION=11", "-DSTATELESS_ROT=1")
    assert not failures, "\n".join(f"{s}:\n{err}" for s, err in failures)


def _run_c(tmp_path: Path, body: str, generated: Path) -> str:
    source = tmp_path / "probe.c"
    source.write_text(body)
    exe = tmp_path / "probe"
    argv = [gcc(), f"-I{INCLUDE_DIR}", f"-I{generated}", "-Wall", "-Werror", str(source)]
    done = subprocess.run([*argv, "-o", str(exe)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout


def _any_generated(tmp_path: Path) -> Path:
    examples = Path(__file__).resolve().parents[2] / "examples"
    return _generated(tmp_path, [examples / "echo" / "echo_service.yaml"])


def test_header_values_equal_psaspm_constants(tmp_path: Path) -> None:
    """Every PSA constant of psaspm.consts has the same value as the macro in psaspm's headers."""
    names = [n for n in vars(consts) if n.startswith("PSA_") and n not in NOT_IN_HEADERS]
    assert {"PSA_SUCCESS", "PSA_IPC_DISCONNECT", "PSA_LIFECYCLE_SECURED"} <= set(names)
    lines = [
        "#include <stdio.h>",
        '#include "psa/service.h"',
        '#include "psa/lifecycle.h"',
        "int main(void) {",
        *(f'    printf("{n} %lld\\n", (long long)({n}));' for n in names),
        "    return 0;",
        "}",
    ]
    output = _run_c(tmp_path, "\n".join(lines) + "\n", _any_generated(tmp_path))
    values = dict(line.split() for line in output.splitlines())
    assert {n: int(values[n]) for n in names} == {n: getattr(consts, n) for n in names}


def test_psa_types_have_tf_m_layout_on_the_host(tmp_path: Path) -> None:
    """psa_msg_t and the vectors have FF-M's members in order, with the host's natural ABI."""
    body = r"""
#include <stddef.h>
#include <stdio.h>
#include "psa/service.h"
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu %zu\n", offsetof(psa_msg_t, type),
           offsetof(psa_msg_t, handle), offsetof(psa_msg_t, client_id),
           offsetof(psa_msg_t, rhandle), offsetof(psa_msg_t, in_size),
           offsetof(psa_msg_t, out_size), sizeof(psa_msg_t));
    printf("%zu %zu %zu\n", sizeof(psa_invec), offsetof(psa_outvec, len), sizeof(psa_outvec));
    printf("%zu %zu %zu %zu\n", sizeof(psa_status_t), sizeof(psa_handle_t),
           sizeof(psa_signal_t), sizeof(psa_flih_result_t));
    return 0;
}
"""
    lines = _run_c(tmp_path, body, _any_generated(tmp_path)).split("\n")
    p = ctypes.sizeof(ctypes.c_void_p)  # this Python's ABI is the host's
    msg = [0, 4, 8, 16 if p == 8 else 12, 24 if p == 8 else 16]
    msg += [msg[4] + 4 * p, msg[4] + 8 * p]
    assert [int(x) for x in lines[0].split()] == msg
    assert [int(x) for x in lines[1].split()] == [2 * p, p, 2 * p]
    assert [int(x) for x in lines[2].split()] == [4, 4, 4, 4]


def test_mm_iovec_functions_follow_the_framework_feature(tmp_path: Path) -> None:
    """psa_map_invec and friends are declared only when PSA_FRAMEWORK_HAS_MM_IOVEC is 1."""
    use = tmp_path / "use_map.c"
    use.write_text(
        '#include "psa/service.h"\n'
        "const void *f(psa_handle_t h) { psa_unmap_outvec(h, 0, 0); return psa_map_invec(h, 0); }\n"
    )
    examples = Path(__file__).resolve().parents[2] / "examples"
    system = load_system_manifest(examples / "echo" / "echo_service.yaml")
    on, off = tmp_path / "on", tmp_path / "off"
    write_headers(system, on, {"PSA_FRAMEWORK_HAS_MM_IOVEC": "1"})
    write_headers(system, off, {"PSA_FRAMEWORK_HAS_MM_IOVEC": "OFF"})
    error = "-Werror=implicit-function-declaration"
    assert compile_check(use, [on], error).returncode == 0
    failed = compile_check(use, [off], error)
    assert failed.returncode != 0 and "psa_map_invec" in failed.stderr


@pytest.mark.parametrize("header", HEADERS)
def test_each_header_compiles_alone_in_c_and_cxx(tmp_path: Path, header: str) -> None:
    """Each psaspm header compiles on its own, twice included, as C and as C++."""
    generated = _any_generated(tmp_path)
    for cxx in (False, True):
        source = tmp_path / ("alone.cc" if cxx else "alone.c")
        source.write_text(f'#include "{header}"\n#include "{header}"\nint x;\n')
        done = compile_check(source, [generated], "-Wall", "-Werror", cxx=cxx)
        assert done.returncode == 0, done.stderr


def test_psa_panic_is_noreturn(tmp_path: Path) -> None:
    """psa_panic is declared noreturn: a function ending in it needs no return statement."""
    source = tmp_path / "panic.c"
    source.write_text('#include "psa/service.h"\nint f(void) { psa_panic(); }\n')
    done = compile_check(source, [_any_generated(tmp_path)], "-Werror=return-type")
    assert done.returncode == 0, done.stderr
