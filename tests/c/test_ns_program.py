"""Non-secure code in C: ``psaspm run SOURCES --ns app.c`` runs its ``int main(void)`` on the
non-secure side, where psa/client.h acts for NS client -1 (contract section 9)."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from psaspm import crt
from psaspm.cli import main

ROOT = Path(__file__).resolve().parents[2]
ECHO_PY = ROOT / "examples" / "echo" / "echo_service.yaml"
ECHO_C = ROOT / "examples" / "echo_c" / "echo_service.yaml"
NS_APP = ROOT / "examples" / "echo_c" / "ns_app.c"


def _program(tmp_path: Path, body: str, name: str = "app.c") -> str:
    path = tmp_path / name
    path.write_text(
        '#include <stdio.h>\n#include "psa/client.h"\n#include "psa/service.h"\n'
        '#include "psa_manifest/sid.h"\n' + body,
        encoding="utf-8",
    )
    return str(path)


@pytest.mark.parametrize("isolation", [1, 2, 3])
@pytest.mark.parametrize("manifest", [ECHO_PY, ECHO_C], ids=["python-echo", "c-echo"])
def test_c_ns_app_calls_the_echo(
    manifest: Path, isolation: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The C echo client connects, calls and closes through psa/client.h; its printf
    output appears as the run's output, and main returning 0 is exit 0."""
    status = main(["run", str(manifest), "--ns", str(NS_APP), "--isolation", str(isolation)])
    out = capsys.readouterr().out
    assert status == 0
    assert "EXAMPLE_ECHO: SID 0xf000, version 1" in out
    assert "psa_call(ECHO) -> 0, out = 'hello, secure world' (19 bytes)" in out
    assert "4 NS calls" in out  # version, connect, call, close


