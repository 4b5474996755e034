"""MM-IOVEC (FF-M 1.1 section 5.4 / contract section 5): mapping client vectors in place."""

from __future__ import annotations

import pytest

from psaspm import Panic
from psaspm.system import System

from .support import Config, Spe, sfn_service


def call(system: System, in_vecs: list[bytes], outs: list[bytearray]) -> int:
    return system.ns_client().call(system.constants["SVC_HANDLE"], 0, in_vecs, outs)


def test_map_invec_gives_read_only_view(config: Config, spe: Spe) -> None:
    """psa_map_invec returns a read-only view of the client's in-vector."""
    body = """
    view = psa_map_invec(msg.handle, 0)
    log.append((bytes(view), view.readonly))
    psa_unmap_invec(msg.handle, 0)
    return 0
    """
    system = spe.boot(config, sfn_service(body, mm_iovec=True))
    assert call(system, [b"mapped"], []) == 0
    assert spe.log == [(b"mapped", True)]


def test_unmapped_outvec_length_counts_as_written(config: Config, spe: Spe) -> None:
    """Bytes written through a mapped out-vector count as the length given to psa_unmap_outvec."""
    body = """
    view = psa_map_outvec(msg.handle, 0)
    view[:5] = b"hello"
    psa_unmap_outvec(msg.handle, 0, 3)
    return 0
    """
    system = spe.boot(config, sfn_service(body, mm_iovec=True))
    out = bytearray(8)
    assert call(system, [], [out]) == 0
    assert out == b"hel"


def test_mapped_not_unmapped_outvec_reports_nothing(config: Config, spe: Spe) -> None:
    """An out-vector still mapped at the reply reports 0 bytes written."""
    body = """
    view = psa_map_outvec(msg.handle, 0)
    view[:2] = b"hi"
    return 0
    """
    system = spe.boot(config, sfn_service(body, mm_iovec=True))
    out = bytearray(8)
    assert call(system, [], [out]) == 0
    assert out == b""


MISUSES = {
    "map after read": ("psa_read(msg.handle, 0, 1)\npsa_map_invec(msg.handle, 0)", "psa_map_invec"),
    "read after map": ("psa_map_invec(msg.handle, 0)\npsa_read(msg.handle, 0, 1)", "psa_read"),
    "map after write": (
        "psa_write(msg.handle, 0, b'x')\npsa_map_outvec(msg.handle, 0)",
        "psa_map_outvec",
    ),
    "write after map": (
        "psa_map_outvec(msg.handle, 0)\npsa_write(msg.handle, 0, b'x')",
        "psa_write",
    ),
    "map twice": ("psa_map_invec(msg.handle, 0)\npsa_map_invec(msg.handle, 0)", "psa_map_invec"),
    "unmap unmapped": ("psa_unmap_invec(msg.handle, 0)", "psa_unmap_invec"),
    "unmap twice": (
        "psa_map_invec(msg.handle, 0)\npsa_unmap_invec(msg.handle, 0)\npsa_unmap_invec(msg.handle, 0)",
        "psa_unmap_invec",
    ),
    "unmap longer than vector": (
        "psa_map_outvec(msg.handle, 0)\npsa_unmap_outvec(msg.handle, 0, 9)",
        "psa_unmap_outvec",
    ),
    "map empty vector": ("psa_map_invec(msg.handle, 1)", "psa_map_invec"),
    "map index out of range": ("psa_map_outvec(msg.handle, 4)", "psa_map_outvec"),
}


@pytest.mark.parametrize("misuse", list(MISUSES))
def test_mm_iovec_misuse_panics(config: Config, spe: Spe, misuse: str) -> None:
    """Each MM-IOVEC rule broken (mapping after access, accessing after mapping, mapping
    twice, unmapping what is not mapped, a length beyond the vector, an empty or absent
    vector) is a panic."""
    code, api = MISUSES[misuse]
    system = spe.boot(config, sfn_service(code + "\nreturn 0", mm_iovec=True))
    with pytest.raises(Panic) as info:
        call(system, [b"abc"], [bytearray(8)])
    assert (info.value.record.partition, info.value.record.api) == ("TFM_SP_SVC", api)
    assert system.state == "panicked"


def test_map_without_mm_iovec_panics(config: Config, spe: Spe) -> None:
    """psa_map_invec on a service without mm_iovec enabled is a panic."""
    system = spe.boot(config, sfn_service("psa_map_invec(msg.handle, 0)\nreturn 0"))
    with pytest.raises(Panic) as info:
        call(system, [b"abc"], [])
    assert info.value.record.api == "psa_map_invec"
