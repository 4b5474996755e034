"""Building C partition code: shared objects, the content-addressed cache, errors, prebuilt .so."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import shutil
import stat
from pathlib import Path

import pytest

from psaspm import cbuild
from psaspm.cbuild import (
    STATS,
    build_code,
    build_shared_object,
    check_shared_object,
    system_headers_dir,
)
from psaspm.errors import ConfigError
from psaspm.manifest import load_system_manifest

from .conftest import gcc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _adder(tmp_path: Path, header_value: int = 1) -> tuple[Path, Path]:
    """A source that includes a local header and a PSA header; returns (source, header)."""
    header = _write(tmp_path / "inc" / "bonus.h", f"#define BONUS {header_value}\n")
    source = _write(
        tmp_path / "adder.c",
        '#include "bonus.h"\n#include "psa/client.h"\n'
        "int add(int a, int b) { return a + b + BONUS; }\n"
        "unsigned framework(void) { return PSA_FRAMEWORK_VERSION; }\n",
    )
    return source, header


def _build(tmp_path: Path, *sources: Path) -> Path:
    return build_shared_object(
        sources, label="ADDER", include_dirs=[], cflags=[f"-I{tmp_path / 'inc'}"]
    )


def _call_add(so: Path) -> int:
    library = ctypes.CDLL(str(so))
    return int(library.add(2, 3))


def test_builds_a_loadable_shared_object(cache: Path, tmp_path: Path) -> None:
    """Sources become a shared object under $PSASPM_CACHE, built with psaspm's PSA headers."""
    source, _ = _adder(tmp_path)
    so = _build(tmp_path, source)
    assert so.is_relative_to(cache)
    assert check_shared_object(so, label="ADDER") == so
    assert _call_add(so) == 6
    assert ctypes.CDLL(str(so)).framework() == 0x0101


def test_second_build_is_a_cache_hit(cache: Path, tmp_path: Path) -> None:
    """The same sources, headers and flags reuse the cached object without compiling."""
    source, _ = _adder(tmp_path)
    first = _build(tmp_path, source)
    mtime = first.stat().st_mtime_ns
    compiles, hits = STATS.compiles, STATS.cache_hits
    second = _build(tmp_path, source)
    assert second == first
    assert (STATS.compiles, STATS.cache_hits) == (compiles, hits + 1)
    assert second.stat().st_mtime_ns == mtime


def test_a_changed_header_rebuilds(cache: Path, tmp_path: Path) -> None:
    """Editing a header the source includes (found by the compiler's -MD output) rebuilds it."""
    source, header = _adder(tmp_path, header_value=1)
    first = _build(tmp_path, source)
    header.write_text("#define BONUS 10\n")
    compiles = STATS.compiles
    second = _build(tmp_path, source)
    assert STATS.compiles == compiles + 1
    assert second != first
    assert _call_add(second) == 15
    header.write_text("#define BONUS 1\n")  # back to the first bytes: the first object again
    assert _build(tmp_path, source) == first
    assert STATS.compiles == compiles + 1


def test_a_changed_source_or_flag_rebuilds(cache: Path, tmp_path: Path) -> None:
    """A source's bytes and every flag are part of the cache key."""
    source, _ = _adder(tmp_path)
    first = _build(tmp_path, source)
    flagged = build_shared_object(
        [source], label="ADDER", cflags=[f"-I{tmp_path / 'inc'}", "-DUNUSED=1"]
    )
    assert flagged != first
    source.write_text(source.read_text().replace("a + b", "a * b"))
    changed = _build(tmp_path, source)
    assert changed not in (first, flagged)
    assert _call_add(changed) == 7


def test_configuration_headers_are_part_of_the_key(cache: Path, tmp_path: Path) -> None:
    """Each configuration's generated headers live in their own folder, and builds follow them."""
    echo = EXAMPLES / "echo" / "echo_service.yaml"
    level1 = system_headers_dir(load_system_manifest(echo, isolation=1))
    level2 = system_headers_dir(load_system_manifest(echo, isolation=2))
    assert level1 != level2
    assert level1 == system_headers_dir(load_system_manifest(echo, isolation=1))
    assert (level1 / "psa_manifest" / "sid.h").is_file()
    source = _write(
        tmp_path / "level.c",
        '#include "psa/service.h"\nint level(void) { return PSA_FRAMEWORK_ISOLATION_LEVEL; }\n',
    )
    built = [
        build_shared_object([source], label="LEVEL", include_dirs=[folder])
        for folder in (level1, level2)
    ]
    assert [ctypes.CDLL(str(so)).level() for so in built] == [1, 2]


