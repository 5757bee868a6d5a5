"""The ``fs`` config section (``FsConfig``): sandbox roots and size limits. Owned by
``xsys.fs``; ground level (imports only the standard library), so ``xsys.config``
assembles it into the root tree without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from xsys.bounds import at_least


@dataclass(frozen=True)
class FsConfig:
    """The fs namespace: sandbox roots and size limits.

    Every path a request names is resolved (``..``, symlinks) and must land inside one of
    ``roots``; anything else is refused with -32002 (permission_denied).
    """

    roots: tuple[str, ...] = ()
    """Directories file operations are confined to; empty = home dir and system temp dir.
    Each root is itself resolved with realpath when the daemon starts (a root may be a
    symlink)."""
    max_read_bytes: int = 64 * 1024 * 1024
    """Most bytes one ``fs.read`` returns (also capped by ``server.max_frame_bytes``);
    above it the request fails with -32004 (too_large): read in pieces with offset/length."""
    max_list_entries: int = 10_000
    """Most entries one ``fs.list`` or ``fs.find`` returns; the ``limit`` parameter is
    clamped to it and ``truncated`` tells when more exist."""
    max_write_bytes: int = 64 * 1024 * 1024
    """Most bytes one ``fs.write`` accepts (-32004 above)."""
    chunk_bytes: int = 1024 * 1024
    """I/O chunk size for streamed reads, writes, copies and hashes (bytes)."""
    max_tail_lines: int = 10_000
    """Most lines one ``fs.tail`` returns."""
    max_extract_bytes: int = 4 * 1024 * 1024 * 1024
    """Most bytes of file content one ``fs.extract`` writes (the sum of the members'
    sizes, and the bytes actually written): above it the extract fails with -32004
    (``reason: "max_extract_bytes"``) and leaves nothing behind (no zip bombs)."""
    max_extract_members: int = 50_000
    """Most members one ``fs.extract`` accepts (-32004, ``reason:
    "max_extract_members"``, nothing written)."""
    allow_hardlinked_writes: bool = False
    """Allow ``fs.write`` over, and ``fs.chmod`` of, a regular file with more than one hard
    link (such a file may also be reachable from outside the roots); refused with -32002
    (``reason: "hardlinked"``) by default."""

    def validate(self) -> None:
        """Raise ``ValueError`` when a limit is not positive or a root is empty."""
        at_least(self, ("max_read_bytes", "max_list_entries", "max_write_bytes",
                        "chunk_bytes", "max_tail_lines", "max_extract_bytes",
                        "max_extract_members"), 0, strictly=True)
        for i, root in enumerate(self.roots):
            if not root.strip():
                raise ValueError(f"roots[{i}]: must be a non-empty path")
