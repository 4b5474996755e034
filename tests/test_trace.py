"""psaspm.trace: Chrome trace-event JSON that Perfetto and chrome://tracing load.

Every trace written here is checked against the trace-event format
(:func:`check_trace_format`): the JSON Object Format, known phases with their
required fields, slices properly nested on each thread, and every flow arrow
paired and bound inside a slice at both ends.  One test also loads a trace in
a real headless Chromium page when Chromium is installed.
"""

from __future__ import annotations

import contextlib
import html
import importlib.util
import io
import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import psaspm
import psaspm.kernel.api
import psaspm.trace
from psaspm.kernel.contract import Rejected
from psaspm.kernel.interfaces import unwrapped
from psaspm.psa import PSA_SUCCESS, psa_msg_t, psa_panic
from psaspm.trace import ChromeTrace

pytestmark = pytest.mark.usefixtures("demo_flash")

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"
DEMO_LIST = DEMO / "demo_manifest_list.yaml"
STATELESS = ROOT / "examples" / "stateless" / "checksum.yaml"

PHASES = {"X", "B", "E", "i", "I", "s", "t", "f", "M", "C"}


def check_trace_format(data: Any) -> dict[str, Any]:
    """Assert ``data`` is a well-formed trace; return a summary for further checks."""
    assert isinstance(data, dict), "JSON Object Format: a dict with traceEvents"
    events = data["traceEvents"]
    assert isinstance(events, list) and events
    assert data.get("displayTimeUnit", "ms") in ("ms", "ns")
    names: dict[int, str] = {}
    slices: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    flows: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for event in events:
        assert isinstance(event, dict)
        ph = event["ph"]
        assert ph in PHASES, event
        assert isinstance(event["name"], str) and event["name"], event
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int), event
        if ph == "M":
            assert event["name"] in ("process_name", "thread_name", "thread_sort_index"), event
            assert isinstance(event["args"], dict), event
            if event["name"] == "thread_name":
                names[event["tid"]] = event["args"]["name"]
            continue
        assert isinstance(event["ts"], int | float) and event["ts"] >= 0, event
        assert isinstance(event.get("cat", ""), str)
        if "args" in event:
            assert isinstance(event["args"], dict)
            json.dumps(event["args"])
        if ph == "X":
            assert isinstance(event["dur"], int | float) and event["dur"] >= 0, event
            slices[event["tid"]].append((event["ts"], event["ts"] + event["dur"], event["name"]))
        elif ph in ("i", "I"):
            assert event.get("s", "t") in ("t", "p", "g"), event
        elif ph in ("s", "t", "f"):
            assert "id" in event, event
            assert ph not in flows[event["id"]], f"flow {event['id']} has two {ph!r} events"
            flows[event["id"]][ph] = event
    for tid, spans in slices.items():
        assert tid in names, f"thread {tid} has slices but no thread_name"
        stack: list[tuple[float, float, str]] = []
        for start, end, name in sorted(spans, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1][1] <= start:
                stack.pop()
            if stack:
                assert end <= stack[-1][1] + 1e-9, (
                    f"{names[tid]}: {name} [{start}, {end}] overlaps {stack[-1]} without nesting"
                )
            stack.append((start, end, name))

    def enclosed(event: dict[str, Any]) -> bool:
        return any(s <= event["ts"] <= e for s, e, _ in slices[event["tid"]])

    for flow_id, ends in flows.items():
        assert set(ends) == {"s", "f"}, f"flow {flow_id} is not a start-finish pair: {set(ends)}"
        origin, finish = ends["s"], ends["f"]
        assert finish["bp"] == "e"
        assert origin["cat"] == finish["cat"] and origin["name"] == finish["name"]
        assert finish["ts"] >= origin["ts"], f"flow {flow_id} goes back in time"
        assert enclosed(origin) and enclosed(finish), f"flow {flow_id} is not bound to slices"
    return {"names": names, "slices": slices, "flows": flows, "events": events}


