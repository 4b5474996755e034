"""Expanding sources (manifest lists and single manifests) into the enabled partition entries.

TF-M 2.3's rules: a ``conditional`` must be defined by the config and read as
on or off; disabled items are skipped entirely (no file read, no PID); a
``manifest`` path has ``${VAR}`` expanded and is tried relative to the list
file, then as given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from psaspm.errors import ManifestError
from psaspm.manifest.problems import STRICTER, Problems
from psaspm.manifest.reader import read_document
from psaspm.manifest.values import FLAG_OFF, FLAG_ON, flag_value, is_int

_VAR = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")

# PIDs the SPM keeps for itself: INVALID_PARTITION_ID, TFM_SP_IDLE, TFM_SP_TZ_AGENT.
RESERVED_PIDS = {0: "INVALID_PARTITION_ID", 1: "TFM_SP_IDLE", 2: "TFM_SP_TZ_AGENT"}


@dataclass(frozen=True)
class Entry:
    """One enabled partition manifest, with what its list entry says about it."""

    path: Path
    document: object
    origin: str  # for messages: the list item, or the path for a direct source
    pid: int | None
    non_ffm: frozenset[str]


@dataclass
class Expansion:
    """All enabled entries, and the services of partitions a conditional disabled."""

    entries: list[Entry] = field(default_factory=list)
    disabled_services: dict[str, str] = field(default_factory=dict)  # service -> partition
    disabled_partitions: list[str] = field(default_factory=list)  # names, when readable
    # Each manifest file taken so far -> how it was given (to refuse it a second time).
    given: dict[Path, str] = field(default_factory=dict)

    def add(self, entry: Entry, how: str, problems: Problems) -> None:
        """Take ``entry`` unless its file was already given (a glob over a list's folder
        picks up the list and its manifests: each manifest would come twice)."""
        first = self.given.get(entry.path)
        if first == how:
            problems.add(f"{entry.path}: given twice {how} (give each manifest once)")
            return
        if first is not None:
            problems.add(
                f"{entry.path}: given twice, {first} and {how} "
                "(give a manifest list or the manifests it lists, not both)"
            )
            return
        self.given[entry.path] = how
        self.entries.append(entry)


def is_manifest_list(document: object) -> bool:
    return isinstance(document, dict) and (
        document.get("type") == "manifest_list" or "manifest_list" in document
    )


def expand_sources(
    sources: Sequence[Path],
    config: Mapping[str, object],
    paths: Mapping[str, str],
    problems: Problems,
) -> Expansion:
    """Read every source; lists are expanded, single manifests are always enabled."""
    expansion = Expansion()
    for given in sources:
        source = given.resolve()
        document = _read(source, problems)
        if document is None:
            continue
        if is_manifest_list(document):
            assert isinstance(document, dict)
            _expand_list(source, document, config, paths, problems, expansion)
        else:
            entry = Entry(source, document, str(source), None, frozenset())
            expansion.add(entry, "as a source", problems)
    return expansion


def _read(path: Path, problems: Problems) -> object | None:
    if not path.is_file():
        problems.add(f"{path}: not a file (a manifest list or partition manifest is expected)")
        return None
    try:
        document = read_document(path)
    except ManifestError as exc:
        problems.add(str(exc))
        return None
    if document is None:  # an empty file, or only comments
        problems.add(f"{path}: empty document: not a manifest list or a partition manifest")
    return document


def _expand_list(
    list_file: Path,
    document: dict[object, object],
    config: Mapping[str, object],
    paths: Mapping[str, str],
    problems: Problems,
    expansion: Expansion,
) -> None:
    items = document.get("manifest_list")
    if not isinstance(items, list):
        problems.add(f"{list_file}: manifest_list: {items!r} is not a list of items")
        return
    for index, item in enumerate(items):
        origin = _origin(list_file, index, item)
        if not isinstance(item, dict):
            problems.add(f"{origin}: {item!r} is not a mapping")
            continue
        enabled = _conditional(item, origin, config, problems)
        if enabled is False:
            _note_disabled(list_file, item, paths, expansion)
            continue
        entry = _entry(list_file, item, origin, paths, problems)
        if entry is not None and enabled:
            expansion.add(entry, f"in {origin}", problems)


def _origin(list_file: Path, index: int, item: object) -> str:
    label = ""
    if isinstance(item, dict):
        description = item.get("description", item.get("name"))
        label = f" ({description})" if isinstance(description, str) else ""
    return f"{list_file}: manifest_list[{index}]{label}"


def _conditional(
    item: dict[object, object], origin: str, config: Mapping[str, object], problems: Problems
) -> bool | None:
    """True/False for the item's flag; None when the flag is missing or unreadable."""
    if "conditional" not in item:
        return True
    flag = item["conditional"]
    if not isinstance(flag, str):
        problems.add(f"{origin}: conditional: {flag!r} is not a config macro name")
        return None
    if flag not in config:
        problems.add(f'{origin}: conditional: Configuration "{flag}" is not defined!')
        return None
    value = flag_value(config[flag])
    if value is None:
        problems.add(
            f'{origin}: conditional: Invalid "conditional" attribute: "{flag}" is '
            f"{config[flag]!r}; set it to one of {sorted(FLAG_ON)} or {sorted(FLAG_OFF)}, "
            "case-insensitive"
        )
    return value


