"""The ``--tenant`` option of the commands and how their messages name the tenant.

Every command that acts in one tenant takes the same option and says the same
words: ``user alice removed in tenant acme``, ``pseudo-user help removed in
tenant acme``; nothing is added when the default tenant was meant.
"""

from __future__ import annotations

import click

tenant_option = click.option("--tenant", "tenant", metavar="T",
                             help="Tenant slug or domain (default: the default tenant).")


def tenant_label(tenant: str | None) -> str:
    """`` in tenant T`` for a message, or nothing when no tenant was named."""
    return f" in tenant {tenant}" if tenant else ""
