"""xsys: a local system daemon serving metrics, file operations, file-change events and
alerts over a length-prefixed msgpack protocol (see docs/protocol.md)."""

from xsys.protocol import (
    AlreadyExists,
    Conflict,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    NotFound,
    Overloaded,
    ParseError,
    PermissionDenied,
    TooLarge,
    Unauthorized,
    UntrustedServer,
    XsysError,
)

__version__ = "0.1.0"
PROTOCOL_VERSION = 1

__all__ = [
    "PROTOCOL_VERSION",
    "AlreadyExists",
    "Conflict",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "NotFound",
    "Overloaded",
    "ParseError",
    "PermissionDenied",
    "TooLarge",
    "Unauthorized",
    "UntrustedServer",
    "XsysError",
    "__version__",
]
