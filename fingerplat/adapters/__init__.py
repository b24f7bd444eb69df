"""Protocol adapters: each parses its protocol, calls the service, and formats the answer."""
