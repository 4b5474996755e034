"""The demo system (examples/demo): its services, persistence, and crash-safe storage."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import re
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import psaspm
from psaspm import hal
from psaspm.platform import Timer, load_platform
from psaspm.psa import (
    PSA_ERROR_BAD_STATE,
    PSA_ERROR_DOES_NOT_EXIST,
    PSA_ERROR_INVALID_ARGUMENT,
    PSA_ERROR_NOT_PERMITTED,
    PSA_ERROR_NOT_SUPPORTED,
    PSA_ERROR_STORAGE_FAILURE,
    PSA_SUCCESS,
    psa_panic,
)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"
DEMO_LIST = DEMO / "demo_manifest_list.yaml"
ITS_SET, ITS_GET, ITS_INFO, ITS_REMOVE = 1001, 1002, 1003, 1004


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"psaspm_test_demo_{name}", DEMO / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def flash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "flash" / "its.img"
    monkeypatch.setenv("PSASPM_DEMO_FLASH", str(path))
    return path


@pytest.fixture(params=[1, 2, 3])
def system(request: pytest.FixtureRequest, flash: Path) -> psaspm.System:
    system = psaspm.load(DEMO_LIST, backend="ipc", isolation=request.param)
    system.boot()
    return system


def uid(value: int) -> bytes:
    return struct.pack("<Q", value)


def _get(ns: psaspm.NsClient, handle: int, key: int, size: int = 64) -> tuple[int, bytes]:
    out = bytearray(size)
    status = ns.call(handle, ITS_GET, [uid(key)], [out])
    return status, bytes(out)


def test_ns_app_runs(system: psaspm.System, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's NS app runs cleanly at every isolation level: five ticks reach the FLIH and one
    alarm the SLIH (six interrupts), with no panic."""
    _module("ns_app").main(system.ns_client(), system)
    out = capsys.readouterr().out
    assert "system.tick(8)" in out
    assert "the FLIH counted 5 ticks, the SLIH handled 1 alarm" in out
    stats = system.stats
    assert stats["interrupts"] == 6  # five ticks (FLIH) and one alarm (SLIH)
    assert stats["panics"] == 0 and system.state == "running"


def test_ns_app_repeats_on_one_system(
    system: psaspm.System, capsys: pytest.CaptureFixture[str]
) -> None:
    """psaspm compare --repeat runs main again on the same system: each run is the same."""
    app = _module("ns_app")
    for _ in range(3):
        app.main(system.ns_client(), system)
    out = capsys.readouterr().out
    assert out.count("the FLIH counted 5 ticks, the SLIH handled 1 alarm") == 3
    assert system.stats["interrupts"] == 18


def test_demo_refuses_the_sfn_backend(flash: Path) -> None:
    """The demo cannot load on the SFN backend: the ConfigError names TFM_SP_DEMO_ATTEST among its
    IPC-model partitions."""
    with pytest.raises(psaspm.ConfigError, match="TFM_SP_DEMO_ATTEST"):
        psaspm.load(DEMO_LIST, backend="sfn")


def test_storage_is_per_client_and_persists_across_reset(system: psaspm.System) -> None:
    """ITS gives each client its own uid space, and an entry (size and flags readable by INFO)
    survives resets until REMOVE deletes it."""
    ns = system.ns_client(-1)
    other = system.ns_client(-2)
    its = system.constants["DEMO_ITS_HANDLE"]
    assert ns.call(its, ITS_SET, [uid(5), b"mine"]) == PSA_SUCCESS
    assert _get(other, its, 5)[0] == PSA_ERROR_DOES_NOT_EXIST  # another client's uid space
    system.reset()
    assert _get(ns, its, 5) == (PSA_SUCCESS, b"mine")
    info = bytearray(8)
    assert ns.call(its, ITS_INFO, [uid(5)], [info]) == PSA_SUCCESS
    assert struct.unpack("<II", info) == (4, 0)
    assert ns.call(its, ITS_REMOVE, [uid(5)]) == PSA_SUCCESS
    system.reset()
    assert _get(ns, its, 5)[0] == PSA_ERROR_DOES_NOT_EXIST


