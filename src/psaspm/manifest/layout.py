"""The JSON-ready layout (CONTRACT section 3) and the constants TF-M generates."""

from __future__ import annotations

from typing import Any

from psaspm.manifest.model import Irq, Partition, Service, SystemManifest


def layout_dict(sm: SystemManifest) -> dict[str, Any]:
    """The system as CONTRACT section 3 shows it; partitions in pid.h order."""
    impl = sm.config_impl
    return {
        "backend": sm.backend,
        "isolation": sm.isolation,
        "config_impl": {
            "connection_based_service_api": impl.connection_based_service_api,
            "flih_api": impl.flih_api,
            "slih_api": impl.slih_api,
            "mmio_region_enable": impl.mmio_region_enable,
        },
        "partitions": [_partition(p) for p in sm.partitions],
    }


def _partition(p: Partition) -> dict[str, Any]:
    return {
        "name": p.name,
        "pid": p.pid,
        "model": p.model.value,
        "type": p.type.value,
        "priority": p.priority.name,
        "load_order": p.load_order,
        "ns_agent": p.ns_agent,
        "psa_framework_version": p.psa_framework_version,
        "services": [_service(s) for s in p.services],
        "irqs": [_irq(q) for q in p.irqs],
    }


def _service(s: Service) -> dict[str, Any]:
    return {
        "name": s.name,
        "sid": s.sid,
        "version": s.version,
        "version_policy": s.version_policy.value,
        "non_secure_clients": s.non_secure_clients,
        "connection_based": s.connection_based,
        "mm_iovec": s.mm_iovec,
        "stateless_handle": s.stateless_handle,
        "signal": s.signal,
    }


def _irq(q: Irq) -> dict[str, Any]:
    return {"source": q.source, "name": q.name, "signal": q.signal, "handling": q.handling.value}


def constants_dict(sm: SystemManifest) -> dict[str, int]:
    """The names TF-M generates in sid.h, pid.h and psa_manifest/<manifest>.h.

    ``<SVC>_SID``, ``<SVC>_VERSION``, ``<SVC>_HANDLE`` (stateless services),
    ``<SVC>_SIGNAL``, IRQ signal macros, and each partition's name -> pid.
    TF-M puts signal macros in one header per partition; in this flat mapping
    the first partition (in pid.h order) that defines a name wins.
    """
    constants: dict[str, int] = {}
    for p in sm.partitions:
        constants.setdefault(p.name, p.pid)
        for s in p.services:
            constants.setdefault(f"{s.name}_SID", s.sid)
            constants.setdefault(f"{s.name}_VERSION", s.version)
            if s.stateless_handle is not None:
                constants.setdefault(f"{s.name}_HANDLE", s.stateless_handle)
            constants.setdefault(f"{s.name}_SIGNAL", s.signal)
        for q in p.irqs:
            constants.setdefault(q.name, q.signal)
    return constants