def _demo_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("psaspm_demo_ns_app_trace", DEMO / "ns_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _traced_demo(isolation: int, path: Path | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """The demo at ``isolation`` with the trace writer on: its trace (written to ``path``
    and read back, when given) and the system's stats."""
    trace = ChromeTrace()
    system = psaspm.load(DEMO_LIST, backend="ipc", isolation=isolation, tracer=trace)
    trace.attach(system)
    system.boot()
    with contextlib.redirect_stdout(io.StringIO()):
        _demo_app().main(system.ns_client(), system)
    if path is None:
        return trace.to_json(), system.stats
    trace.write(path)
    return json.loads(path.read_text(encoding="utf-8")), system.stats


def _by_name(summary: dict[str, Any]) -> dict[str, list[tuple[float, float, str]]]:
    return {summary["names"][tid]: spans for tid, spans in summary["slices"].items()}


@pytest.mark.parametrize("isolation", [1, 2, 3])
def test_demo_trace_is_well_formed(
    isolation: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A track per thread, API and service slices, flows for messages, replies, interrupts."""
    summary = check_trace_format(_traced_demo(isolation, tmp_path / "trace.json")[0])
    capsys.readouterr()
    names = set(summary["names"].values())
    assert names >= {
        "NS",
        "SPM",
        "TFM_SP_DEMO_ITS",
        "TFM_SP_DEMO_CRYPTO",
        "TFM_SP_DEMO_ATTEST",
        "TFM_SP_DEMO_TIMER",
        "IRQ TFM_TIMER0_IRQ",
        "IRQ TFM_TIMER1_IRQ",
    }
    tracks = _by_name(summary)
    ns_apis = {name for _, _, name in tracks["NS"]}
    assert {"psa_call", "psa_connect", "psa_close"} <= ns_apis
    for partition in ("TFM_SP_DEMO_ITS", "TFM_SP_DEMO_CRYPTO", "TFM_SP_DEMO_ATTEST"):
        served = [name for _, _, name in tracks[partition] if name.startswith("serve ")]
        assert served, f"{partition} has no service slice"
    # The attestation thread calls crypto and storage: psa_call slices on its track.
    assert any(name == "psa_call" for _, _, name in tracks["TFM_SP_DEMO_ATTEST"])
    flows = summary["flows"].values()
    kinds: dict[str, int] = defaultdict(int)
    for ends in flows:
        kinds[ends["s"]["name"]] += 1
    assert kinds["message"] >= 20 and kinds["reply"] >= 20
    assert kinds["interrupt"] >= 2  # the FLIH's last tick and the SLIH alarm woke the driver
    assert len(tracks["IRQ TFM_TIMER0_IRQ"]) == 5 and len(tracks["IRQ TFM_TIMER1_IRQ"]) == 1
    # A message flow goes from the client's call to the service invocation.
    message = next(e for e in flows if e["s"]["name"] == "message")
    assert summary["names"][message["s"]["tid"]] != summary["names"][message["f"]["tid"]]


def test_sfn_trace_has_service_slices_inside_the_call(tmp_path: Path) -> None:
    """Under the SFN backend the service runs within the client's psa_call."""
    trace = ChromeTrace()
    system = psaspm.load(STATELESS, backend="sfn", tracer=trace)
    trace.attach(system)
    system.boot()
    ns = system.ns_client()
    out = bytearray(4)
    assert ns.call(system.constants["EXAMPLE_CHECKSUM_HANDLE"], 0, [b"abc"], [out]) == 0
    trace.write(tmp_path / "sfn.json")
    summary = check_trace_format(json.loads((tmp_path / "sfn.json").read_text()))
    tracks = _by_name(summary)
    call = next(s for s in tracks["NS"] if s[2] == "psa_call")
    serve = next(s for s in tracks["TFM_SP_EXAMPLE_CHECKSUM"] if s[2].startswith("serve"))
    assert call[0] < serve[0] <= serve[1] < call[1]
    assert "SFN" not in summary["names"].values()
    process = next(e for e in summary["events"] if e["name"] == "process_name")
    assert "backend sfn" in process["args"]["name"]


def _panicking_sfn(msg: psa_msg_t) -> int:
    psa_panic()


def test_panic_closes_open_slices(tmp_path: Path) -> None:
    """A panic is an instant event; slices left open end there, marked unfinished."""
    module = ModuleType("checksum_panics")
    module.example_checksum_sfn = _panicking_sfn  # type: ignore[attr-defined]
    module.checksum_init = lambda: PSA_SUCCESS  # type: ignore[attr-defined]
    trace = ChromeTrace()
    system = psaspm.load(
        STATELESS,
        backend="ipc",
        isolation=2,
        tracer=trace,
        code={"TFM_SP_EXAMPLE_CHECKSUM": module},
    )
    system.boot()
    with pytest.raises(psaspm.Panic):
        system.ns_client().call(system.constants["EXAMPLE_CHECKSUM_HANDLE"], 0, [b"x"], [])
    data = trace.to_json()
    summary = check_trace_format(data)
    panics = [e for e in summary["events"] if e.get("cat") == "panic"]
    assert len(panics) == 1 and panics[0]["args"]["api"] == "psa_panic"
    unfinished = [e for e in summary["events"] if e.get("args", {}).get("unfinished") == "panic"]
    assert any(e["name"] == "psa_call" for e in unfinished)


def test_tracing_off_installs_nothing() -> None:
    """Without a tracer the kernel runs the bare interface and holds no tracer."""
    system = psaspm.load(STATELESS, backend="ipc", isolation=1)
    system.boot()
    kernel = system._kernel
    assert kernel is not None
    assert kernel.spm.tracer is None
    assert unwrapped(kernel.iface)
    traced = psaspm.load(STATELESS, backend="ipc", isolation=1, tracer=ChromeTrace())
    traced.boot()
    assert traced._kernel is not None and not unwrapped(traced._kernel.iface)


def test_trace_without_attach_still_loads(tmp_path: Path) -> None:
    """attach() is optional: tracks appear as threads first run."""
    trace = ChromeTrace()
    system = psaspm.load(STATELESS, backend="ipc", isolation=1, tracer=trace)
    system.boot()
    out = bytearray(4)
    system.ns_client().call(system.constants["EXAMPLE_CHECKSUM_HANDLE"], 0, [b"a"], [out])
    summary = check_trace_format(trace.to_json())
    assert {"NS", "TFM_SP_EXAMPLE_CHECKSUM"} <= set(summary["names"].values())


ECHO = ROOT / "examples" / "echo" / "echo_service.yaml"
CONFIGS = [("sfn", 1), ("ipc", 1), ("ipc", 2), ("ipc", 3)]


def _psa_slices(data: dict[str, Any], thread: str, api: str) -> list[dict[str, Any]]:
    """The complete events of ``api`` calls made by ``thread``, in call order."""
    summary = check_trace_format(data)
    tid = next(t for t, name in summary["names"].items() if name == thread)
    found = [e for e in data["traceEvents"] if e["ph"] == "X" and e["tid"] == tid]
    return sorted((e for e in found if e["name"] == api), key=lambda e: e["ts"])


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_rejected_call_slice_carries_the_reason(backend: str, isolation: int) -> None:
    """A call the SPM rejected has its reason in the slice, the text of ns.last_error."""
    trace = ChromeTrace()
    system = psaspm.load(STATELESS, backend=backend, isolation=isolation, tracer=trace)
    system.boot()
    ns = system.ns_client()
    handle = system.constants["EXAMPLE_CHECKSUM_HANDLE"]
    status = ns.call(handle, 0, [b"abc"], [b"read-only"])  # type: ignore[list-item]
    assert status == psaspm.psa.PSA_ERROR_PROGRAMMER_ERROR
    bad_vector = ns.last_error
    assert ns.connect(0xDEAD, 1) == psaspm.psa.PSA_ERROR_CONNECTION_REFUSED
    no_service = ns.last_error
    assert ns.call(handle, 0, [b"abc"], [bytearray(4)]) == PSA_SUCCESS
    assert bad_vector and no_service and ns.last_error is None
    data = trace.to_json()
    calls = _psa_slices(data, "NS", "psa_call")
    assert [c["args"].get("reason") for c in calls] == [bad_vector, None]
    assert calls[0]["args"]["status"] == psaspm.psa.PSA_ERROR_PROGRAMMER_ERROR
    (connect,) = _psa_slices(data, "NS", "psa_connect")
    assert connect["args"]["reason"] == no_service and connect["args"]["sid"] == "0xdead"


def test_only_rejected_results_record_a_reason() -> None:
    """The recorder keeps a reason only for a Rejected status; any other int records as before."""
    trace = ChromeTrace()
    trace.api_exit("NS", "psa_call", 0)
    trace.api_exit("NS", "psa_call", -129)
    trace.api_exit("NS", "psa_call", Rejected(-129, "invalid handle 0"))
    plain, negative, rejected = trace.events
    assert len(plain) == len(negative) == 5 and plain[3] == 0 and negative[3] == -129
    assert rejected[3:5] == (-129, "invalid handle 0") and type(rejected[3]) is int


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS[1:])
def test_client_slices_name_service_and_handle(backend: str, isolation: int) -> None:
    """psa_connect names its SID, the service and the handle it returned; psa_call and psa_close name the handle and the service."""
    trace = ChromeTrace()
    system = psaspm.load(ECHO, backend=backend, isolation=isolation, tracer=trace)
    system.boot()
    ns = system.ns_client()
    handle = ns.connect(0xF000, 1)
    assert handle > 0
    assert ns.call(handle, 0, [b"hi"], [bytearray(2)]) == PSA_SUCCESS
    ns.close(handle)
    assert ns.call(handle, 0, [b"hi"], []) == psaspm.psa.PSA_ERROR_PROGRAMMER_ERROR
    data = trace.to_json()
    (connect,) = _psa_slices(data, "NS", "psa_connect")
    assert connect["args"]["sid"] == "0xf000"
    assert connect["args"]["service"] == "EXAMPLE_ECHO"
    assert connect["args"]["handle"] == f"{handle:#x}"
    served, refused = _psa_slices(data, "NS", "psa_call")
    (close,) = _psa_slices(data, "NS", "psa_close")
    for piece in (served, close):
        assert piece["args"]["handle"] == f"{handle:#x}"
        assert piece["args"]["service"] == "EXAMPLE_ECHO"
    # A call the SPM refused reached no service: the trace names the handle only.
    assert refused["args"]["handle"] == f"{handle:#x}" and "service" not in refused["args"]


def test_stateless_call_names_its_static_handle_and_service() -> None:
    """Under the SFN backend a call names the static handle it used and the stateless service it reached."""
    trace = ChromeTrace()
    system = psaspm.load(STATELESS, backend="sfn", tracer=trace)
    system.boot()
    handle = system.constants["EXAMPLE_CHECKSUM_HANDLE"]
    assert system.ns_client().call(handle, 0, [b"abc"], [bytearray(4)]) == PSA_SUCCESS
    (call,) = _psa_slices(trace.to_json(), "NS", "psa_call")
    assert call["args"] == {"handle": f"{handle:#x}", "service": "EXAMPLE_CHECKSUM", "status": 0}


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS[1:])
def test_service_slices_are_named_after_the_service(backend: str, isolation: int) -> None:
    """A service slice is ``serve <service>``, with the message's kind and type in args."""
    trace = ChromeTrace()
    system = psaspm.load(ECHO, backend=backend, isolation=isolation, tracer=trace)
    system.boot()
    ns = system.ns_client()
    handle = ns.connect(0xF000, 1)
    assert ns.call(handle, 1, [], [bytearray(4)]) == PSA_SUCCESS
    ns.close(handle)
    served = _psa_slices(trace.to_json(), "TFM_SP_EXAMPLE_ECHO", "serve EXAMPLE_ECHO")
    kinds = [(s["args"]["kind"], s["args"]["type"], s["args"]["client"]) for s in served]
    assert kinds == [("CONNECT", -1, "NS"), ("call", 1, "NS"), ("DISCONNECT", -2, "NS")]
    assert [s["args"]["status"] for s in served] == [handle, 0, 0]  # a CONNECT's reply: the handle


