"""The client's byte stream on Windows: the daemon's named pipe, opened with CreateFile
(overlapped, identification-only impersonation level: the pipe server may identify the
client but never act as it), and ``PipeStream``, the socket-like object the blocking
client reads and writes (``sendall``, ``recv``, ``recv_into``, ``setblocking``,
``close``, and ``wait_readable`` in place of ``poll``). Everywhere else the clients use a
Unix socket and nothing here.

Reads are overlapped: ``wait_readable(timeout)`` starts one ``ReadFile`` and waits for
its event at most ``timeout`` seconds; an unfinished read stays pending (its buffer
owned here) and the next ``recv`` or ``wait_readable`` picks it up, so a call's deadline
never loses bytes. Writes wait for their completion. The module imports everywhere;
pywin32 is loaded when a pipe is opened.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from xsys.namedpipe import (
    ERROR_BROKEN_PIPE,
    ERROR_IO_INCOMPLETE,
    ERROR_NO_DATA,
    ERROR_PIPE_BUSY,
    ERROR_PIPE_NOT_CONNECTED,
    GENERIC_READ,
    GENERIC_WRITE,
    OPEN_EXISTING,
    client_open_flags,
    pywin32,
    win_error,
)

__all__ = ["PipeStream", "open_pipe", "try_open_pipe"]

#: Bytes one overlapped read asks for.
READ_BYTES = 256 * 1024
_EOF_ERRORS = (ERROR_BROKEN_PIPE, ERROR_PIPE_NOT_CONNECTED, ERROR_NO_DATA)
_WAIT_TIMEOUT = 0x102


def try_open_pipe(path: str) -> int | None:
    """A client handle (an int the caller owns) to the pipe ``path``, or None while all
    its instances are busy (``ERROR_PIPE_BUSY``). Raises ``FileNotFoundError`` when no one
    serves ``path``, ``OSError`` otherwise, ``RuntimeError`` off Windows."""
    w = pywin32()
    try:
        handle = w.win32file.CreateFile(path, GENERIC_READ | GENERIC_WRITE, 0, None,
                                        OPEN_EXISTING, client_open_flags(), None)
    except w.pywintypes.error as exc:
        if exc.winerror == ERROR_PIPE_BUSY:
            return None
        raise win_error(exc, path) from None
    return int(handle.Detach())


def open_pipe(path: str, timeout_s: float | None) -> int:
    """``try_open_pipe``, waiting (``WaitNamedPipe``, blocking) up to ``timeout_s``
    seconds (None: no limit) for a free instance. Raises ``TimeoutError`` when none
    came, and what ``try_open_pipe`` raises."""
    w = pywin32()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        handle = try_open_pipe(path)
        if handle is not None:
            return handle
        remaining = 1.0 if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"every instance of {path} stayed busy for {timeout_s}s")
        # timed out, or the name went away: the next CreateFile tells
        with contextlib.suppress(w.pywintypes.error):
            w.win32pipe.WaitNamedPipe(path, max(1, int(min(remaining, 1.0) * 1000)))


class PipeStream:
    """A connected client pipe handle with the socket methods the blocking client uses
    (see the module docstring). ``handle``: the raw handle (for
    ``GetNamedPipeServerProcessId``). Errors are ``OSError`` (``BrokenPipeError`` once
    the daemon is gone, ``BlockingIOError`` for a non-blocking read with nothing
    ready)."""

    def __init__(self, handle: int, path: str) -> None:
        w = self._w = pywin32()
        self.handle = handle
        self.path = path
        self._read_ov: Any = w.pywintypes.OVERLAPPED()
        self._read_ov.hEvent = w.win32event.CreateEvent(None, True, False, None)
        self._write_ov: Any = w.pywintypes.OVERLAPPED()
        self._write_ov.hEvent = w.win32event.CreateEvent(None, True, False, None)
        self._buf: Any = w.win32file.AllocateReadBuffer(READ_BYTES)
        self._pending = False  # an overlapped read is in flight into _buf
        self._data = memoryview(b"")  # bytes read and not yet returned
        self._eof = False
        self._blocking = True
        self._closed = False

    # ------------------------------------------------------------------ reads

    def _start_read(self) -> None:
        w = self._w
        try:
            w.win32file.ReadFile(self.handle, self._buf, self._read_ov)
        except w.pywintypes.error as exc:
            if exc.winerror in _EOF_ERRORS:
                self._eof = True
                return
            raise win_error(exc, self.path) from None
        self._pending = True  # done at once or ERROR_IO_PENDING: the event tells

    def _finish_read(self, wait: bool) -> bool:
        """Collect the pending read; False when it is still running (``wait`` False)."""
        w = self._w
        try:
            n = int(w.win32file.GetOverlappedResult(self.handle, self._read_ov, wait))
        except w.pywintypes.error as exc:
            if exc.winerror == ERROR_IO_INCOMPLETE:
                return False
            self._pending = False
            if exc.winerror in _EOF_ERRORS:
                self._eof = True
                return True
            raise win_error(exc, self.path) from None
        self._pending = False
        self._data = memoryview(bytes(memoryview(self._buf)[:n]))
        return True

    def _fill(self, wait: bool) -> bool:
        """Make bytes (or EOF) ready; False when none are and ``wait`` is False."""
        while not self._data and not self._eof:
            if not self._pending:
                self._start_read()
                continue
            if not self._finish_read(wait):
                return False
        return True

    def wait_readable(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` seconds for bytes or EOF; False when the wait ran out
        (a started read stays pending)."""
        if self._data or self._eof:
            return True
        if not self._pending:
            self._start_read()
            if self._eof:
                return True
        w = self._w
        ms = max(0, min(int(timeout_s * 1000), 0x7FFFFFFE))
        if w.win32event.WaitForSingleObject(self._read_ov.hEvent, ms) == _WAIT_TIMEOUT:
            return False
        return self._fill(wait=False)

    def recv_into(self, buffer: bytearray | memoryview) -> int:
        """Copy up to ``len(buffer)`` bytes into ``buffer``; 0 at EOF. Blocks unless
        ``setblocking(False)`` (then ``BlockingIOError`` when nothing is ready)."""
        if not self._fill(wait=self._blocking):
            raise BlockingIOError(f"no bytes ready on {self.path}")
        n = min(len(buffer), len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` at EOF (blocking as ``recv_into``)."""
        out = bytearray(size)
        return bytes(out[:self.recv_into(out)])

    def setblocking(self, flag: bool) -> None:
        """Whether reads wait (writes always do)."""
        self._blocking = flag

    # ------------------------------------------------------------------ writes

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data``, waiting for each overlapped write. Raises
        ``BrokenPipeError`` when the daemon closed the pipe."""
        w = self._w
        view = memoryview(data)
        while view:
            try:
                w.win32file.WriteFile(self.handle, view, self._write_ov)
                n = int(w.win32file.GetOverlappedResult(self.handle, self._write_ov, True))
            except w.pywintypes.error as exc:
                raise win_error(exc, self.path) from None
            view = view[n:]

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Close the handle (which cancels a pending read) and wait, up to a second, for
        that read to end before closing its event; ``_buf`` and the ``OVERLAPPED``s live
        as long as this object, so the kernel never writes into freed memory.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        w = self._w
        with contextlib.suppress(w.pywintypes.error):
            w.win32file.CancelIo(self.handle)
        w.win32file.CloseHandle(self.handle)
        if self._pending:
            w.win32event.WaitForSingleObject(self._read_ov.hEvent, 1000)
            self._pending = False
        for ov in (self._read_ov, self._write_ov):
            ov.hEvent.Close()
