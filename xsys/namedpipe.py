"""Windows named pipes, the parts both ends share: the flags the daemon creates each pipe
instance with, the security descriptor (SDDL) that admits only the daemon's account,
SYSTEM and Administrators, and the identity (user SID, group SIDs, elevated
Administrator or not) of the process at the other end.

The constants and the pure functions (``server_open_mode``, ``server_pipe_mode``,
``client_open_flags``, ``pipe_sddl``, ``is_pipe_path``, ``check_pipe_name``,
``trusted_sids``, ``identity_trusted``) import and run on every platform, so they are
tested on Linux. The functions that ask Windows (``current_identity``,
``process_identity``) need pywin32 (the ``windows`` extra), loaded on first use, and
raise ``RuntimeError`` elsewhere.

Sources: CreateNamedPipeW, CreateFileW (``SECURITY_SQOS_PRESENT``), "Named Pipe Security
and Access Rights", "Security Descriptor String Format" and "Well-known SIDs" in the
Win32 documentation; asyncio's ``windows_events.PipeServer``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from xsys.protocol import Unauthorized

__all__ = [
    "ERROR_BROKEN_PIPE", "ERROR_FILE_NOT_FOUND", "ERROR_PIPE_BUSY",
    "FILE_FLAG_FIRST_PIPE_INSTANCE", "FILE_FLAG_OVERLAPPED", "PIPE_ACCESS_DUPLEX",
    "PIPE_BUFFER_BYTES", "PIPE_PREFIX", "PIPE_READMODE_BYTE",
    "PIPE_REJECT_REMOTE_CLIENTS", "PIPE_TYPE_BYTE", "PIPE_UNLIMITED_INSTANCES",
    "PIPE_WAIT", "SERVER_SID_ENV", "SID_ADMINISTRATORS", "SID_EVERYONE", "SID_SYSTEM",
    "Identity", "check_pipe_name", "client_open_flags", "current_identity",
    "identity_trusted", "is_pipe_path", "lookup_account_sid", "pipe_authorization_error",
    "pipe_sddl", "process_identity", "pywin32", "server_open_mode", "server_pipe_mode",
    "trusted_sids", "win_error",
]

# ----------------------------------------------------------------- Win32 constants
# (winbase.h / winnt.h / winerror.h; the same values pywin32 and _winapi export)

PIPE_ACCESS_DUPLEX = 0x00000003
FILE_FLAG_OVERLAPPED = 0x40000000
#: CreateNamedPipe fails (ERROR_ACCESS_DENIED) when an instance of the name exists already:
#: the daemon's first instance refuses a name another process squats on.
FILE_FLAG_FIRST_PIPE_INSTANCE = 0x00080000
PIPE_TYPE_BYTE = 0x00000000
PIPE_READMODE_BYTE = 0x00000000
PIPE_WAIT = 0x00000000
#: Refuse connections through SMB from other machines (Vista+).
PIPE_REJECT_REMOTE_CLIENTS = 0x00000008
PIPE_UNLIMITED_INSTANCES = 255
#: The in and out buffer size suggested for each instance (asyncio uses 8 KiB; frames
#: of results are often larger).
PIPE_BUFFER_BYTES = 64 * 1024

GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
OPEN_EXISTING = 3
#: With SECURITY_IDENTIFICATION, the client's CreateFile lets the server identify it but
#: never impersonate it (the default, SecurityImpersonation, would).
SECURITY_SQOS_PRESENT = 0x00100000
SECURITY_IDENTIFICATION = 0x00010000

ERROR_FILE_NOT_FOUND = 2
ERROR_ACCESS_DENIED = 5
ERROR_BROKEN_PIPE = 109
ERROR_PIPE_BUSY = 231
ERROR_NO_DATA = 232
ERROR_PIPE_NOT_CONNECTED = 233
ERROR_OPERATION_ABORTED = 995
ERROR_IO_INCOMPLETE = 996
ERROR_IO_PENDING = 997

# ----------------------------------------------------------------- well-known SIDs

SID_SYSTEM = "S-1-5-18"
SID_ADMINISTRATORS = "S-1-5-32-544"
SID_EVERYONE = "S-1-1-0"

#: Environment variable naming the SID (or account name) the daemon runs as, for clients
#: on Windows (``XSYS_SERVER_UID``'s counterpart).
SERVER_SID_ENV = "XSYS_SERVER_SID"

PIPE_PREFIX = "\\\\.\\pipe\\"
_SID_RE = re.compile(r"S-1-\d{1,15}(?:-\d{1,10}){0,15}")


def server_open_mode(first: bool) -> int:
    """``dwOpenMode`` of one daemon pipe instance: duplex, overlapped (the Proactor loop),
    and ``FILE_FLAG_FIRST_PIPE_INSTANCE`` on the first, so the daemon refuses to start on
    a name another process already serves (squatting) instead of sharing it."""
    mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED
    return mode | FILE_FLAG_FIRST_PIPE_INSTANCE if first else mode


def server_pipe_mode() -> int:
    """``dwPipeMode``: a byte stream (the protocol frames itself, as on a Unix socket),
    blocking mode (overlapped I/O does not block), remote clients rejected."""
    return PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS


def client_open_flags() -> int:
    """``dwFlagsAndAttributes`` of the client's CreateFile: overlapped (reads with a
    deadline), and the identification impersonation level, so a pipe server (a squatter
    included) may learn who connected but can never act as the client."""
    return FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION


def is_pipe_path(path: str) -> bool:
    """Whether ``path`` names a local named pipe (``\\\\.\\pipe\\...``, any case)."""
    return path[:len(PIPE_PREFIX)].lower() == PIPE_PREFIX


def check_pipe_name(path: str) -> str:
    """``path`` when it is a local pipe name the daemon can serve: ``\\\\.\\pipe\\`` and
    1..256 more characters. Raises ``ValueError`` naming the fix otherwise (a Unix
    socket path in ``server.socket`` on Windows, for example)."""
    name = path[len(PIPE_PREFIX):]
    if not is_pipe_path(path) or not name or len(name) > 256:
        raise ValueError(f"server.socket {path!r} is not a local named pipe name; on Windows "
                         f"use {PIPE_PREFIX}<name> (default {PIPE_PREFIX}xsys)")
    return path


def _check_sid(sid: str) -> str:
    if not _SID_RE.fullmatch(sid):
        raise ValueError(f"{sid!r} is not a SID string (S-1-...)")
    return sid


def pipe_sddl(owner_sid: str) -> str:
    """The security descriptor of every daemon pipe instance, in SDDL: a protected DACL
    (``P``: nothing inherited) granting generic all (``GA``) to SYSTEM (``SY``), the
    built-in Administrators (``BA``) and ``owner_sid`` (the daemon's account), and to no
    one else. Without it a pipe gets the default descriptor, which grants read to
    Everyone and Anonymous (the osquery bug). Raises ``ValueError`` when ``owner_sid`` is
    not a SID string (it is pasted into the SDDL)."""
    aces = ["(A;;GA;;;SY)", "(A;;GA;;;BA)"]
    if _check_sid(owner_sid) not in (SID_SYSTEM, SID_ADMINISTRATORS):
        aces.append(f"(A;;GA;;;{owner_sid})")
    return "D:P" + "".join(aces)


@dataclass(frozen=True)
class Identity:
    """A Windows process's identity from its access token: ``sid``, the user SID
    (``TokenUser``); ``group_sids``, its enabled groups (``TokenGroups``); ``is_admin``,
    whether BUILTIN\\Administrators is among them enabled (an elevated token: under UAC
    a filtered token holds it for deny only)."""

    sid: str
    group_sids: tuple[str, ...] = ()
    is_admin: bool = False


def trusted_sids(expected_sid: str | None, own_sid: str,
                 environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The user SIDs a client accepts as the daemon's on Windows: SYSTEM and
    ``expected_sid`` when given, else ``$XSYS_SERVER_SID`` when set (a SID; an account
    name is looked up on Windows), else ``own_sid`` (the client's own). Elevated
    Administrators are accepted as well (``identity_trusted``). Raises ``ValueError``
    for an unknown account or, off Windows, anything but a SID string."""
    if expected_sid is None:
        env = os.environ if environ is None else environ
        expected_sid = env.get(SERVER_SID_ENV, "").strip() or None
    return frozenset({SID_SYSTEM, lookup_account_sid(expected_sid or own_sid)})


def identity_trusted(identity: Identity, sids: Iterable[str]) -> bool:
    """Whether ``identity`` runs as one of ``sids`` or as an elevated Administrator:
    the accounts the daemon admits (own SID, SYSTEM, Administrators) and the servers a
    client trusts."""
    return identity.is_admin or identity.sid in set(sids)


def pipe_authorization_error(pid: int | None, sid: str | None, is_admin: bool,
                             own_sid: str) -> Unauthorized | None:
    """Why the pipe client ``pid`` running as ``sid`` may not use a daemon running as
    ``own_sid`` (-32006), or None: the daemon admits its own account, SYSTEM and elevated
    Administrators (the accounts the pipe's DACL lets open it; this check is the second
    line behind it). A client whose token could not be read (``sid`` None) is refused."""
    if sid is None:
        return Unauthorized(
            f"the identity of the pipe client (pid {pid}) could not be read; refusing it",
            {"pid": pid})
    if identity_trusted(Identity(sid, (), is_admin), (own_sid, SID_SYSTEM)):
        return None
    return Unauthorized(
        f"user {sid} (pid {pid}) is not allowed to use this daemon: only its own account "
        f"({own_sid}), SYSTEM and elevated Administrators are", {"pid": pid, "sid": sid})


# ----------------------------------------------------------------- asking Windows
# pywin32 (the ``windows`` extra), loaded on first use so this module imports everywhere.

_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_SE_GROUP_ENABLED = 0x00000004
_SE_GROUP_USE_FOR_DENY_ONLY = 0x00000010
_PYWIN32 = ("pywintypes", "win32api", "win32event", "win32file", "win32pipe",
            "win32security")


def pywin32() -> Any:
    """pywin32's modules (``pywintypes``, ``win32api``, ``win32event``, ``win32file``,
    ``win32pipe``, ``win32security``) as attributes of one namespace. Raises
    ``RuntimeError`` off Windows or when pywin32 is missing (``pip install
    xsys[windows]``)."""
    if sys.platform != "win32":
        raise RuntimeError("named pipes exist only on Windows")
    try:
        return types.SimpleNamespace(
            **{name: importlib.import_module(name) for name in _PYWIN32})
    except ImportError as exc:
        raise RuntimeError(f"named pipes need pywin32 (pip install 'xsys[windows]'): "
                           f"{exc}") from None


def win_error(exc: Any, filename: str | None = None) -> OSError:
    """The ``OSError`` for a ``pywintypes.error`` (``winerror``, ``funcname``,
    ``strerror``): on Windows the subclass follows the code (ERROR_FILE_NOT_FOUND ->
    ``FileNotFoundError``, ERROR_BROKEN_PIPE -> ``BrokenPipeError``...)."""
    code = int(getattr(exc, "winerror", 0) or 0)
    text = str(getattr(exc, "strerror", "") or exc)
    return OSError(0, f"{getattr(exc, 'funcname', '') or 'Windows'}: {text}", filename, code)


def _token_identity(w: Any, token: Any) -> Identity:
    user_sid, _attrs = w.win32security.GetTokenInformation(token, w.win32security.TokenUser)
    groups = []
    for sid, attrs in w.win32security.GetTokenInformation(token, w.win32security.TokenGroups):
        if attrs & _SE_GROUP_ENABLED and not attrs & _SE_GROUP_USE_FOR_DENY_ONLY:
            groups.append(str(w.win32security.ConvertSidToStringSid(sid)))
    return Identity(str(w.win32security.ConvertSidToStringSid(user_sid)), tuple(groups),
                    SID_ADMINISTRATORS in groups)


def current_identity() -> Identity:
    """The identity of this process (its primary token). Raises ``RuntimeError`` off
    Windows and ``OSError`` when the token cannot be read."""
    w = pywin32()
    try:
        token = w.win32security.OpenProcessToken(w.win32api.GetCurrentProcess(),
                                                 w.win32security.TOKEN_QUERY)
        try:
            return _token_identity(w, token)
        finally:
            token.Close()
    except w.pywintypes.error as exc:
        raise win_error(exc) from None


def process_identity(pid: int) -> Identity | None:
    """The identity of process ``pid`` (OpenProcess with PROCESS_QUERY_LIMITED_INFORMATION,
    OpenProcessToken, TokenUser/TokenGroups), or None when it cannot be read (the process
    is gone, or this process may not query its token). Raises ``RuntimeError`` off
    Windows."""
    w = pywin32()
    try:
        process = w.win32api.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    except w.pywintypes.error:
        return None
    try:
        token = w.win32security.OpenProcessToken(process, w.win32security.TOKEN_QUERY)
        try:
            return _token_identity(w, token)
        finally:
            token.Close()
    except w.pywintypes.error:
        return None
    finally:
        process.Close()


def lookup_account_sid(name: str) -> str:
    """The SID string of account ``name`` (``DOMAIN\\user`` or ``user``), or ``name``
    itself when it already is a SID string. Raises ``ValueError`` for an unknown account
    (off Windows: for anything but a SID string)."""
    if _SID_RE.fullmatch(name):
        return name
    if sys.platform != "win32":
        raise ValueError(f"{name!r} is not a SID string (S-1-...); account names are looked "
                         "up only on Windows")
    w = pywin32()
    try:
        sid, _domain, _kind = w.win32security.LookupAccountName(None, name)
    except w.pywintypes.error:
        raise ValueError(f"{name!r} is neither a SID nor a known account") from None
    return str(w.win32security.ConvertSidToStringSid(sid))
