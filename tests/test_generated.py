"""The modules generated from the PSA API table are current, and the table is the one
place the API is spelt out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psaspm.psa
from psaspm.kernel._generated_api import Interface, Svc
from psaspm.kernel.api import API

ROOT = Path(__file__).resolve().parent.parent


def test_generated_modules_are_current() -> None:
    """tools/gen_api.py --check finds every generated module equal to what the table gives."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_api.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_every_api_has_a_number_an_entry_and_a_function() -> None:
    """Each table row is an SVC number, an interface slot and a psaspm.psa function."""
    assert [(s.name, int(s)) for s in Svc] == [(a.svc, a.number) for a in API]
    for api in API:
        assert api.name in Interface.__slots__
        assert callable(getattr(psaspm.psa, api.name))


def test_psa_functions_follow_the_table_signatures() -> None:
    """psaspm.psa's functions take exactly the table's parameters, in order."""
    import inspect

    for api in API:
        params = list(inspect.signature(getattr(psaspm.psa, api.name)).parameters)
        assert params == [p.name for p in api.params], api.name
