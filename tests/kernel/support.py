"""Building blocks of the conformance suite: configurations, manifests, a system factory,
and the partitions many tests share.

Partition code is Python source text.  It gets ``from psaspm.psa import *``
and ``log``, a list shared with the test (``Spe.log``) that survives
``system.reset()`` while the partition modules themselves are re-imported.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import psaspm
from psaspm.system import System

PROBE_MODULE = "psaspm_conformance_probe"
HEADER = f"from psaspm.psa import *  # noqa: F403\nfrom {PROBE_MODULE} import log  # noqa: F401\n\n"


@dataclass(frozen=True)
class Config:
    """One way to build the SPM: backend and isolation level."""

    backend: str
    isolation: int

    @property
    def ipc(self) -> bool:
        return self.backend == "ipc"

    def __str__(self) -> str:
        return f"{self.backend}{self.isolation}"


ALL_CONFIGS = (Config("sfn", 1), Config("ipc", 1), Config("ipc", 2), Config("ipc", 3))
IPC_CONFIGS = ALL_CONFIGS[1:]


def service(
    name: str,
    sid: int,
    *,
    connection_based: bool = True,
    ns: bool = True,
    version: int = 1,
    policy: str = "STRICT",
    mm_iovec: bool = False,
) -> dict[str, Any]:
    """One ``services`` entry of a partition manifest."""
    entry: dict[str, Any] = {
        "name": name,
        "sid": f"0x{sid:08X}",
        "non_secure_clients": ns,
        "connection_based": connection_based,
        "version": version,
        "version_policy": policy,
    }
    if mm_iovec:
        entry["mm_iovec"] = "enable"
    return entry


@dataclass
class Part:
    """A partition to write: manifest fields plus its code (Python source)."""

    name: str
    code: str
    services: Sequence[dict[str, Any]] = ()
    model: str = "IPC"
    type: str = "PSA-ROT"
    priority: str = "NORMAL"
    dependencies: Sequence[str] = ()
    entry: str | None = None  # entry_point (IPC) or entry_init (SFN); None: "main" / no init
    write_code: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "psa_framework_version": 1.1,
            "name": self.name,
            "type": self.type,
            "priority": self.priority,
            "model": self.model,
            "stack_size": "0x400",
            "services": list(self.services),
        }
        if self.model == "IPC":
            doc["entry_point"] = self.entry or "main"
        elif self.entry is not None:
            doc["entry_init"] = self.entry
        if self.dependencies:
            doc["dependencies"] = list(self.dependencies)
        doc.update(self.extra)
        return doc


class Spe:
    """Writes partitions into a folder and loads them as a system."""

    def __init__(self, folder: Path, log: list[Any]) -> None:
        self.folder = folder
        self.log = log

    def write(self, *parts: Part) -> list[Path]:
        paths = []
        for part in parts:
            stem = self.folder / part.name.lower()
            stem.with_suffix(".yaml").write_text(
                yaml.safe_dump(part.manifest(), sort_keys=False), encoding="utf-8"
            )
            if part.write_code:
                source = HEADER + textwrap.dedent(part.code).strip() + "\n"
                stem.with_suffix(".py").write_text(source, encoding="utf-8")
            paths.append(stem.with_suffix(".yaml"))
        return paths

    def load(self, config: Config, *parts: Part, **options: Any) -> System:
        return psaspm.load(
            self.write(*parts), backend=config.backend, isolation=config.isolation, **options
        )

    def boot(self, config: Config, *parts: Part, **options: Any) -> System:
        system = self.load(config, *parts, **options)
        system.boot()
        return system


ECHO_SID = 0x1000
STATELESS_SID = 0x1100
FRONT_SID = 0x1200

ECHO_BODY = """
NAME = {name!r}

def handle(msg):
    log.append((NAME, msg.type, msg.client_id, msg.in_size, msg.out_size, msg.rhandle))
    if msg.type < PSA_IPC_CALL:
        return PSA_SUCCESS
    data = psa_read(msg.handle, 0, msg.in_size[0])
    if msg.out_size[0]:
        psa_write(msg.handle, 0, data[: msg.out_size[0]])
    return msg.type
"""

IPC_LOOP = """
def main():
    while True:
        signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        signal = signals & -signals
        msg = psa_get(signal)
        psa_reply(msg.handle, handle(msg))
"""


def echo(
    model: str,
    name: str = "TFM_SP_ECHO",
    svc: str = "ECHO",
    sid: int = ECHO_SID,
    **options: Any,
) -> Part:
    """An echo partition of the given model ("IPC" or "SFN") with one service."""
    kind = options.pop("type", "PSA-ROT")
    priority = options.pop("priority", "NORMAL")
    code = ECHO_BODY.format(name=name)
    if model == "IPC":
        code += IPC_LOOP
    else:
        code += f"\ndef {svc.lower()}_sfn(msg):\n    return handle(msg)\n"
    return Part(
        name,
        code,
        [service(svc, sid, **options)],
        model=model,
        type=kind,
        priority=priority,
    )


def echo_sfn(**options: Any) -> Part:
    return echo("SFN", **options)


def echo_ipc(**options: Any) -> Part:
    return echo("IPC", **options)


def stateless_echo(model: str = "SFN", **options: Any) -> Part:
    """A stateless echo service ``STATELESS`` in partition ``TFM_SP_STATELESS``."""
    options.setdefault("connection_based", False)
    return echo(model, name="TFM_SP_STATELESS", svc="STATELESS", sid=STATELESS_SID, **options)


READ_ARG = """
def read_arg(msg):
    if msg.in_size[0] != 8:
        return 0
    return int.from_bytes(psa_read(msg.handle, 0, 8), "little", signed=True)

"""


def arg(value: int) -> bytes:
    """The in-vector that hands ``value`` to a front partition's code as ``arg``."""
    return value.to_bytes(8, "little", signed=True)


def front(code: str, dependencies: tuple[str, ...] = (), **options: Any) -> Part:
    """A secure client: SFN partition ``TFM_SP_FRONT`` whose stateless service ``FRONT``
    runs ``code`` as the body of ``front_sfn(msg)``; ``arg`` there is the integer the NS
    caller passed with :func:`arg` (0 if none)."""
    body = "def front_sfn(msg):\n    arg = read_arg(msg)\n" + "\n".join(
        "    " + line for line in textwrap.dedent(code).strip("\n").splitlines()
    )
    return Part(
        "TFM_SP_FRONT",
        READ_ARG + body,
        [service("FRONT", FRONT_SID, connection_based=False)],
        model="SFN",
        dependencies=dependencies,
        **options,
    )


SVC_SID = 0x3000


def sfn_service(body: str, **options: Any) -> Part:
    """SFN partition ``TFM_SP_SVC`` whose service ``SVC`` runs ``body`` as ``svc_sfn(msg)``
    (stateless unless ``connection_based=True``)."""
    options.setdefault("connection_based", False)
    code = "def svc_sfn(msg):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return Part("TFM_SP_SVC", code, [service("SVC", SVC_SID, **options)], model="SFN")


def ipc_partition(
    name: str, main: str, services: Sequence[dict[str, Any]] = (), **options: Any
) -> Part:
    """IPC partition ``name`` whose entry point ``main()`` runs ``main`` (a function body)."""
    code = "def main():\n" + textwrap.indent(textwrap.dedent(main).strip("\n"), "    ")
    return Part(name, code, list(services), model="IPC", **options)
