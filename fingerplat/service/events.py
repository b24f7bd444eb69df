"""In-process change events: published after a change commits.

Subscribers (read caches, IRC announcements, the PostgreSQL NOTIFY bridge)
must not slow the writer down or break it, so each is called in its own
task-free try block and failures are only logged.

Other nodes learn of a change from a NOTIFY sent *inside* the writing
transaction (SPEC 12): when a :class:`TransactionalSender` is set on the bus
(by the event bridge of ``serve``, or ``send_to_nodes`` in the CLI), the
service sends each event's NOTIFY with the change, so PostgreSQL delivers it
exactly if and when the change commits, even if this process dies right
after the commit. Such events are then published here with
``notified=True`` (:func:`already_notified` tells a subscriber), so the
bridge does not send them a second time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

from fingerplat.domain.model import ChangeEvent

log = logging.getLogger(__name__)

Subscriber = Callable[[ChangeEvent], Awaitable[None] | None]

_notified: ContextVar[bool] = ContextVar("fingerplat_event_notified", default=False)


def already_notified() -> bool:
    """Inside a subscriber: whether the event being published was already sent
    to the other nodes in its writing transaction."""
    return _notified.get()


@dataclass(frozen=True, slots=True)
class TransactionalSender:
    """How to NOTIFY other nodes of an event inside the writing transaction."""

    channel: str
    payload: Callable[[ChangeEvent], str]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        # Set while events should reach other nodes (PostgreSQL); see module doc.
        self.transactional: TransactionalSender | None = None

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it again."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    async def publish(self, event: ChangeEvent, *, notified: bool = False) -> None:
        """Call every subscriber; ``notified``: other nodes have it already."""
        marker = _notified.set(notified)
        try:
            for subscriber in list(self._subscribers):
                try:
                    result = subscriber(event)
                    if result is not None:
                        await result
                except Exception:
                    log.exception("change event subscriber failed for %s", event.kind)
        finally:
            _notified.reset(marker)
