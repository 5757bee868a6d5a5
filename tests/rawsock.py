"""A raw socket speaking frames by hand, for malformed-input tests."""

from __future__ import annotations

import socket
import struct
from typing import Any

import msgpack

from xsys.protocol import FrameDecoder


class Raw:
    """Connect to ``path``; ``send_bytes``/``send_msg`` and ``recv_msg`` (None on EOF)."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.dec = FrameDecoder()
        self.ready: list[bytes] = []

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_payload(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def send_msg(self, msg: Any) -> None:
        self.send_payload(msgpack.packb(msg, use_bin_type=True))

    def recv_msg(self) -> Any:
        while not self.ready:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.ready += self.dec.feed(data)
        return msgpack.unpackb(self.ready.pop(0), raw=False, strict_map_key=False)

    def closed_by_peer(self) -> bool:
        """True when the server closed the connection (EOF or reset)."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()
