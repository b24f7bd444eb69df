"""fingerplat: a multi-tenant finger platform (RFC 1288 and friends) over one audited service."""

__version__ = "0.1.0"
