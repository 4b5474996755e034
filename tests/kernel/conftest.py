"""Fixtures for the conformance suite: the four configurations and a system factory.

``config`` runs a test under every configuration (SFN backend at level 1, IPC
backend at levels 1, 2 and 3); ``ipc_config`` under the IPC ones only, for
rules about IPC-model partitions.  ``spe`` writes small TF-M style manifests
and partition code into ``tmp_path`` and loads (and boots) them.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import ALL_CONFIGS, IPC_CONFIGS, PROBE_MODULE, Config, Spe


@pytest.fixture(params=ALL_CONFIGS, ids=str)
def config(request: pytest.FixtureRequest) -> Config:
    """Every configuration: for rules SFN-model partitions can show."""
    value: Config = request.param
    return value


@pytest.fixture(params=IPC_CONFIGS, ids=str)
def ipc_config(request: pytest.FixtureRequest) -> Config:
    """The IPC backend at levels 1, 2 and 3: for rules that need IPC-model partitions."""
    value: Config = request.param
    return value


@pytest.fixture
def spe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Spe]:
    """The system factory; its ``log`` is the list partition code appends to."""
    probe = types.ModuleType(PROBE_MODULE)
    log: list[Any] = []
    probe.log = log  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, PROBE_MODULE, probe)
    yield Spe(tmp_path, log)
