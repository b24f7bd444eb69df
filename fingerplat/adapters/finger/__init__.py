"""The finger adapter (RFC 1288): query parser, answer renderer and asyncio server."""
