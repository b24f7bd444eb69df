"""The admin UI under ``/admin/``: server-rendered pages over the service.

The web adapter mounts :func:`build_admin_app` with
``app.add_subapp("/admin/", build_admin_app(service, secure=..., metrics=...))``.
"""

from fingerplat.adapters.web.admin.app import build_admin_app

__all__ = ["build_admin_app"]
