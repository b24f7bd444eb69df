"""The ``fingerplat`` command line: a click application over the service layer."""