@pytest.mark.parametrize("isolation", [1, 2, 3])
def test_svc_entries_are_instants_in_their_api_slice(isolation: int) -> None:
    """At levels 2 and 3 each SVC entry is an instant on the calling thread, inside the API slice it entered; level 1 has none."""
    data, stats = _traced_demo(isolation)
    summary = check_trace_format(data)
    svcs = [e for e in data["traceEvents"] if e.get("cat") == "svc"]
    assert len(svcs) == stats["svc_entries"]
    assert (len(svcs) > 100) == (isolation > 1)
    slices = [e for e in data["traceEvents"] if e["ph"] == "X" and e["cat"] == "psa"]
    for svc in svcs:
        assert svc["ph"] == "i" and svc["s"] == "t" and svc["name"] == "SVC"
        api = svc["args"]["api"]
        assert svc["args"]["number"] == f"{psaspm.kernel.api.BY_NAME[api].number:#04x}"
        assert any(
            s["tid"] == svc["tid"]
            and s["name"] == api
            and s["ts"] <= svc["ts"] <= s["ts"] + s["dur"]
            for s in slices
        ), f"{api} SVC on {summary['names'][svc['tid']]} outside its slice"


@pytest.mark.parametrize("isolation", [1, 2, 3])
def test_boundary_switches_are_instants_on_the_spm_track(isolation: int) -> None:
    """Each isolation boundary switch the counters count is an instant on SPM naming both threads."""
    data, stats = _traced_demo(isolation)
    summary = check_trace_format(data)
    crossings = [e for e in data["traceEvents"] if e.get("cat") == "boundary"]
    assert len(crossings) == stats["boundary_switches"]
    assert bool(crossings) == (isolation > 1)
    switches = {e["name"] for e in data["traceEvents"] if e.get("cat") == "schedule"}
    for crossing in crossings:
        assert summary["names"][crossing["tid"]] == "SPM" and crossing["ph"] == "i"
        assert crossing["name"].removeprefix("boundary ") in switches  # with a context switch


