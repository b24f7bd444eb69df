"""In-process change events: published after a change commits.

Subscribers (read caches, IRC announcements, the PostgreSQL NOTIFY bridge)
must not slow the writer down or break it, so each is called in its own
task-free try block and failures are only logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fingerplat.domain.model import ChangeEvent

log = logging.getLogger(__name__)

Subscriber = Callable[[ChangeEvent], Awaitable[None] | None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it again."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    async def publish(self, event: ChangeEvent) -> None:
        for subscriber in list(self._subscribers):
            try:
                result = subscriber(event)
                if result is not None:
                    await result
            except Exception:
                log.exception("change event subscriber failed for %s", event.kind)