def test_c_ns_output_is_captured_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    """With --json the C program's stdout is part of the document's output, in order."""
    assert main(["run", str(ECHO_PY), "--ns", str(NS_APP), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["output"].startswith("EXAMPLE_ECHO: SID 0xf000, version 1\npsa_call(ECHO)")
    assert document["ns_calls"] == 4


def test_nonzero_main_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A C main returning non-zero makes psaspm run print the value and exit 1."""
    app = _program(tmp_path, "int main(void) { return 3; }\n")
    assert main(["run", str(ECHO_PY), "--ns", app, "-q"]) == 1
    assert "app.c: main() returned 3" in capsys.readouterr().err


def test_partition_api_from_ns_code_fails_the_program(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Non-secure code calling the partition API (psa_wait) fails the run with a message
    that says it is partition API; nothing crashes."""
    app = _program(tmp_path, "int main(void) { psa_wait(1, PSA_BLOCK); return 0; }\n")
    assert main(["run", str(ECHO_PY), "--ns", app, "-q"]) == 1
    assert "psa_wait() called from non-secure code" in capsys.readouterr().err


def test_bad_handle_from_c_ns_code_is_a_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A programmer error by non-secure C code is a status (-129), as for a Python script,
    and the refused call leaves its out-vector's bytes and len as they were."""
    app = _program(
        tmp_path,
        'int main(void) { char out[8] = "XXXXXXX"; psa_outvec ov = {out, 5};\n'
        "  psa_status_t s = psa_call(12345, 0, NULL, 0, &ov, 1);\n"
        '  printf("status %d len %zu out %s\\n", (int)s, ov.len, out);\n'
        "  return s == PSA_ERROR_PROGRAMMER_ERROR ? 0 : 1; }\n",
    )
    assert main(["run", str(ECHO_PY), "--ns", app, "-q"]) == 0
    assert "status -129 len 5 out XXXXXXX" in capsys.readouterr().out


def test_psa_call_in_a_constructor_is_a_clear_error(tmp_path: Path) -> None:
    """A C program whose constructor calls the PSA API, loaded after C partitions have run
    (their greenlets switched away inside a callback), fails with a message naming the
    program and the call; the process does not crash."""
    app = _program(
        tmp_path,
        "static unsigned v;\n"
        "__attribute__((constructor)) static void early(void) { v = psa_framework_version(); }\n"
        'int main(void) { printf("v=%u\\n", v); return 0; }\n',
    )
    result = subprocess.run(
        [sys.executable, "-m", "psaspm", "run", str(ECHO_C), "--ns", app, "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "app.c: loading" in result.stderr
    assert "psa_framework_version() called with no psaspm system running" in result.stderr


def test_bad_pointer_from_c_ns_code_is_a_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A psa_call vector at unmapped memory from non-secure C code returns -129 (TF-M's
    answer to a non-secure caller failing its memory check); the program goes on."""
    app = _program(
        tmp_path,
        "int main(void) {\n"
        "  psa_handle_t h = psa_connect(EXAMPLE_ECHO_SID, 1);\n"
        "  psa_invec in = {(const void *)0x10, 4};\n"
        "  psa_status_t s = psa_call(h, PSA_IPC_CALL, &in, 1, NULL, 0);\n"
        '  printf("status %d\\n", (int)s);\n'
        "  psa_status_t t = psa_call(h, PSA_IPC_CALL, (const psa_invec *)0x10, 1, NULL, 0);\n"
        '  printf("status %d\\n", (int)t);\n'
        "  psa_close(h);\n"
        "  return s == PSA_ERROR_PROGRAMMER_ERROR && t == s ? 0 : 1; }\n",
    )
    assert main(["run", str(ECHO_PY), "--ns", app, "-q"]) == 0
    assert capsys.readouterr().out.count("status -129") == 2


def test_missing_main_and_compile_errors_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A program without main, or one that does not compile, is exit 2 naming the file (the
    compiler's message shown)."""
    no_main = _program(tmp_path, "int helper(void) { return 0; }\n", "nomain.c")
    assert main(["run", str(ECHO_PY), "--ns", no_main, "-q"]) == 2
    assert "has no function main()" in capsys.readouterr().err
    broken = _program(tmp_path, "int main(void) { return undefined_name; }\n", "broken.c")
    assert main(["run", str(ECHO_PY), "--ns", broken, "-q"]) == 2
    err = capsys.readouterr().err
    assert "broken.c" in err and "undefined_name" in err


def test_each_run_starts_with_fresh_globals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """compare --repeat runs main again on a fresh image: its globals start as at load."""
    app = _program(
        tmp_path,
        'static int runs;\nint main(void) { runs++; printf("run %d\\n", runs);'
        " return runs == 1 ? 0 : 1; }\n",
    )
    assert main(["compare", str(ECHO_PY), "--ns", app, "--repeat", "2", "-q"]) == 0


@pytest.fixture
def _secret_guard() -> Iterator[None]:
    """A memory guard refusing memory that starts with b"FORBIDDEN" (removed after)."""

    def guard(addr: int, size: int) -> str | None:
        head = ctypes.string_at(addr, min(size, 9))
        return "it is the test's secret" if head == b"FORBIDDEN"[: len(head)] else None

    crt.set_memory_guard(guard)
    try:
        yield
    finally:
        crt.set_memory_guard(None)


@pytest.mark.usefixtures("_secret_guard")
def test_memory_guard_refuses_what_it_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pointer the installed memory guard refuses fails psa_call's memory check (-129
    for non-secure code) while other memory passes."""
    app = _program(
        tmp_path,
        'static const char secret[16] = "FORBIDDEN";\n'
        'static const char open_[16] = "hello";\n'
        "int main(void) {\n"
        "  psa_handle_t h = psa_connect(EXAMPLE_ECHO_SID, 1);\n"
        "  char out[16];\n"
        "  psa_invec bad = {secret, 9}, good = {open_, 5};\n"
        "  psa_outvec o = {out, sizeof out};\n"
        "  psa_status_t s = psa_call(h, PSA_IPC_CALL, &bad, 1, &o, 1);\n"
        "  psa_status_t t = psa_call(h, PSA_IPC_CALL, &good, 1, &o, 1);\n"
        '  printf("refused %d, allowed %d\\n", (int)s, (int)t);\n'
        "  psa_close(h);\n"
        "  return s == PSA_ERROR_PROGRAMMER_ERROR && t >= 0 ? 0 : 1; }\n",
    )
    assert main(["run", str(ECHO_PY), "--ns", app, "-q"]) == 0
    assert "refused -129, allowed" in capsys.readouterr().out