def test_compile_error_shows_the_compiler_output(cache: Path, tmp_path: Path) -> None:
    """A compile error is a ConfigError naming the partition, with the compiler's file:line text."""
    source = _write(tmp_path / "broken.c", "int f(void) {\n    return undeclared_thing;\n}\n")
    with pytest.raises(ConfigError) as caught:
        build_shared_object([source], label="TFM_SP_BROKEN")
    message = str(caught.value)
    assert message.startswith("TFM_SP_BROKEN: compiling ")
    assert f"{source}:2:" in message
    assert "undeclared_thing" in message
    assert not list(cache.glob("c/*/*.so"))  # nothing half-built is cached


def test_link_error_shows_the_linker_output(cache: Path, tmp_path: Path) -> None:
    """Two sources defining one symbol fail to link: a ConfigError with the linker's message."""
    one = _write(tmp_path / "one.c", "int twice(void) { return 1; }\n")
    two = _write(tmp_path / "two.c", "int twice(void) { return 2; }\n")
    with pytest.raises(ConfigError, match=r"(?s)TFM_SP_LINK: linking one\.c, two\.c failed.*twice"):
        build_shared_object([one, two], label="TFM_SP_LINK")


def test_several_sources_and_cxx_link_into_one_object(cache: Path, tmp_path: Path) -> None:
    """C and C++ sources of one partition link into one object (C++ with $CXX)."""
    c_part = _write(
        tmp_path / "part.c", "int helper(int x);\nint add(int a, int b) { return helper(a) + b; }\n"
    )
    cxx_part = _write(
        tmp_path / "helper.cpp",
        '#include <stdexcept>\nextern "C" int helper(int x) {\n'
        '    try { if (x > 0) throw std::runtime_error("x"); } catch (const std::exception &) { return x * 10; }\n'
        "    return x;\n}\n",
    )
    so = build_shared_object([c_part, cxx_part], label="MIXED")
    assert _call_add(so) == 23


