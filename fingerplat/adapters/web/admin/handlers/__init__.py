"""Admin page handlers, one module per area; ``ROUTE_TABLES`` lists them all."""

from fingerplat.adapters.web.admin.handlers import admins, audit, auth, tenants, tokens, users

ROUTE_TABLES = [auth.routes, tenants.routes, users.routes, tokens.routes, audit.routes,
                admins.routes]
