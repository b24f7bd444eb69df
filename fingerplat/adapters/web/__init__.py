"""The web adapter: public pages, JSON API, WebFinger, XML-RPC, health and metrics.

Every handler is a thin view over :class:`~fingerplat.service.FingerplatService`:
it parses the request, calls the service with a ``Context`` naming who acts,
and formats the answer. Permission rules and SQL live in the service.
"""
