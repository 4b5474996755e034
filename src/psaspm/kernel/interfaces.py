"""The three interfaces by which partition code enters the SPM.

- SFN interface (SFN backend): a direct function call.  After a client call,
  if the current component changed the service ran, and the interface replies
  on its behalf with the service function's return value.
- Cross-call interface (IPC backend, isolation level 1): no privilege change;
  the SPM runs on the SPM stack with the scheduler locked and stays
  preemptable: interrupts are taken at once, but threads they wake run only
  when the SPM is left.
- SVC interface (IPC backend, levels 2 and 3): a numbered trap into handler
  mode, privileged and not preemptable: interrupts wait until the SVC returns.
  :func:`svc_handler` dispatches a raw SVC number; unknown numbers fail
  cleanly with PSA_ERROR_GENERIC_ERROR.

Every interface applies TF-M's programmer-error rule to client calls the SPM
itself rejected: a status for a non-secure caller, a panic for a secure one.
Each is an :class:`Interface` record of entries built from the API table
(``_generated_entries``); the tracer wraps any of them the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psaspm.consts import PSA_ERROR_GENERIC_ERROR
from psaspm.kernel._generated_api import Interface
from psaspm.kernel._generated_entries import cross_entries, sfn_entries, svc_entries
from psaspm.kernel.api import API, NAMES, Kind
from psaspm.kernel.contract import Scheduling
from psaspm.kernel.instruments import Tracer
from psaspm.kernel.runtime import PartitionRuntime
from psaspm.kernel.spm import Spm

__all__ = [
    "Interface",
    "cross_interface",
    "sfn_interface",
    "svc_handler",
    "svc_interface",
    "traced",
    "unwrapped",
]


def sfn_interface(spm: Spm) -> Interface:
    """The SFN interface: the service function runs inside ``psa_call``."""

    def returned(client: PartitionRuntime, api: str, result: int) -> int:
        """After a client call: if the service ran (the current component changed), reply
        on its behalf with what its function returned; else apply the programmer-error rule."""
        target = spm.current
        if target is not client:
            conn = target.current_request  # the message the backend handed the service
            assert conn is not None
            return spm.reply(conn, result)
        if result < 0:
            result = spm.programmer_error(client, api, result)
        return result

    return sfn_entries(spm, returned)


def cross_interface(spm: Spm, sched: Scheduling) -> Interface:
    """Isolation level 1: a function call on the SPM stack, scheduler locked, preemptable."""
    return cross_entries(spm, sched)


def svc_interface(spm: Spm, sched: Scheduling) -> Interface:
    """Isolation levels 2 and 3: a trap to handler mode, privileged, not preemptable."""
    return svc_entries(spm, sched)


def svc_handler(iface: Interface, number: int, *args: Any) -> Any:
    """The SVC handler: dispatch by number; an unknown number fails cleanly."""
    if not isinstance(number, int) or not 0 <= number < len(API):
        return PSA_ERROR_GENERIC_ERROR
    entry: Callable[..., Any] = getattr(iface, NAMES[number])
    return entry(*args)


def traced(inner: Interface, spm: Spm, tracer: Tracer) -> Interface:
    """``inner`` with every PSA API call reported to ``tracer``.

    Client calls enter by ``tracer.call_enter`` with the handle or SID they
    name, every other API by ``tracer.api_enter``; under the SVC interface each
    entry is also reported as an SVC (``tracer.svc``).  Chosen once when a
    system is built with a tracer; without one the kernel runs the bare
    interface and pays nothing for tracing.
    """
    wrapper = Interface(inner.name, tracer)
    trap = tracer.svc if inner.name == "svc" else None
    for api in API:
        fn = getattr(inner, api.name)
        if api.kind is Kind.CLIENT or api.kind is Kind.AGENT:
            entry = _wrap_client(api.name, api.number, fn, spm, tracer, trap)
        else:
            entry = _wrap(api.name, api.number, fn, spm, tracer, trap)
        setattr(wrapper, api.name, entry)
    return wrapper


# The wrappers bind every callback once (no per-call method lookup) and come in
# two shapes each, so that a call tests nothing it need not.
def _wrap(
    api: str,
    number: int,
    fn: Callable[..., Any],
    spm: Spm,
    tracer: Tracer,
    trap: Callable[[str, int], None] | None,
) -> Callable[..., Any]:
    enter = tracer.api_enter
    exit_ = tracer.api_exit
    if trap is None:

        def call(*args: Any) -> Any:
            thread = spm.current.name
            enter(thread, api)
            result = fn(*args)
            exit_(thread, api, result)
            return result

    else:
        svc = trap

        def call(*args: Any) -> Any:
            thread = spm.current.name
            enter(thread, api)
            svc(thread, number)
            result = fn(*args)
            exit_(thread, api, result)
            return result

    call.__name__ = api
    return call


def _wrap_client(
    api: str,
    number: int,
    fn: Callable[..., Any],
    spm: Spm,
    tracer: Tracer,
    trap: Callable[[str, int], None] | None,
) -> Callable[..., Any]:
    """A client call's wrapper: its first argument (a handle, or psa_connect's SID) is traced."""
    enter = tracer.call_enter
    exit_ = tracer.api_exit
    if trap is None:

        def call(target: Any, *args: Any) -> Any:
            thread = spm.current.name
            enter(thread, api, target)
            result = fn(target, *args)
            exit_(thread, api, result)
            return result

    else:
        svc = trap

        def call(target: Any, *args: Any) -> Any:
            thread = spm.current.name
            enter(thread, api, target)
            svc(thread, number)
            result = fn(target, *args)
            exit_(thread, api, result)
            return result

    call.__name__ = api
    return call


def unwrapped(iface: Interface) -> bool:
    """True when ``iface`` is a bare interface, with no tracer wrapped around it."""
    return iface.tracer is None
