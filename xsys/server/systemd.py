"""The service manager's side of the daemon: systemd's readiness protocol and socket
activation, with the standard library only (no libsystemd).

- ``notify(state)`` sends one datagram such as ``"READY=1\\nSTATUS=serving"`` to
  ``$NOTIFY_SOCKET`` (a path, or an abstract name written ``@name``); it is a no-op
  returning False when the variable is unset (not run by systemd). Protocol:
  ``sd_notify(3)``.
- ``watchdog_interval_s()`` is ``$WATCHDOG_USEC`` in seconds when ``$WATCHDOG_PID`` is
  unset or this process's pid (``sd_watchdog_enabled(3)``); the daemon sends
  ``WATCHDOG=1`` at half of it.
- ``listen_sockets()`` takes the listening sockets systemd passed (``$LISTEN_FDS``
  descriptors from 3 on, when ``$LISTEN_PID`` is this process's pid;
  ``sd_listen_fds(3)``), unsets the variables so children do not inherit them, and
  returns them as ``socket.socket`` objects.

Every function is safe to call on any platform: without the variables it does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time

log = logging.getLogger(__name__)

#: The first descriptor systemd passes (``SD_LISTEN_FDS_START``).
SD_LISTEN_FDS_START = 3


def notify(*fields: str) -> bool:
    """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``...), newline-joined, to
    ``$NOTIFY_SOCKET``. Returns True when sent, False when there is no notify socket or the
    send failed (logged at debug: the service manager may be gone; never raises)."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or not hasattr(socket, "AF_UNIX"):
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    payload = "\n".join(fields).encode("utf-8", "replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(1.0)
            sock.connect(target)
            sock.sendall(payload)
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", address, exc)
        return False
    return True


def monotonic_usec() -> int:
    """``CLOCK_MONOTONIC`` in microseconds, for ``MONOTONIC_USEC=`` with ``RELOADING=1``
    (systemd 253+ checks it against its own clock)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval_s() -> float | None:
    """The watchdog interval systemd expects pings within (``$WATCHDOG_USEC``, in
    seconds), or None when the watchdog is off or meant for another pid."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000


def listen_sockets() -> list[socket.socket]:
    """The listening sockets passed by socket activation, in order, or ``[]``.

    Reads ``$LISTEN_PID`` (must be this process), ``$LISTEN_FDS`` (count) and, for the
    log, ``$LISTEN_FDNAMES``; then removes the three variables. Each descriptor is marked
    close-on-exec and wrapped with ``socket.socket(fileno=fd)`` (family and type read from
    the descriptor). Raises ``ValueError`` when a passed descriptor is not a socket."""
    pid = os.environ.get("LISTEN_PID", "")
    count = os.environ.get("LISTEN_FDS", "")
    names = os.environ.get("LISTEN_FDNAMES", "")
    if not pid or not count:
        return []
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    if not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return []
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        os.set_inheritable(fd, False)
        try:
            sockets.append(socket.socket(fileno=fd))
        except OSError as exc:
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.detach()
            raise ValueError(f"socket activation: descriptor {fd} is not a socket: {exc}") \
                from exc
    log.info("socket activation: %d listening socket(s) passed%s", len(sockets),
             f" ({names})" if names else "")
    return sockets