TICKER_MANIFEST = """
{"psa_framework_version": 1.1, "name": "TFM_SP_TICKER", "type": "APPLICATION-ROT",
 "priority": "NORMAL", "model": "IPC", "entry_point": "ticker_main", "stack_size": "0x400",
 "services": [{"name": "TICKER", "sid": "0x2040", "non_secure_clients": true,
               "connection_based": false, "version": 1}],
 "irqs": [{"source": "DEV_IRQ", "name": "DEV_IRQ", "handling": "FLIH"}]}
"""

TICKER_CODE = """
from psaspm import hal
from psaspm.psa import PSA_BLOCK, PSA_FLIH_NO_SIGNAL, PSA_WAIT_ANY, psa_irq_enable, psa_wait

def dev_irq_flih():
    hal.deassert_irq("DEV_IRQ")
    return PSA_FLIH_NO_SIGNAL

def ticker_main():
    psa_irq_enable(int(hal.constants()["DEV_IRQ_SIGNAL"]))
    while True:
        psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
"""


@pytest.mark.parametrize(("isolation", "crossings"), [(1, 0), (2, 2), (3, 2)])
def test_flih_boundary_switches_lie_inside_the_interrupt_slice(
    tmp_path: Path, isolation: int, crossings: int
) -> None:
    """A FLIH run in another boundary shows the switch in and the switch back, both within its interrupt slice."""
    manifest = tmp_path / "ticker.yaml"
    manifest.write_text(TICKER_MANIFEST)
    manifest.with_suffix(".py").write_text(TICKER_CODE)
    trace = ChromeTrace()
    system = psaspm.load(manifest, backend="ipc", isolation=isolation, tracer=trace)
    system.boot()
    trace.events.clear()
    before = system.stats["boundary_switches"]
    system.assert_irq("DEV_IRQ")  # taken in NS thread code
    data = trace.to_json()
    check_trace_format(data)
    assert system.stats["boundary_switches"] - before == crossings
    names = [e["name"] for e in data["traceEvents"] if e.get("cat") == "boundary"]
    assert names == ["boundary NS -> TFM_SP_TICKER", "boundary TFM_SP_TICKER -> NS"][:crossings]
    (flih,) = [e for e in data["traceEvents"] if e.get("cat") == "interrupt"]
    assert flih["name"] == "FLIH DEV_IRQ"
    for event in data["traceEvents"]:
        if event.get("cat") == "boundary":
            assert flih["ts"] < event["ts"] < flih["ts"] + flih["dur"]


