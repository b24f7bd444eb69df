#!/usr/bin/env python3
"""The peer fingerplat is measured against: the Twisted tutorial finger server.

This is the server of Twisted's finger tutorial ("The Evolution of Finger",
the ``FingerProtocol``/``FingerFactory`` step with ``getUser`` returning a
Deferred), with its users in a Python dict, as people would run it. The dict
holds the same users ``bench/seed.py`` puts in fingerplat's database
(``bench{:06d}``) and answers of the same shape and size as fingerplat's, so
the two write the same bytes per query.

Twisted is never a dependency of fingerplat: ``bench/run.py`` creates
``bench/.venv-peers`` with Twisted in it and runs this file with that
interpreter. It prints ``finger listening on HOST:PORT`` like
``fingerplat serve`` and stops on SIGTERM/SIGINT (the reactor's handlers).

    bench/.venv-peers/bin/python bench/peers/twisted_finger.py --port 0 --users 100000
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import defer, endpoints, protocol, reactor  # noqa: E402
from twisted.protocols import basic  # noqa: E402


class FingerProtocol(basic.LineReceiver):
    def lineReceived(self, user: bytes) -> None:
        d = self.factory.getUser(user)

        def onError(err: object) -> bytes:
            return b"Internal error in server"

        d.addErrback(onError)

        def writeResponse(message: bytes) -> None:
            self.transport.write(message + b"\r\n")
            self.transport.loseConnection()

        d.addCallback(writeResponse)


class FingerFactory(protocol.ServerFactory):
    protocol = FingerProtocol

    def __init__(self, users: dict[bytes, bytes]) -> None:
        self.users = users

    def getUser(self, user: bytes) -> defer.Deferred[bytes]:
        return defer.succeed(self.users.get(user, b"No such user: " + user))


def bench_users(count: int, pattern: str) -> dict[bytes, bytes]:
    """Answers shaped like fingerplat's for the users bench/seed.py creates."""
    users = {}
    for i in range(count):
        name = pattern.format(i)
        users[name.encode()] = (
            f"Login: {name:<32} Name: Bench User {i}\r\n"
            f"Status: working on item {i} (since 2026-11-21 21:00 UTC)\r\n"
            "No Plan."
        ).encode()
    return users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--pattern", default="bench{:06d}")
    parser.add_argument("--backlog", type=int, default=1024)
    args = parser.parse_args()
    factory = FingerFactory(bench_users(args.users, args.pattern))
    endpoint = endpoints.TCP4ServerEndpoint(reactor, args.port, backlog=args.backlog,
                                            interface=args.host)

    def listening(port: object) -> None:
        address = port.getHost()  # type: ignore[attr-defined]
        print(f"finger listening on {address.host}:{address.port}", flush=True)

    def failed(err: object) -> None:
        print(f"twisted_finger: cannot listen: {err}", file=sys.stderr, flush=True)
        reactor.stop()  # type: ignore[attr-defined]

    endpoint.listen(factory).addCallbacks(listening, failed)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
