"""The composition root: builds the service and starts every configured listener."""
