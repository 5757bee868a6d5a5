"""Which daemon a client talks to: the uids it trusts, and the two checks both clients
make before sending a byte (the socket file's owner before connecting; the accepting
process's credentials, ``SO_PEERCRED``, after). On Windows: the SIDs it trusts and one
check, the pipe server's process (``GetNamedPipeServerProcessId``) and its token's user
SID, before sending a byte. Raises ``UntrustedServer``.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from collections.abc import Mapping
from typing import Any

from xsys.namedpipe import (
    SERVER_SID_ENV,
    current_identity,
    identity_trusted,
    process_identity,
    pywin32,
    trusted_sids,
)
from xsys.protocol import UntrustedServer

__all__ = ["SERVER_SID_ENV", "SERVER_UID_ENV", "UntrustedServer", "check_peer",
           "check_pipe_server", "check_socket_owner", "trusted_server_sids",
           "trusted_server_uids", "untrusted"]

#: Environment variable naming the uid (or user name) the daemon runs as.
SERVER_UID_ENV = "XSYS_SERVER_UID"
_PEERCRED = struct.Struct("3i")


def trusted_server_uids(expected_uid: int | None = None,
                        environ: Mapping[str, str] | None = None,
                        ) -> frozenset[int] | None:
    """The uids a client accepts as the daemon's: root and ``expected_uid`` when given,
    else root and ``$XSYS_SERVER_UID`` (a uid or a user name) when set, else root and
    the client's own effective uid. None where the platform has no uids (Windows: no
    check). Raises ``ValueError`` for an unknown user name."""
    if not hasattr(os, "geteuid"):
        return None
    if expected_uid is None:
        env = os.environ if environ is None else environ
        named = env.get(SERVER_UID_ENV, "").strip()
        if named.isdigit():
            expected_uid = int(named)
        elif named:
            import pwd

            try:
                expected_uid = pwd.getpwnam(named).pw_uid
            except KeyError:
                raise ValueError(f"{SERVER_UID_ENV}={named!r} is neither a uid nor a known "
                                 "user name") from None
    return frozenset({0, os.geteuid() if expected_uid is None else expected_uid})


def untrusted(path: str, uid: int, trusted: frozenset[int], check: str,
              pid: int | None = None) -> UntrustedServer:
    """The refusal for ``uid`` found by ``check`` (``socket_owner``/``peer_credentials``)."""
    what = "the socket file is owned by" if check == "socket_owner" else \
        f"the process answering on it (pid {pid}) runs as"
    data: dict[str, Any] = {"socket": path, "uid": uid, "expected_uids": sorted(trusted),
                            "check": check}
    if pid is not None:
        data["pid"] = pid
    return UntrustedServer(
        f"refusing to talk to {path}: {what} uid {uid}, not a trusted uid "
        f"({', '.join(map(str, sorted(trusted)))}); another user may be impersonating the "
        f"xsys daemon (if it runs as another user, pass expected_uid or set "
        f"{SERVER_UID_ENV})", data)


def check_socket_owner(path: str, trusted: frozenset[int] | None) -> None:
    """Refuse ``path`` before connecting when its socket file (symlinks followed, as
    ``connect`` does) belongs to an untrusted uid. A missing or unreadable path is left
    to ``connect`` to report. Raises ``UntrustedServer``."""
    if trusted is None or path.startswith("\0"):  # no uids, or an abstract socket
        return
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return
    if uid not in trusted:
        raise untrusted(path, uid, trusted, "socket_owner")


def check_peer(sock: socket.socket, path: str, trusted: frozenset[int] | None) -> None:
    """Refuse a connected socket whose peer (``SO_PEERCRED``, Linux) runs as an untrusted
    uid: unlike the file owner, this cannot be raced. Raises ``UntrustedServer``."""
    if trusted is None or not hasattr(socket, "SO_PEERCRED"):
        return
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, _gid = _PEERCRED.unpack(raw)
    if uid not in trusted:
        raise untrusted(path, uid, trusted, "peer_credentials", pid)


def trusted_server_sids(expected_sid: str | None = None,
                        environ: Mapping[str, str] | None = None,
                        ) -> frozenset[str] | None:
    """Windows: the user SIDs a client accepts as the daemon's: SYSTEM and
    ``expected_sid`` when given, else ``$XSYS_SERVER_SID`` (a SID or an account name)
    when set, else the client's own; elevated Administrators are accepted too
    (``check_pipe_server``). None elsewhere (Unix uses ``trusted_server_uids``). Raises
    ``ValueError`` for an unknown account."""
    if sys.platform != "win32":
        return None
    return trusted_sids(expected_sid, current_identity().sid, environ)


def check_pipe_server(handle: int, path: str, sids: frozenset[str] | None) -> None:
    """Refuse the pipe ``handle`` (connected, nothing sent) unless the process serving it
    (``GetNamedPipeServerProcessId``) runs as one of ``sids`` or as an elevated
    Administrator; a server whose token cannot be read is refused too. ``sids`` None: no
    check. Raises ``UntrustedServer`` (``data.check = "pipe_server"``)."""
    if sids is None:
        return
    w = pywin32()
    try:
        pid: int | None = int(w.win32pipe.GetNamedPipeServerProcessId(handle))
    except w.pywintypes.error:
        pid = None
    identity = process_identity(pid) if pid is not None else None
    if identity is not None and identity_trusted(identity, sids):
        return
    sid = identity.sid if identity is not None else None
    expected = ", ".join(sorted(sids))
    what = f"runs as {sid}" if sid is not None else "could not be identified"
    raise UntrustedServer(
        f"refusing to talk to {path}: the process serving it (pid {pid}) {what}, not a "
        f"trusted account ({expected} or an elevated Administrator); another user may be "
        f"impersonating the xsys daemon (if it runs as another account, pass expected_sid "
        f"or set {SERVER_SID_ENV})",
        {"socket": path, "sid": sid, "expected_sids": sorted(sids), "check": "pipe_server",
         "pid": pid})
