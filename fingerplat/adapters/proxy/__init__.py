"""The finger client and the forwarding proxy (SPEC section 8).

``client`` speaks RFC 1288 to one remote server with timeouts and a size cap;
``forwarder`` is the proxy the finger adapter calls for ``user@remote``
queries, adding the hop limit and the address checks that keep the platform
from being used to reach private networks.
"""
