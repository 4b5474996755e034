"""Fixtures for the manifest loader tests: corpus paths and small manifests in tmp_path."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

WriteJson = Callable[..., Path]


def conditionals(lists: Iterable[Path]) -> set[str]:
    """Every conditional flag the given manifest lists use."""
    flags: set[str] = set()
    for path in lists:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for item in document.get("manifest_list", []):
            if "conditional" in item:
                flags.add(item["conditional"])
    return flags


def _all_on(*lists: Path) -> dict[str, object]:
    return {flag: "1" for flag in conditionals(lists)}


@pytest.fixture
def all_on() -> Callable[..., dict[str, object]]:
    """A function: manifest lists -> a config switching every conditional they use on."""
    return _all_on


@pytest.fixture
def partition() -> Callable[..., dict[str, Any]]:
    """A function: overrides -> a small valid FF-M 1.1 IPC partition document."""
    return good_partition


@pytest.fixture
def service() -> Callable[..., dict[str, Any]]:
    """A function: overrides -> a valid connection-based service entry."""
    return good_service


def good_partition(**overrides: Any) -> dict[str, Any]:
    """A small valid FF-M 1.1 IPC partition; overrides replace top-level keys."""
    partition: dict[str, Any] = {
        "psa_framework_version": 1.1,
        "name": "TEST_SP",
        "type": "PSA-ROT",
        "priority": "NORMAL",
        "model": "IPC",
        "entry_point": "test_sp_main",
        "stack_size": "0x400",
        "services": [good_service()],
    }
    partition.update(overrides)
    return partition


def good_service(**overrides: Any) -> dict[str, Any]:
    service: dict[str, Any] = {
        "name": "TEST_SVC",
        "sid": "0x0000F000",
        "non_secure_clients": True,
        "connection_based": True,
        "version": 1,
        "version_policy": "STRICT",
    }
    service.update(overrides)
    return service


@pytest.fixture
def write_json(tmp_path: Path) -> WriteJson:
    """Write a document (partition or manifest list) as JSON into tmp_path; returns its path."""

    def write(document: object, name: str = "test_sp.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2), encoding="utf-8")
        return path

    return write