class _Clock:
    """Stands in for ``time`` in psaspm.trace: the test sets the reading."""

    now = 0

    @classmethod
    def perf_counter_ns(cls) -> int:
        return cls.now


class _Msg:
    """What psa_get returns: the trace keeps its handle, nothing else."""

    handle = 0x41
    payload = b"x" * 64


# A client call served by an IPC thread, an interrupt whose signal wakes the
# thread's next psa_wait, and a call still open when the trace ends: (time in
# ns since the trace began, callback, arguments).  Equal times force 1 ns steps.
_SCENARIO: list[tuple[int, str, tuple[object, ...]]] = [
    (1000, "call_enter", ("NS", "psa_call", 0x41)),
    (1200, "message", ("NS", "SP_ECHO", "ECHO", 0x41, 0)),
    (1200, "switch", ("NS", "SP_ECHO")),
    (1500, "api_exit", ("SP_ECHO", "psa_wait", 0x10)),
    (1600, "api_enter", ("SP_ECHO", "psa_get")),
    (1700, "api_exit", ("SP_ECHO", "psa_get", _Msg())),
    (1800, "api_enter", ("SP_ECHO", "psa_read")),
    (1900, "api_exit", ("SP_ECHO", "psa_read", b"y" * 64)),
    (2000, "api_enter", ("SP_ECHO", "psa_reply")),
    (2100, "reply", ("SP_ECHO", "NS", 0x41, 0)),
    (2100, "api_exit", ("SP_ECHO", "psa_reply", None)),
    (2200, "api_enter", ("SP_ECHO", "psa_wait")),
    (2300, "interrupt", ("TIMER0_IRQ", "SP_ECHO", "FLIH", "SP_ECHO")),
    (2400, "switch", ("SP_ECHO", "NS")),
    (2500, "api_exit", ("NS", "psa_call", 0)),
    (2600, "switch", ("NS", "SP_ECHO")),
    (2700, "api_exit", ("SP_ECHO", "psa_wait", 0x2)),
    (2800, "api_enter", ("SP_ECHO", "psa_wait")),
    (2900, "api_enter", ("NS", "psa_version")),
    (3000, "api_exit", ("NS", "psa_version", 1)),
]

