"""Sharing change events between nodes on one PostgreSQL database.

Each node's :class:`EventBus` is in-process. The bridge makes the service
send each change's NOTIFY inside the writing transaction (it sets the bus's
:class:`~fingerplat.service.events.TransactionalSender`), so other nodes get
it exactly if and when the change commits, even when this node dies right
after its commit (SPEC 12). An event published without one (a use case that
still announces after its commit) is sent by the bridge after the commit, as
before. Every other node's event is re-published on the local bus with
``remote=True``, so caches and IRC announcements work the same whether a
change was made here or elsewhere. A node's own notifications come back to
it and are dropped by their origin id.

When the LISTEN connection is lost the bridge publishes a ``resync`` event
(``data["reason"] == "lost"``), and another (``"resubscribed"``) once it is
back: notifications sent meanwhile are lost, so every cache must drop
everything, and cache nothing while :attr:`EventBridge.connected` is False.

On SQLite there is one process per database file, and the in-process bus is
all there is (:func:`start_event_bridge` returns None).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from fingerplat.domain.errors import FingerplatError
from fingerplat.domain.model import ChangeEvent
from fingerplat.repository import notify
from fingerplat.repository.uow import translate_db_error
from fingerplat.service.events import EventBus, TransactionalSender, already_notified

log = logging.getLogger(__name__)

CHANNEL = "fingerplat_changes"
PAYLOAD_VERSION = 1


def encode(event: ChangeEvent, origin: str) -> str:
    """JSON for NOTIFY; when too long (a status near 280 wide characters plus
    data), the optional parts go and the receiver still learns what changed."""
    body: dict[str, Any] = {
        "v": PAYLOAD_VERSION,
        "origin": origin,
        "kind": event.kind,
        "tenant_id": event.tenant_id,
        "tenant_slug": event.tenant_slug,
        "username": event.username,
        "status": event.status,
        "data": event.data,
    }
    payload = json.dumps(body, separators=(",", ":"), default=str)
    if len(payload.encode("utf-8")) > notify.MAX_PAYLOAD_BYTES:
        body.update(status=None, data={"truncated": True})
        payload = json.dumps(body, separators=(",", ":"), default=str)
    return payload


def decode(payload: str) -> tuple[str, ChangeEvent] | None:
    """(origin, event), or None for a payload this release does not understand."""
    try:
        body = json.loads(payload)
        if not isinstance(body, dict) or body.get("v") != PAYLOAD_VERSION:
            return None
        data = body.get("data") or {}
        event = ChangeEvent(
            kind=str(body["kind"]),
            tenant_id=body.get("tenant_id"),
            tenant_slug=body.get("tenant_slug"),
            username=body.get("username"),
            status=body.get("status"),
            data=data if isinstance(data, dict) else {},
            remote=True,
        )
        return str(body["origin"]), event
    except (ValueError, KeyError, TypeError):
        return None


class EventBridge:
    """Connects one node's :class:`EventBus` to the PostgreSQL channel."""

    def __init__(self, engine: AsyncEngine, bus: EventBus, *, channel: str = CHANNEL,
                 keepalive: float = 5.0) -> None:
        self.engine = engine
        self.bus = bus
        self.channel = channel
        self.node_id = uuid.uuid4().hex
        self._unsubscribe: Any = None
        self.listener = notify.Listener(
            notify.asyncpg_dsn(engine), channel, self._received, self._subscribed,
            on_lost=self._lost, keepalive=keepalive,
        )

    @property
    def connected(self) -> bool:
        """Whether other nodes' changes reach this node right now.

        A read cache should store nothing while this is False: changes made
        elsewhere meanwhile would never invalidate it.
        """
        return self.listener.subscribed

    async def start(self, *, wait: float = 10.0) -> bool:
        """Listen, and forward local events; True once LISTEN is in place.

        Waits at most ``wait`` seconds; when the database is not there yet the
        listener keeps trying in the background and False is returned.
        """
        self._unsubscribe = self.bus.subscribe(self._forward)
        self.bus.transactional = TransactionalSender(
            self.channel, lambda event: encode(event, self.node_id))
        self.listener.start()
        try:
            await self.listener.wait_subscribed(wait)
        except TimeoutError:
            log.warning("LISTEN %s not in place after %.0fs; still trying", self.channel, wait)
            return False
        return True

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.bus.transactional = None
        await self.listener.stop()

    async def _forward(self, event: ChangeEvent) -> None:
        if event.remote or event.kind == "resync" or already_notified():
            return  # another node's change, this node's own cache flush, or sent already
        try:
            await notify.notify(self.engine, self.channel, encode(event, self.node_id))
        except Exception as error:
            # The change is committed; other nodes' caches may now lag until
            # they resync. Say so loudly rather than fail the writer.
            mapped = translate_db_error(error)
            if mapped is None and not isinstance(error, FingerplatError):
                log.exception("NOTIFY of a %s change failed", event.kind)
            else:
                log.error("NOTIFY of a %s change failed: %s", event.kind, mapped or error)

    async def _received(self, payload: str) -> None:
        decoded = decode(payload)
        if decoded is None:
            log.warning("ignoring a notification this release does not understand")
            return
        origin, event = decoded
        if origin == self.node_id:
            return
        await self.bus.publish(event)

    async def _subscribed(self, resumed: bool) -> None:
        if resumed:
            await self.bus.publish(ChangeEvent("resync", None, data={"reason": "resubscribed"},
                                               remote=True))

    async def _lost(self) -> None:
        # Drop caches now, not only once the connection is back.
        await self.bus.publish(ChangeEvent("resync", None, data={"reason": "lost"}, remote=True))


async def start_event_bridge(engine: AsyncEngine, bus: EventBus) -> EventBridge | None:
    """Start the bridge on PostgreSQL; None on SQLite (one process per file)."""
    if engine.dialect.name != "postgresql":
        return None
    bridge = EventBridge(engine, bus)
    await bridge.start()
    return bridge


def send_to_nodes(engine: AsyncEngine, bus: EventBus) -> Callable[[], None] | None:
    """For one-shot processes (the CLI): NOTIFY this process's changes, listen to nothing.

    A running node caches public reads and learns of changes only through
    events, so a change made by ``fingerplat user set`` must reach it too.
    The service sends the NOTIFY inside each change's transaction (events
    published after a commit are sent then). Returns the function that stops
    it; None on SQLite (nodes there watch the database file instead).
    """
    if engine.dialect.name != "postgresql":
        return None
    origin = uuid.uuid4().hex
    bus.transactional = TransactionalSender(CHANNEL, lambda event: encode(event, origin))

    async def forward(event: ChangeEvent) -> None:
        if event.remote or event.kind == "resync" or already_notified():
            return
        try:
            await notify.notify(engine, CHANNEL, encode(event, origin))
        except Exception as error:
            log.error("NOTIFY of a %s change failed (running nodes may show the old "
                      "value until they resync): %s", event.kind,
                      translate_db_error(error) or error)

    unsubscribe = bus.subscribe(forward)

    def stop() -> None:
        bus.transactional = None
        unsubscribe()

    return stop
