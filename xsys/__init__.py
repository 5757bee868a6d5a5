"""xsys: a local system daemon serving metrics, file operations, file-change events and
alerts over a length-prefixed msgpack protocol (see docs/protocol.md).

Every exception the protocol names is importable from here (``from xsys import
DaemonNotRunning, NotFound``); they live in ``xsys.protocol`` and are loaded on first use
(PEP 562), so ``import xsys`` stays light (no msgpack) for the CLI's start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xsys.protocol import (
        AlreadyExists,
        Conflict,
        ConnectionClosed,
        DaemonNotRunning,
        FrameTooLarge,
        InternalError,
        InvalidParams,
        InvalidRequest,
        MethodNotFound,
        NotFound,
        Overloaded,
        ParseError,
        PermissionDenied,
        TooLarge,
        TooManyObjects,
        Unauthorized,
        UntrustedServer,
        XsysError,
    )

__version__ = "0.1.0"
PROTOCOL_VERSION = 1

#: The exceptions re-exported from ``xsys.protocol``.
_EXCEPTIONS = frozenset({
    "AlreadyExists",
    "Conflict",
    "ConnectionClosed",
    "DaemonNotRunning",
    "FrameTooLarge",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "NotFound",
    "Overloaded",
    "ParseError",
    "PermissionDenied",
    "TooLarge",
    "TooManyObjects",
    "Unauthorized",
    "UntrustedServer",
    "XsysError",
})


def __getattr__(name: str) -> Any:
    """``xsys.NotFound`` and the other exceptions: imported from ``xsys.protocol`` on
    first use. Raises ``AttributeError`` for any other name."""
    if name in _EXCEPTIONS:
        from xsys import protocol

        value = getattr(protocol, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xsys' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXCEPTIONS])


__all__ = [
    "PROTOCOL_VERSION",
    "AlreadyExists",
    "Conflict",
    "ConnectionClosed",
    "DaemonNotRunning",
    "FrameTooLarge",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "NotFound",
    "Overloaded",
    "ParseError",
    "PermissionDenied",
    "TooLarge",
    "TooManyObjects",
    "Unauthorized",
    "UntrustedServer",
    "XsysError",
    "__version__",
]