# What the writer produced for _SCENARIO when it built events in its callbacks
# (before recording and export were split), its clock read as set above; since
# then the client call names its handle and service and the service slice its
# service (serve ECHO, with kind and type in args).
_SCENARIO_EVENTS: list[dict[str, Any]] = [
    {"ph": "i", "name": "NS -> SP_ECHO", "cat": "schedule", "pid": 1, "tid": 2, "ts": 1.203, "s": "t"},
    {"ph": "X", "name": "psa_get", "cat": "psa", "pid": 1, "tid": 3, "ts": 1.6, "dur": 0.1, "args": {"handle": "0x41"}},
    {"ph": "s", "name": "message", "cat": "flow", "pid": 1, "tid": 1, "ts": 1.2, "id": 1},
    {"ph": "f", "name": "message", "cat": "flow", "pid": 1, "tid": 3, "ts": 1.702, "id": 1, "bp": "e"},
    {"ph": "X", "name": "psa_read", "cat": "psa", "pid": 1, "tid": 3, "ts": 1.8, "dur": 0.1},
    {"ph": "X", "name": "psa_reply", "cat": "psa", "pid": 1, "tid": 3, "ts": 2.0, "dur": 0.101},
    {"ph": "X", "name": "serve ECHO", "cat": "service", "pid": 1, "tid": 3, "ts": 1.701, "dur": 0.401, "args": {"client": "NS", "kind": "call", "type": 0, "status": 0}},
    {"ph": "X", "name": "FLIH TIMER0_IRQ", "cat": "interrupt", "pid": 1, "tid": 4, "ts": 2.3, "dur": 0.1, "args": {"partition": "SP_ECHO", "preempted": "SP_ECHO"}},
    {"ph": "i", "name": "SP_ECHO -> NS", "cat": "schedule", "pid": 1, "tid": 2, "ts": 2.401, "s": "t"},
    {"ph": "s", "name": "reply", "cat": "flow", "pid": 1, "tid": 3, "ts": 2.1, "id": 2},
    {"ph": "f", "name": "reply", "cat": "flow", "pid": 1, "tid": 1, "ts": 2.5, "id": 2, "bp": "e"},
    {"ph": "X", "name": "psa_call", "cat": "psa", "pid": 1, "tid": 1, "ts": 1.0, "dur": 1.501, "args": {"handle": "0x41", "service": "ECHO", "status": 0}},
    {"ph": "i", "name": "NS -> SP_ECHO", "cat": "schedule", "pid": 1, "tid": 2, "ts": 2.6, "s": "t"},
    {"ph": "s", "name": "interrupt", "cat": "flow", "pid": 1, "tid": 4, "ts": 2.301, "id": 3},
    {"ph": "f", "name": "interrupt", "cat": "flow", "pid": 1, "tid": 3, "ts": 2.7, "id": 3, "bp": "e"},
    {"ph": "X", "name": "psa_wait", "cat": "psa", "pid": 1, "tid": 3, "ts": 2.2, "dur": 0.501, "args": {"signals": "0x2"}},
    {"ph": "X", "name": "psa_version", "cat": "psa", "pid": 1, "tid": 1, "ts": 2.9, "dur": 0.1, "args": {"result": 1}},
    {"ph": "X", "name": "psa_wait", "cat": "psa", "pid": 1, "tid": 3, "ts": 2.8, "dur": 0.3, "args": {"unfinished": "end of trace"}},
]  # fmt: skip


