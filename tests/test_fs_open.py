"""``fs.open``: descriptors passed over a real daemon's Unix socket (SCM_RIGHTS). The
descriptor refers to the file the daemon checked even when the path is swapped right
after; ``wb`` is an atomic replace on close, discarded on error or disconnect; the
sandbox and the file checks hold as for fs.read / fs.write."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fswatch_support import shared_daemon, workdir
from xsys.client.aio import AsyncClient
from xsys.protocol import Conflict, NotFound, PermissionDenied

__all__ = ["shared_daemon", "workdir"]  # fixtures used by this module


def test_read_descriptor_is_the_checked_file_even_after_a_swap(shared_daemon: Any,
                                                               workdir: Path) -> None:
    target = workdir / "data.bin"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    target.write_bytes(payload)
    (workdir.parent.parent / "secret.txt").write_text("outside the root")
    with shared_daemon.client() as c:
        f = c.fs.open(str(target))
        with f:
            # swap the path for a symlink to an outside file, and then for other content
            target.rename(workdir / "moved.bin")
            os.symlink(workdir.parent.parent / "secret.txt", target)
            assert f.read() == payload  # still the inode the daemon checked
            os.fstat(f.fileno())  # a real descriptor in this process
        with pytest.raises(PermissionDenied):  # the swapped path now points outside
            c.fs.open(str(target))
        assert c.call("rpc.ping")["pong"] is True  # the connection goes on after fds
        # several in a row on one connection: each answer with its own descriptor
        os.unlink(target)
        for i in range(5):
            (workdir / f"n{i}").write_bytes(b"%d" % i)
        files = [c.fs.open(str(workdir / f"n{i}")) for i in range(5)]
        assert [g.read() for g in files] == [b"%d" % i for i in range(5)]
        for g in files:
            g.close()


def test_read_refusals(shared_daemon: Any, workdir: Path) -> None:
    os.mkfifo(workdir / "fifo")
    with shared_daemon.client() as c:
        with pytest.raises(Conflict):
            c.fs.open(str(workdir))  # a directory
        with pytest.raises(Conflict) as exc:
            c.fs.open(str(workdir / "fifo"))  # never blocks a worker
        assert exc.value.data["reason"] == "not_regular_file"
        with pytest.raises(PermissionDenied):
            c.fs.open("/etc/passwd")
        with pytest.raises(Exception):  # noqa: B017 - InvalidParams for a bad mode
            c.call("fs.open", path=str(workdir / "x"), mode="r+")
        assert c.call("rpc.ping")["pong"] is True


def test_write_is_atomic_on_close_and_discarded_otherwise(shared_daemon: Any,
                                                          workdir: Path) -> None:
    target = workdir / "out.txt"
    target.write_text("old")
    target.chmod(0o640)
    with shared_daemon.client() as c:
        with c.fs.open(str(target), "wb") as f:
            f.write(b"new content")
            f.flush()
            assert target.read_text() == "old"  # nothing visible before close
        assert target.read_bytes() == b"new content"
        assert oct(target.stat().st_mode & 0o777) == oct(0o640)  # mode kept
        with pytest.raises(RuntimeError), c.fs.open(str(target), "wb") as f:
            f.write(b"half")
            raise RuntimeError("abandon")
        assert target.read_bytes() == b"new content"
        with c.fs.open(str(workdir / "fresh.bin"), "wb") as f:
            f.write(os.urandom(10))
        assert (workdir / "fresh.bin").stat().st_size == 10
        os.link(target, workdir / "hard")
        with pytest.raises(PermissionDenied) as exc:
            c.fs.open(str(target), "wb")
        assert exc.value.data["reason"] == "hardlinked"
    # a connection that ends with a handle open: nothing replaced, no litter
    with shared_daemon.client() as c:
        f = c.fs.open(str(workdir / "fresh.bin"), "wb")
        f.write(b"never committed")
        f.flush()
    with shared_daemon.client() as c:
        c.call("rpc.ping")
    assert (workdir / "fresh.bin").stat().st_size == 10
    assert sorted(os.listdir(workdir)) == ["fresh.bin", "hard", "out.txt"]


def test_async_client_open(shared_daemon: Any, workdir: Path) -> None:
    (workdir / "a.txt").write_bytes(b"async bytes")

    async def main() -> bytes:
        async with AsyncClient(shared_daemon.socket) as c:
            f = await c.fs.open(str(workdir / "a.txt"))
            with f:
                return f.read()

    assert asyncio.run(main()) == b"async bytes"


def test_handles_and_streams_belong_to_their_connection(shared_daemon: Any,
                                                        workdir: Path) -> None:
    """Another connection (another peer, for all it knows) cannot commit, drop, ack or
    feed what one connection opened: handles and stream ids are looked up per connection."""
    target = workdir / "t.txt"
    target.write_text("orig")
    with shared_daemon.client() as a, shared_daemon.client() as b:
        f = a.fs.open(str(target), "wb")
        f.write(b"from a")
        f.flush()
        for handle in range(1, 4):  # the ids a guesses would be: small integers
            with pytest.raises(NotFound):
                b.call("fs.close", handle=handle, commit=True)
        with pytest.raises(NotFound):
            b.call("fs.ack", request=1, offset=1 << 40)
        with pytest.raises(NotFound):
            b.call("fs.write_chunk", request=1, offset=0, data=b"from b", eof=True)
        assert target.read_text() == "orig"
        f.close()
    assert target.read_bytes() == b"from a"