def test_cc_environment_variable_is_honoured(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$CC names the compiler: a wrapper script sees every compile and link."""
    log = tmp_path / "cc.log"
    wrapper = _write(
        tmp_path / "bin" / "my-cc",
        f'#!/bin/sh\necho "$@" >> {log}\nexec {gcc()} "$@"\n',
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CC", str(wrapper))
    source, _ = _adder(tmp_path)
    so = _build(tmp_path, source)
    assert _call_add(so) == 6
    calls = log.read_text().splitlines()
    assert any(" -c " in f" {line} " and str(source) in line for line in calls)
    assert any("-shared" in line for line in calls)


def test_a_different_compiler_is_a_different_build(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiler's identity is in the key: switching $CC does not reuse the other's object."""
    source, _ = _adder(tmp_path)
    first = _build(tmp_path, source)
    wrapper = _write(tmp_path / "bin" / "other-cc", f'#!/bin/sh\nexec {gcc()} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CC", str(wrapper))
    assert _build(tmp_path, source) != first


def test_missing_compiler_is_a_clear_error(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A $CC that does not exist is a ConfigError naming it and the partition."""
    monkeypatch.setenv("CC", "no-such-compiler-psaspm")
    source, _ = _adder(tmp_path)
    with pytest.raises(ConfigError, match=r"ADDER: the C compiler 'no-such-compiler-psaspm'"):
        _build(tmp_path, source)


def test_bad_inputs_name_the_file(cache: Path, tmp_path: Path) -> None:
    """A missing source, or a file that is neither source nor .so, is an error naming it."""
    with pytest.raises(ConfigError, match=r"P: C source .*absent\.c not found"):
        build_code([tmp_path / "absent.c"], label="P")
    notes = _write(tmp_path / "notes.txt", "hello")
    with pytest.raises(ConfigError, match=r"P: .*notes\.txt is not a C or C\+\+ source"):
        build_code([notes], label="P")
    with pytest.raises(ConfigError, match="P: no code files given"):
        build_code([], label="P")


def test_prebuilt_shared_object_is_accepted_as_is(cache: Path, tmp_path: Path) -> None:
    """A prebuilt .so for this machine is used where it is, without compiling."""
    source, _ = _adder(tmp_path)
    built = _build(tmp_path, source)
    prebuilt = tmp_path / "prebuilt" / "libadder.so"
    prebuilt.parent.mkdir()
    shutil.copy(built, prebuilt)
    compiles = STATS.compiles
    assert build_code([prebuilt], label="ADDER") == prebuilt.resolve()
    assert STATS.compiles == compiles
    with pytest.raises(ConfigError, match="used alone"):
        build_code([prebuilt, source], label="ADDER")


def test_bad_shared_objects_are_rejected(cache: Path, tmp_path: Path) -> None:
    """Not ELF, an object file, an executable, or another machine's .so: each a clear error."""
    text = _write(tmp_path / "text.so", "not an ELF file at all, just text\n")
    with pytest.raises(ConfigError, match=r"P: .*text\.so is not an ELF shared object"):
        check_shared_object(text, label="P")
    source = _write(tmp_path / "main.c", "int main(void) { return 0; }\n")
    obj, exe = tmp_path / "main.o", tmp_path / "main"
    # -no-pie: a PIE executable is ET_DYN, as a library is; a plain one is ET_EXEC.
    assert os.system(f"{gcc()} -c {source} -o {obj} && {gcc()} -no-pie {source} -o {exe}") == 0
    with pytest.raises(ConfigError, match=r"main\.o is a relocatable object"):
        check_shared_object(obj, label="P")
    assert _elf_type(exe) == 2
    with pytest.raises(ConfigError, match=r"is an executable"):
        check_shared_object(exe, label="P")
    foreign = tmp_path / "arm.so"
    data = bytearray(_build(tmp_path, *_adder(tmp_path)[:1]).read_bytes())
    machine = 0x28 if int.from_bytes(data[18:20], "little") != 0x28 else 0x3E  # EM_ARM or x86-64
    data[18:20] = machine.to_bytes(2, "little")
    foreign.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"P: .*arm\.so is built for ELF machine \d+, not this"):
        check_shared_object(foreign, label="P")
    with pytest.raises(ConfigError, match=r"cannot read shared object"):
        check_shared_object(tmp_path / "missing.so", label="P")


def _elf_type(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:18], "little")


def _build_in_child(args: tuple[str, str, str]) -> str:
    cache_dir, source, include = args
    os.environ["PSASPM_CACHE"] = cache_dir
    return str(build_shared_object([Path(source)], label="RACE", cflags=[f"-I{include}"]))


def test_concurrent_builds_share_a_valid_cache(cache: Path, tmp_path: Path) -> None:
    """Processes building the same code at once all get a valid object; no temporary is left."""
    source, _ = _adder(tmp_path)
    job = (str(cache), str(source), str(tmp_path / "inc"))
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_build_in_child, [job] * 3)
    for result in results:
        assert check_shared_object(result, label="RACE")
        assert _call_add(Path(result)) == 6
    folder = Path(results[0]).parent
    assert not [p for p in folder.iterdir() if p.name.startswith(".build-")]
    assert _build(tmp_path, source) in {Path(r) for r in results}


def test_include_flags_point_at_psaspm_headers() -> None:
    """include_flags() names the packaged include folder that holds every PSA header."""
    assert cbuild.include_flags() == [f"-I{cbuild.INCLUDE_DIR}"]
    names = {p.relative_to(cbuild.INCLUDE_DIR).as_posix() for p in cbuild.INCLUDE_DIR.rglob("*.h")}
    assert names == {
        "psa/client.h",
        "psa/error.h",
        "psa/lifecycle.h",
        "psa/service.h",
        "psaspm/hal.h",
    }


def test_unwritable_cache_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A $PSASPM_CACHE that cannot be written is a ConfigError naming it, not a traceback."""
    blocker = _write(tmp_path / "not-a-folder", "a file where the cache folder should be\n")
    monkeypatch.setenv("PSASPM_CACHE", str(blocker))
    source, _ = _adder(tmp_path)
    with pytest.raises(ConfigError, match=r"ADDER: cannot write the build cache .*not-a-folder"):
        _build(tmp_path, source)
    system = load_system_manifest(EXAMPLES / "echo" / "echo_service.yaml")
    with pytest.raises(ConfigError, match=r"cannot write generated headers .*not-a-folder"):
        system_headers_dir(system)