def test_recorded_callbacks_export_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """Callbacks only record; the export builds the very events the live writer built."""
    monkeypatch.setattr(psaspm.trace, "time", _Clock)
    _Clock.now = 0
    trace = ChromeTrace("scenario")
    trace.irq_signals["TIMER0_IRQ"] = 0x2
    for at, callback, args in _SCENARIO:
        _Clock.now = at
        getattr(trace, callback)(*args)
    assert len(trace.events) == len(_SCENARIO)  # one record per callback, nothing built
    _Clock.now = 3100
    data = trace.to_json()
    check_trace_format(data)
    meta = [(e["name"], e["tid"], e["args"]) for e in data["traceEvents"] if e["ph"] == "M"]
    assert meta == [
        ("process_name", 0, {"name": "scenario"}),
        ("thread_name", 1, {"name": "NS"}),
        ("thread_sort_index", 1, {"sort_index": 0}),
        ("thread_name", 2, {"name": "SPM"}),
        ("thread_sort_index", 2, {"sort_index": 1000}),
        ("thread_name", 3, {"name": "SP_ECHO"}),
        ("thread_sort_index", 3, {"sort_index": 113}),
        ("thread_name", 4, {"name": "IRQ TIMER0_IRQ"}),
        ("thread_sort_index", 4, {"sort_index": 2004}),
    ]
    assert [e for e in data["traceEvents"] if e["ph"] != "M"] == _SCENARIO_EVENTS
    # Writing again exports the same run again: the open slice ended at the first export.
    _Clock.now = 3200
    again = trace.to_json()
    assert again["traceEvents"] == data["traceEvents"]


