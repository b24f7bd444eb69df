"""What the listening adapters share about the network, below any protocol.

* :mod:`~fingerplat.adapters.net.proxy_header`: the PROXY protocol v1/v2 header;
* :mod:`~fingerplat.adapters.net.trusted_proxies`: who may speak for a client;
* :mod:`~fingerplat.adapters.net.connections`: counting handlers so shutdown can drain them;
* :mod:`~fingerplat.adapters.net.sockets`: listening sockets made before an adapter
  starts (``serve --workers``);
* :mod:`~fingerplat.adapters.net.accept`: accepting connections ourselves, for the
  listeners that answer on accept (finger, the web front door): caps, PROXY
  headers from trusted proxies, the first read, handover to a protocol;
* :mod:`~fingerplat.adapters.net.waiting`: accepted connections waiting for their
  first bytes.

These lived in ``fingerplat.server``, the composition root, which imports
the adapters: the adapters importing it back made the two packages a
cycle. The composition root now imports them from here, like any adapter.
"""
