"""The outcome of a request, as workerd's ``io/outcome.capnp``.

Every request ends with exactly one outcome; logs, tail events, metrics and
error pages carry it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Outcome"]


class Outcome(StrEnum):
    OK = "ok"
    """The worker returned a response (whatever its status)."""
    EXCEPTION = "exception"
    """The handler raised, or wasm trapped (500)."""
    EXCEEDED_CPU = "exceeded_cpu"
    """The request used up ``limits.cpu_ms`` of wasm CPU (503)."""
    EXCEEDED_MEMORY = "exceeded_memory"
    """The request's wasm memory reached ``limits.memory_mb`` and the guest failed (503)."""
    OVERLOADED = "overloaded"
    """The node had no room for another wasm instance (503; retry)."""
    CANCELED = "canceled"
    """The client went away before the response was sent."""
    REFUSED = "refused"
    """The request was refused before the worker ran (e.g. 413 body too large)."""
    LOAD_ERROR = "load_error"
    """The worker could not be loaded (its last good version, if any, keeps serving)."""