def test_callbacks_keep_only_names_and_ints() -> None:
    """A traced call keeps no psa_read bytes, no psa_msg_t: small tuples only."""
    trace = ChromeTrace()
    system = psaspm.load(STATELESS, backend="ipc", isolation=1, tracer=trace)
    trace.attach(system)
    system.boot()
    before = len(trace.events)
    out = bytearray(4)
    system.ns_client().call(system.constants["EXAMPLE_CHECKSUM_HANDLE"], 0, [b"abc"], [out])
    records = trace.events[before:]
    assert len(records) >= 10
    for record in records:
        assert isinstance(record, tuple) and isinstance(record[0], int) and record[0] >= 0
        assert isinstance(record[-1], int)  # the one clock reading
        for item in record[1:-1]:
            assert item is None or type(item) in (str, int, object), record
    handles = [r[3] for r in records if r[2] == "psa_get" and len(r) == 5]
    assert handles and all(type(h) is int for h in handles)
    check_trace_format(trace.to_json())


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>trace check</title></head>
<body><pre id="result">not run</pre>
<script id="trace" type="application/json">{trace}</script>
<script>
const out = document.getElementById("result");
try {{
  const data = JSON.parse(document.getElementById("trace").textContent);
  const events = data.traceEvents;
  const threads = new Map();
  const spans = new Map();
  const flows = new Map();
  for (const e of events) {{
    if (e.ph === "M" && e.name === "thread_name") threads.set(e.tid, e.args.name);
    if (e.ph === "X") {{
      if (!spans.has(e.tid)) spans.set(e.tid, []);
      spans.get(e.tid).push([e.ts, e.ts + e.dur]);
    }}
    if (e.ph === "s" || e.ph === "f") {{
      if (!flows.has(e.id)) flows.set(e.id, {{}});
      flows.get(e.id)[e.ph] = e;
    }}
  }}
  let bad = 0;
  for (const [id, f] of flows) {{
    if (!f.s || !f.f || f.f.ts < f.s.ts) bad++;
  }}
  for (const [tid, list] of spans) {{
    list.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    const stack = [];
    for (const [s, e] of list) {{
      while (stack.length && stack[stack.length - 1][1] <= s) stack.pop();
      if (stack.length && e > stack[stack.length - 1][1] + 1e-9) bad++;
      stack.push([s, e]);
    }}
  }}
  out.textContent = (bad ? "TRACE-BAD " : "TRACE-OK ") + threads.size + " threads " +
    [...spans.values()].reduce((n, l) => n + l.length, 0) + " slices " + flows.size + " flows";
}} catch (err) {{
  out.textContent = "TRACE-ERROR " + err;
}}
</script></body></html>
"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.skipif(
    _chromium() is None,
    reason="no Chromium on this machine (apt-get install chromium); the format checks still ran",
)
def test_trace_loads_in_a_headless_browser(tmp_path: Path) -> None:
    """A real browser parses the file and finds its threads, nested slices and paired flows."""
    data, _stats = _traced_demo(2, tmp_path / "trace.json")
    text = json.dumps(data).replace("</", "<\\/")
    page = tmp_path / "page.html"
    page.write_text(PAGE.format(trace=text), encoding="utf-8")
    browser = _chromium()
    assert browser is not None
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    dom = html.unescape(done.stdout)
    assert "TRACE-OK" in dom, f"browser said: {dom[-400:]!r}; stderr: {done.stderr[-400:]!r}"
    summary = check_trace_format(data)
    assert f"{len(summary['names'])} threads" in dom
    assert f"{len(summary['flows'])} flows" in dom
