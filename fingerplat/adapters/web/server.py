"""Binding the web application to its listen addresses (HTTP or HTTPS).

``fingerplat serve`` calls :func:`start_web_server`; it returns a
:class:`WebServer` that the runtime closes and drains on SIGTERM like every
other listener.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl

from aiohttp import web
from aiohttp.web_log import AccessLogger

from fingerplat.adapters.net import sockets
from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.adapters.web.app import build_app
from fingerplat.adapters.web.client_address import access_logger_class
from fingerplat.adapters.web.front_door import FrontDoor
from fingerplat.adapters.web.links import PUBLIC_SITE, default_public_url
from fingerplat.adapters.web.request_log import RequestErrorLogger
from fingerplat.adapters.web.templating import reload_templates
from fingerplat.config import Config, WebConfig, format_address
from fingerplat.domain.errors import CannotListen, InvalidInput
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.web")

# How long a graceful shutdown waits for in-flight requests by default.
SHUTDOWN_TIMEOUT = 10.0
# A connection must deliver complete request headers within this many seconds
# of opening (or of its previous answer); aiohttp's keep-alive timer, which also
# bounds a client dripping header bytes (slowloris), so idle sockets cannot pile up.
HEADER_TIMEOUT = 15.0
# Connections waiting to be accepted, per listening socket (aiohttp's sites use 128).
BACKLOG = 1024


def make_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context with modern defaults; bad files are a clear start-up error."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidInput(f"cannot load web TLS certificate/key ({cert}, {key}): {exc}") from None
    return context


class WebServer:
    """The front door on every configured address, with one aiohttp runner behind it."""

    name = "web"

    def __init__(
        self, runner: web.AppRunner, door: FrontDoor, scheme: str,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._runner = runner
        self.door = door
        self._scheme = scheme
        self._ssl_context = ssl_context
        self._closed = False
        self._drained = False

    def reconfigure(self, config: Config) -> None:
        """SIGHUP: re-read the TLS certificate and key, and the template directory.

        Certificates are renewed in place (new handshakes get the new one,
        open connections keep theirs); the files are first loaded into a
        scratch context, so a broken or mismatched pair leaves the running
        certificate untouched. Listen addresses and turning TLS on or off
        need a restart.
        """
        settings = config.web
        if (self._ssl_context is not None) != bool(settings.tls_cert and settings.tls_key):
            log.warning("web: turning TLS on or off needs a restart")
        elif self._ssl_context is not None and settings.tls_cert and settings.tls_key:
            try:
                make_ssl_context(settings.tls_cert, settings.tls_key)
                self._ssl_context.load_cert_chain(settings.tls_cert, settings.tls_key)
                log.info("web: TLS certificate reloaded from %s", settings.tls_cert)
            except (InvalidInput, OSError, ssl.SSLError) as exc:
                log.warning("web: keeping the old TLS certificate: %s", exc)
        try:
            reload_templates(self.app, settings.templates)
        except InvalidInput as exc:
            log.warning("web: keeping the old templates: %s", exc)
        # Connection caps apply to the next connection (trusted proxies and
        # proxy_protocol need a restart, as on every listener).
        self.door.reconfigure(settings, self.door.trusted)

    @property
    def app(self) -> web.Application:
        app = self._runner.app
        assert isinstance(app, web.Application)
        return app

    @property
    def addresses(self) -> list[str]:
        """``http://host:port`` for every bound socket, with the real port."""
        return [f"{self._scheme}://{format_address(host, port)}"
                for host, port in self.door.acceptor.addresses]

    @property
    def url(self) -> str:
        """The first bound address: handy for tests and log lines."""
        return self.addresses[0]

    async def close(self) -> None:
        """Stop accepting connections; requests in flight carry on."""
        if self._closed:
            return
        self._closed = True
        self.door.acceptor.close()

    async def drain(self, timeout: float) -> None:
        """Let in-flight requests finish (bounded), then close every connection."""
        await self.close()
        if self._drained:
            return
        self._drained = True
        self.door.close_idle()
        try:
            await asyncio.wait_for(self._runner.cleanup(), timeout + 1.0)
        except TimeoutError:
            log.warning("web: in-flight requests did not finish within %.1fs", timeout)


async def start_web_server(
    service: FingerplatService, settings: WebConfig, *, metrics: Metrics,
    trusted: TrustedProxies | None = None, prebound: sockets.PreboundSockets | None = None,
) -> WebServer:
    """Build the app and bind every ``[web] listen`` address (port 0: a free port).

    ``prebound`` (``serve --workers``): sockets already made for those
    addresses, shared with the other workers through ``SO_REUSEPORT``.

    Connections are accepted by the accept machinery the finger listener
    uses too (fingerplat/adapters/net/accept.py), with the front door
    (front_door.py) as its door: it answers kept pages on accept and hands
    whatever it does not answer itself to the runner's aiohttp server; the
    runner has no sites of its own, only its request handling and shutdown.
    """
    ssl_context = None
    if settings.tls_cert and settings.tls_key:
        ssl_context = make_ssl_context(settings.tls_cert, settings.tls_key)
    trusted = trusted if trusted is not None else TrustedProxies()
    app = build_app(service, settings, metrics=metrics, trusted=trusted)
    logger_class = access_logger_class(trusted) if trusted else AccessLogger
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=log,
        access_log_class=logger_class,
        keepalive_timeout=HEADER_TIMEOUT,
        # No TCP keep-alive probes (two setsockopt calls per connection): an
        # idle connection is closed by keepalive_timeout long before a probe.
        tcp_keepalive=False,
        logger=RequestErrorLogger(),  # a client's unreadable request: one WARNING line
    )
    await runner.setup()
    aiohttp_server = runner.server
    assert aiohttp_server is not None
    door = FrontDoor(app, aiohttp_server, ssl_context=ssl_context,
                     keepalive_timeout=HEADER_TIMEOUT, metrics=metrics, access_log=log,
                     settings=settings, trusted=trusted)
    try:
        for spec in settings.listen:
            host, port = spec.host_port
            shared = sockets.take(prebound, host, port)  # serve --workers
            try:
                made = [shared] if shared is not None else sockets.listening_sockets(
                    host, port, backlog=BACKLOG)
            except OSError as exc:
                raise CannotListen("web", format_address(host, port), exc.strerror or str(exc),
                                   in_use=exc.errno == errno.EADDRINUSE) from None
            for sock in made:
                door.acceptor.listen(sock)
    except BaseException:
        door.acceptor.close()
        await runner.cleanup()
        raise
    server = WebServer(runner, door, "https" if ssl_context else "http", ssl_context)
    if door.acceptor.listeners:
        app[PUBLIC_SITE].fallback = default_public_url(server.url)  # no [web] public_url
    metrics.connections.labels("web").set_function(lambda: door.open_count)
    return server
