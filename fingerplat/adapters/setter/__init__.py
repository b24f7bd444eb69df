"""The setter adapter: the tutorial's status setter as an audited line protocol (TCP and UNIX)."""
