"""The per-target outbox of push mode: encoded messages waiting to be sent, in ``seq``
order, bounded in count and in bytes. When full, the oldest snapshot goes first; alerts
are dropped only when nothing but alerts is left. Every drop is counted."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Outgoing:
    """One encoded message: ``seq`` (per target), ``kind`` (``snapshot``, ``alert``),
    ``frame`` (``str`` for text frames, ``bytes`` for binary ones)."""

    seq: int
    kind: str
    frame: str | bytes

    @property
    def size_bytes(self) -> int:
        """Bytes the message holds (its encoded length)."""
        return len(self.frame)


class Outbox:
    """A FIFO of ``Outgoing`` bounded by ``max_messages`` and ``max_bytes``.

    ``put`` returns how many messages it dropped to make room (0 normally); ``peek`` is
    the next one to send, ``pop`` removes it after a successful send. ``dropped``: the
    total dropped; ``bytes``: the encoded bytes held."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.bytes = 0
        self.dropped = 0
        self._items: deque[Outgoing] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Outgoing]:
        return iter(self._items)

    def put(self, item: Outgoing) -> int:
        """Append ``item`` (its ``seq`` above every held one); drop what the bounds need,
        oldest snapshot first, then oldest alert; an item larger than ``max_bytes`` on its
        own is dropped itself. Returns the count dropped."""
        if item.size_bytes > self.max_bytes:
            self.dropped += 1
            return 1
        self._items.append(item)
        self.bytes += item.size_bytes
        dropped = 0
        while len(self._items) > self.max_messages or self.bytes > self.max_bytes:
            self._drop_one()
            dropped += 1
        self.dropped += dropped
        return dropped

    def _drop_one(self) -> None:
        """Remove the oldest message that is not an alert (the oldest alert when all are)."""
        items = self._items
        for index, held in enumerate(items):
            if held.kind != "alert":
                del items[index]
                self.bytes -= held.size_bytes
                return
        held = items.popleft()
        self.bytes -= held.size_bytes

    def peek(self) -> Outgoing | None:
        """The next message to send, or None."""
        return self._items[0] if self._items else None

    def pop(self) -> None:
        """Forget the message ``peek`` returned (it was sent)."""
        held = self._items.popleft()
        self.bytes -= held.size_bytes

    def extend(self, items: Iterable[Outgoing]) -> None:
        """Put every item of ``items`` (in order), counting drops."""
        for item in items:
            self.put(item)
