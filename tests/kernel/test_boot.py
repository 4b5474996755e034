"""Boot (contract sections 2 and 5): partition init in load order, and boot failures."""

from __future__ import annotations

import pytest

from psaspm import ConfigError, Panic

from .support import Config, Part, Spe, echo, service


def sfn_with_init(name: str, priority: str, init: str, deps: tuple[str, ...] = ()) -> Part:
    svc = name.removeprefix("TFM_SP_")
    code = f"def init():\n    {init}\n\ndef {svc.lower()}_sfn(msg):\n    return 0\n"
    return Part(
        name,
        code,
        [service(svc, 0x4000 + len(name) * 16 + ord(name[-1]), connection_based=False)],
        model="SFN",
        priority=priority,
        entry="init",
        dependencies=deps,
    )


def test_state_before_and_after_boot(config: Config, spe: Spe) -> None:
    """A system is "loaded" until boot() and "running" after."""
    system = spe.load(config, echo("SFN"))
    assert system.state == "loaded"
    system.boot()
    assert system.state == "running"


def test_entry_init_runs_once_in_load_order(config: Config, spe: Spe) -> None:
    """Every SFN partition's entry_init runs once, at boot, in load order: priority first,
    then providers before the partitions that depend on them."""
    parts = [
        sfn_with_init("TFM_SP_LOW", "LOW", "log.append('LOW')"),
        sfn_with_init("TFM_SP_USER", "NORMAL", "log.append('USER')", deps=("BASE",)),
        sfn_with_init("TFM_SP_BASE", "NORMAL", "log.append('BASE')"),
        sfn_with_init("TFM_SP_HIGH", "HIGH", "log.append('HIGH')"),
    ]
    system = spe.boot(config, *parts)
    assert spe.log == ["HIGH", "BASE", "USER", "LOW"]
    ns = system.ns_client()
    for name in ("LOW", "USER", "BASE", "HIGH"):
        assert ns.call(system.constants[f"{name}_HANDLE"]) == 0
    assert spe.log == ["HIGH", "BASE", "USER", "LOW"]


def test_entry_init_without_return_value(config: Config, spe: Spe) -> None:
    """An entry_init that returns nothing (None) counts as success."""
    system = spe.boot(config, sfn_with_init("TFM_SP_QUIET", "NORMAL", "log.append('init')"))
    assert system.state == "running"
    assert spe.log == ["init"]


@pytest.mark.parametrize("status", [-1, -132])
def test_entry_init_negative_panics_at_boot(config: Config, spe: Spe, status: int) -> None:
    """An entry_init returning a negative status is a panic at boot: boot() raises Panic."""
    system = spe.load(config, sfn_with_init("TFM_SP_BAD", "NORMAL", f"return {status}"))
    with pytest.raises(Panic) as info:
        system.boot()
    assert info.value.record.partition == "TFM_SP_BAD"
    assert system.state == "panicked"
    assert system.panic is info.value.record


def test_entry_init_exception_panics_at_boot(config: Config, spe: Spe) -> None:
    """A Python exception in entry_init is a panic of that partition at boot."""
    system = spe.load(config, sfn_with_init("TFM_SP_BAD", "NORMAL", "raise ValueError('no')"))
    with pytest.raises(Panic) as info:
        system.boot()
    assert info.value.record.partition == "TFM_SP_BAD"
    assert info.value.record.traceback is not None
    assert "ValueError" in info.value.record.traceback


def test_partition_without_code(config: Config, spe: Spe) -> None:
    """A partition without code loads (its layout is known) but boot() raises ConfigError
    naming it."""
    part = echo("SFN")
    part.write_code = False
    system = spe.load(config, part)
    assert [p["name"] for p in system.layout()["partitions"]] == ["TFM_SP_ECHO"]
    with pytest.raises(ConfigError, match="TFM_SP_ECHO"):
        system.boot()


def test_code_without_service_function(config: Config, spe: Spe) -> None:
    """Partition code lacking a service's <name>_sfn function fails boot() with ConfigError
    naming the partition and the function."""
    part = Part("TFM_SP_EMPTY", "X = 1", [service("EMPTY", 0x2000)], model="SFN")
    system = spe.load(config, part)
    with pytest.raises(ConfigError, match=r"TFM_SP_EMPTY.*empty_sfn"):
        system.boot()


def test_code_passed_explicitly(config: Config, spe: Spe) -> None:
    """code={name: path} supplies a partition's code from anywhere."""
    part = echo("SFN", connection_based=False)
    part.write_code = False
    elsewhere = spe.folder / "elsewhere.py"
    elsewhere.write_text("def echo_sfn(msg):\n    return 42\n", encoding="utf-8")
    system = spe.boot(config, part, code={"TFM_SP_ECHO": elsewhere})
    assert system.ns_client().call(system.constants["ECHO_HANDLE"]) == 42
