"""Admin page handlers, one module per area; ``ROUTE_TABLES`` lists them all."""

from fingerplat.adapters.web.admin.handlers import auth

ROUTE_TABLES = [auth.routes]