def test_write_once(system: psaspm.System) -> None:
    """An ITS entry stored with the write-once flag can be neither overwritten nor removed
    (NOT_PERMITTED) and keeps its first value."""
    ns = system.ns_client()
    its = system.constants["DEMO_ITS_HANDLE"]
    assert ns.call(its, ITS_SET, [uid(9), b"v1", struct.pack("<I", 1)]) == PSA_SUCCESS
    assert ns.call(its, ITS_SET, [uid(9), b"v2"]) == PSA_ERROR_NOT_PERMITTED
    assert ns.call(its, ITS_REMOVE, [uid(9)]) == PSA_ERROR_NOT_PERMITTED
    assert _get(ns, its, 9) == (PSA_SUCCESS, b"v1")


def _tmp_files(flash: Path) -> list[Path]:
    return sorted(flash.parent.glob("*.tmp"))


def test_failed_write_keeps_the_previous_image(
    system: psaspm.System, flash: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error mid-write: the service says STORAGE_FAILURE; flash is as before."""
    ns = system.ns_client()
    its = system.constants["DEMO_ITS_HANDLE"]
    assert ns.call(its, ITS_SET, [uid(1), b"acknowledged"]) == PSA_SUCCESS
    before = flash.read_bytes()

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError("flash controller error")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", broken_replace)
        assert ns.call(its, ITS_SET, [uid(1), b"lost"]) == PSA_ERROR_STORAGE_FAILURE
        assert ns.call(its, ITS_SET, [uid(2), b"lost too"]) == PSA_ERROR_STORAGE_FAILURE
    assert flash.read_bytes() == before and not _tmp_files(flash)
    assert _get(ns, its, 1) == (PSA_SUCCESS, b"acknowledged")  # the running service agrees
    system.reset()
    assert _get(ns, its, 1) == (PSA_SUCCESS, b"acknowledged")
    assert _get(ns, its, 2)[0] == PSA_ERROR_DOES_NOT_EXIST


def test_panic_mid_write_loses_nothing_acknowledged(
    system: psaspm.System, flash: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SPE halts while the new image is half written: after reset every write that
    was acknowledged is readable, and the interrupted one is not there."""
    ns = system.ns_client()
    its = system.constants["DEMO_ITS_HANDLE"]
    for key in range(1, 6):
        assert ns.call(its, ITS_SET, [uid(key), f"value {key}".encode()]) == PSA_SUCCESS
    before = flash.read_bytes()
    calls: list[int] = []

    def panicking_fsync(fd: int) -> None:
        calls.append(fd)
        psa_panic()  # the power fails between writing the temporary file and committing it

    with monkeypatch.context() as patch, pytest.raises(psaspm.Panic) as caught:
        patch.setattr(os, "fsync", panicking_fsync)
        ns.call(its, ITS_SET, [uid(3), b"overwritten?"])
    assert caught.value.record.partition == "TFM_SP_DEMO_ITS"
    assert calls and system.state == "panicked"
    assert flash.read_bytes() == before  # the previous image is intact
    system.reset()
    assert not _tmp_files(flash)
    for key in range(1, 6):
        assert _get(ns, its, key) == (PSA_SUCCESS, f"value {key}".encode())


def test_crash_leftovers_are_cleaned_and_corruption_is_detected(
    flash: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At boot ITS deletes temporary files left by an interrupted write and keeps the committed
    data, but an image whose checksum fails panics TFM_SP_DEMO_ITS."""
    system = psaspm.load(DEMO_LIST)
    system.boot()
    ns = system.ns_client()
    its = system.constants["DEMO_ITS_HANDLE"]
    assert ns.call(its, ITS_SET, [uid(1), b"kept"]) == PSA_SUCCESS
    (flash.parent / (flash.name + ".abc.tmp")).write_bytes(b"half an image")
    system.reset()
    assert not _tmp_files(flash) and _get(ns, its, 1) == (PSA_SUCCESS, b"kept")
    image = bytearray(flash.read_bytes())
    image[-10] ^= 0xFF  # a flipped bit: the checksum no longer matches
    flash.write_bytes(bytes(image))
    with pytest.raises(psaspm.Panic) as caught:
        system.reset()
    assert caught.value.record.partition == "TFM_SP_DEMO_ITS"


def test_crypto_keys_stay_inside(system: psaspm.System) -> None:
    """NS may hash and use the app key, never the attestation key; tokens verify with it."""
    ns = system.ns_client()
    crypto = system.constants["DEMO_CRYPTO_HANDLE"]
    digest = bytearray(32)
    assert ns.call(crypto, 1, [b"a", b"b", b"c"], [digest]) == PSA_SUCCESS
    assert digest == hashlib.sha256(b"abc").digest()
    tag = bytearray(32)
    assert ns.call(crypto, 2, [struct.pack("<I", 1), b"x"], [tag]) == PSA_ERROR_NOT_PERMITTED
    # A verifier holding the attestation key (here: derived as the partition derives it).
    keys = _module("demo_crypto")
    keys.crypto_init()
    key = keys._KEYS[keys.KEY_ATTESTATION]
    attest = system.constants["DEMO_ATTEST_HANDLE"]
    token = bytearray(512)
    challenge = bytes(range(32))
    assert ns.call(attest, 1001, [challenge], [token]) == PSA_SUCCESS
    claims, mac = bytes(token[:-32]), bytes(token[-32:])
    assert hmac.compare_digest(mac, hmac.new(key, claims, "sha256").digest())
    document = json.loads(claims)
    assert document["challenge"] == challenge.hex() and document["client_id"] == -1
    assert re.fullmatch(r"[0-9a-f]{32}", document["instance_id"])


def test_boot_counter_counts_boots(system: psaspm.System) -> None:
    """The attestation token's boot_count goes up by exactly one across a reset."""
    ns = system.ns_client()
    attest = system.constants["DEMO_ATTEST_HANDLE"]

    def boot_count() -> int:
        token = bytearray(512)
        assert ns.call(attest, 1001, [bytes(32)], [token]) == PSA_SUCCESS
        return int(json.loads(bytes(token[:-32]))["boot_count"])

    first = boot_count()
    system.reset()
    assert boot_count() == first + 1


TIMER_START, TIMER_STATUS = 1, 2


def _status(ns: psaspm.NsClient, handle: int) -> tuple[int, int]:
    ticks, alarms = bytearray(4), bytearray(4)
    assert ns.call(handle, TIMER_STATUS, [], [ticks, alarms]) == PSA_SUCCESS
    return struct.unpack("<I", ticks)[0], struct.unpack("<I", alarms)[0]


def _start(ns: psaspm.NsClient, handle: int, ticks: int, alarm: int | None = None) -> int:
    vecs = [struct.pack("<I", ticks)] + ([struct.pack("<I", alarm)] if alarm is not None else [])
    return ns.call(handle, TIMER_START, vecs)


def test_timer_driver(system: psaspm.System) -> None:
    """The driver programs the memory-mapped timers; time passes only by system.tick."""
    ns = system.ns_client()
    handle = ns.connect(system.constants["DEMO_TIMER_SID"], 1)
    assert handle > 0
    tick_timer = system.device("TFM_PERIPHERAL_TIMER0")
    alarm_timer = system.device("TFM_PERIPHERAL_TIMER1")
    assert isinstance(tick_timer, Timer) and isinstance(alarm_timer, Timer)
    before = system.stats["interrupts"]
    assert _start(ns, handle, 12, 4) == PSA_SUCCESS
    assert (tick_timer.ctrl, tick_timer.reload) == (0x9, 1)  # enabled, interrupt enabled
    assert (alarm_timer.ctrl, alarm_timer.reload, alarm_timer.value) == (0x9, 4, 4)
    assert system.stats["interrupts"] == before and _status(ns, handle) == (0, 0)
    system.tick(3)
    assert _status(ns, handle) == (3, 0)  # one FLIH per tick; the alarm is not due yet
    assert _start(ns, handle, 1) == PSA_ERROR_BAD_STATE  # a run is in progress
    system.tick(1)
    assert _status(ns, handle) == (4, 1)  # the alarm came: the SLIH stopped TIMER1
    assert alarm_timer.ctrl == 0 and alarm_timer.status == 0
    system.tick(20)
    assert _status(ns, handle) == (12, 1)  # the FLIH stopped TIMER0 after 12 ticks
    assert tick_timer.ctrl == 0 and tick_timer.status == 0
    assert system.stats["interrupts"] - before == 13
    # A new run without an alarm; bad counts are refused.
    assert _start(ns, handle, 2) == PSA_SUCCESS
    system.tick(2)
    assert _status(ns, handle) == (2, 0)
    for ticks in (0, 65):
        assert _start(ns, handle, ticks) == PSA_ERROR_INVALID_ARGUMENT
    assert _start(ns, handle, 1, 0) == PSA_ERROR_INVALID_ARGUMENT
    assert ns.call(handle, TIMER_START, [b"\x01"]) == PSA_ERROR_INVALID_ARGUMENT
    assert ns.call(handle, 9) == PSA_ERROR_NOT_SUPPORTED
    ns.close(handle)


def test_closing_the_connection_stops_the_timers(system: psaspm.System) -> None:
    """Closing the timer connection mid-run stops both timers, so no interrupt follows, and a new
    connection starts a fresh run with nothing pending."""
    ns = system.ns_client()
    sid = system.constants["DEMO_TIMER_SID"]
    handle = ns.connect(sid, 1)
    assert _start(ns, handle, 10, 10) == PSA_SUCCESS
    system.tick(2)
    ns.close(handle)
    interrupts = system.stats["interrupts"]
    system.tick(20)
    assert system.stats["interrupts"] == interrupts
    handle = ns.connect(sid, 1)
    assert _start(ns, handle, 1, 1) == PSA_SUCCESS  # a fresh run: nothing left pending
    system.tick(1)
    assert _status(ns, handle) == (1, 1)
    ns.close(handle)


def test_timer_driver_raises_no_lines_itself(
    system: psaspm.System, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The interrupts come from the timer models' registers, not from hal.assert_irq."""

    def forbidden(source: object) -> None:
        raise AssertionError(f"the demo drove {source} by hand")

    monkeypatch.setattr(hal, "assert_irq", forbidden)
    monkeypatch.setattr(hal, "deassert_irq", forbidden)
    _module("ns_app").main(system.ns_client(), system)
    assert "the FLIH counted 5 ticks" in capsys.readouterr().out
    assert system.stats["interrupts"] == 6 and system.state == "running"


def test_timer_manifest_maps_its_timers() -> None:
    """The driver's manifest lists both timers READ-WRITE, each the source of one of its IRQs."""
    manifest = psaspm.load(DEMO_LIST).manifest
    timer = next(p for p in manifest.partitions if p.name == "TFM_SP_DEMO_TIMER")
    assert {(a.name, a.permission.value) for a in timer.mmio_regions} == {
        ("TFM_PERIPHERAL_TIMER0", "READ-WRITE"),
        ("TFM_PERIPHERAL_TIMER1", "READ-WRITE"),
    }
    platform = load_platform()
    assert {platform.peripherals[str(a.name)].irq for a in timer.mmio_regions} == {
        i.source for i in timer.irqs
    }
    assert "TimerDevice" not in (DEMO / "demo_timer.py").read_text(encoding="utf-8")


def test_makefile_demo_runs_the_demo() -> None:
    """make demo runs the demo with psaspm run and psaspm compare."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    target = text.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "psaspm run examples/demo/demo_manifest_list.yaml" in " ".join(target.split())
    assert "--ns examples/demo/ns_app.py" in target and "--stats" in target
    assert "psaspm compare" in target


def test_flash_defaults_to_a_place_of_this_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without $PSASPM_DEMO_FLASH the image is this user's: under $PSASPM_CACHE, else under
    ~/.cache/psaspm, else a temporary folder named with the user id; never one shared file."""
    its = _module("demo_its")
    monkeypatch.delenv("PSASPM_DEMO_FLASH", raising=False)
    monkeypatch.setenv("PSASPM_CACHE", str(tmp_path / "cache"))
    assert its.flash_path() == tmp_path / "cache" / "demo" / "its_flash.img"
    monkeypatch.delenv("PSASPM_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert its.flash_path() == tmp_path / "home" / ".cache" / "psaspm" / "demo" / "its_flash.img"
    monkeypatch.setenv("HOME", str(tmp_path / "no-such-home"))
    path = its.flash_path()
    assert path.parent.name == f"psaspm-demo-{os.getuid()}" and path.name == "its_flash.img"


def test_demo_counts_runs_the_same_through_run_py_and_psaspm_run(
    flash: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/run.py and psaspm run share the flash image and the pids (both load the list),
    so the second run, whichever way, sees the first one's counter."""
    from psaspm.cli import main

    spec = importlib.util.spec_from_file_location("psaspm_test_run", ROOT / "examples" / "run.py")
    assert spec is not None and spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    assert main(["run", str(DEMO_LIST), "--ns", str(DEMO / "ns_app.py"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "has run 1 time(s)" in out and "boot_count=1," in out
    assert run.main([str(DEMO)]) == 0
    out = capsys.readouterr().out
    # The attestation partition keeps its boot count in storage under its own pid.
    assert "has run 2 time(s)" in out and "boot_count=2," in out
