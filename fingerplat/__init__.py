"""fingerplat: a multi-tenant finger platform (RFC 1288 and friends) over one audited service."""

__version__ = "0.1.0"

# The environment variables users set; here (not in config.py) so that the CLI can
# name them in --help without importing the configuration model.
CONFIG_ENV = "FINGERPLAT_CONFIG"
DATABASE_URL_ENV = "FINGERPLAT_DATABASE_URL"