def _entry(
    list_file: Path,
    item: dict[object, object],
    origin: str,
    paths: Mapping[str, str],
    problems: Problems,
) -> Entry | None:
    pid_ok, pid = _pid(item, origin, problems)
    non_ffm = _non_ffm(item, origin, problems)
    path = _manifest_path(list_file, item, origin, paths, problems)
    if path is None:
        return None
    document = _read(path, problems)
    if document is None or not pid_ok or non_ffm is None:
        return None
    return Entry(path, document, origin, pid, non_ffm)


def _pid(item: dict[object, object], origin: str, problems: Problems) -> tuple[bool, int | None]:
    """(valid, the explicit pid or None when absent)."""
    pid = item.get("pid")
    if pid is None:
        return True, None
    if not is_int(pid) or pid < 0:
        problems.add(f"{origin}: pid: {pid!r} is not a non-negative integer")
        return False, None
    if pid in RESERVED_PIDS:
        problems.add(
            f"{origin}: pid: {pid} is reserved for {RESERVED_PIDS[pid]} ({STRICTER}: "
            "TF-M does not check it)"
        )
        return False, None
    return True, pid


def _non_ffm(item: dict[object, object], origin: str, problems: Problems) -> frozenset[str] | None:
    names = item.get("non_ffm_attributes", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        problems.add(f"{origin}: non_ffm_attributes: {names!r} is not a list of attribute names")
        return None
    return frozenset(str(n) for n in names)


def _manifest_path(
    list_file: Path,
    item: dict[object, object],
    origin: str,
    paths: Mapping[str, str],
    problems: Problems,
) -> Path | None:
    if "manifest" not in item:
        problems.add(f"{origin}: manifest: missing (each entry names its partition manifest file)")
        return None
    raw = item["manifest"]
    if not isinstance(raw, str) or not raw:
        problems.add(f"{origin}: manifest: {raw!r} is not a path")
        return None
    missing = [name for name in _variables(raw) if _lookup(name, paths) is None]
    if missing:
        for name in missing:
            problems.add(
                f"{origin}: manifest: variable ${{{name}}} in {raw!r} is not set "
                "(give it in paths= / --path, or in the environment)"
            )
        return None
    expanded = _VAR.sub(lambda m: _lookup(m.group(1) or m.group(2), paths) or "", raw)
    candidates = _candidates(list_file, expanded)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    tried = " and ".join(f"'{c}'" for c in candidates)
    problems.add(f"{origin}: manifest: {raw!r} not found (tried {tried})")
    return None


def _variables(raw: str) -> list[str]:
    return [m.group(1) or m.group(2) for m in _VAR.finditer(raw)]


def _lookup(name: str, paths: Mapping[str, str]) -> str | None:
    if name in paths:
        return paths[name]
    return os.environ.get(name)


def _candidates(list_file: Path, expanded: str) -> list[Path]:
    given = Path(expanded)
    if given.is_absolute():
        return [given]
    return [list_file.parent / given, given]


def _note_disabled(
    list_file: Path, item: dict[object, object], paths: Mapping[str, str], expansion: Expansion
) -> None:
    """Remember the services of a disabled partition, when its manifest can be read at all."""
    quiet = Problems()
    path = _manifest_path(list_file, item, "", paths, quiet)
    if path is None:
        return
    try:
        document = read_document(path)
    except ManifestError:
        return
    if not isinstance(document, dict):
        return
    name = document.get("name")
    if isinstance(name, str):
        expansion.disabled_partitions.append(name)
    services = document.get("services")
    if not isinstance(services, list):
        return
    for service in services:
        if isinstance(service, dict) and isinstance(service.get("name"), str):
            expansion.disabled_services[service["name"]] = str(name)
