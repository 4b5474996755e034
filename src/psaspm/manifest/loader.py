"""``load_system_manifest``: sources -> validated SystemManifest, every problem reported at once."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from psaspm.errors import ConfigError
from psaspm.manifest.assemble import Placed, assemble, assign_pids, check_backend
from psaspm.manifest.config import check_backend as valid_backend
from psaspm.manifest.config import check_isolation
from psaspm.manifest.model import SystemManifest
from psaspm.manifest.partition import parse_partition
from psaspm.manifest.problems import Problems
from psaspm.manifest.sources import Entry, expand_sources

Source = str | os.PathLike[str]


def load_system_manifest(
    sources: Source | Sequence[Source],
    *,
    backend: str = "ipc",
    isolation: int = 1,
    config: Mapping[str, object] | None = None,
    paths: Mapping[str, str] | None = None,
) -> SystemManifest:
    """Load TF-M manifest lists and/or single partition manifests into a SystemManifest.

    Raises ManifestError (all problems in ``.problems``) for bad input, and
    ConfigError for a backend/isolation combination TF-M cannot build.
    """
    backend = valid_backend(backend)
    isolation = check_isolation(isolation)
    if backend == "sfn" and isolation > 1:
        raise ConfigError(
            f"SFN backend does not support high isolation levels (isolation {isolation})"
        )
    problems = Problems()
    expansion = expand_sources(
        _paths(sources),
        config if config is not None else {},
        paths if paths is not None else {},
        problems,
    )
    pids = assign_pids(expansion.entries, problems)
    placed: list[Placed] = []
    unavailable: set[str] = set()
    for entry, pid in zip(expansion.entries, pids, strict=True):
        draft = parse_partition(entry.path, entry.document, entry.non_ffm, backend, problems)
        if draft is None:
            unavailable.update(_service_names(entry))
        else:
            placed.append(Placed(pid, draft))
    system = assemble(
        placed,
        backend,
        isolation,
        expansion.disabled_services,
        frozenset(unavailable),
        problems,
        disabled_partitions=expansion.disabled_partitions,
    )
    problems.raise_if_any()
    check_backend(system)
    return system


def _paths(sources: Source | Sequence[Source]) -> list[Path]:
    if isinstance(sources, str | os.PathLike):
        return [Path(sources)]
    items = list(sources)
    if not items:
        raise ConfigError("no manifest sources given")
    return [Path(s) for s in items]


def _service_names(entry: Entry) -> list[str]:
    """Service names of a partition that failed to parse (so its dependants are not blamed)."""
    document = entry.document
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, list):
        return []
    return [s["name"] for s in services if isinstance(s, dict) and isinstance(s.get("name"), str)]
