"""The OpenAPI 3 description of the JSON API, served at ``/api/v1/openapi.json``.

Written by hand next to ``api.py`` and kept honest by a test that compares the
documented paths and methods with the routes the application really serves.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fingerplat.domain.rules import PLAN_MAX_BYTES, STATUS_MAX_CHARS


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


TENANT = {
    "name": "tenant", "in": "path", "required": True,
    "description": "Tenant slug",
    "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
}
USER = {
    "name": "user", "in": "path", "required": True,
    "description": "Username (case-insensitive)",
    "schema": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.-]{0,31}$"},
}


def _limit(default: int, maximum: int) -> dict[str, Any]:
    return {"name": "limit", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}}


CURSOR = {"name": "cursor", "in": "query", "required": False,
          "description": "The next_cursor of the previous page", "schema": {"type": "string"}}

COMMON_ERRORS = {
    "403": _error("The client's network is one the tenant rejects, or the tenant gives its "
                  "user list only to trusted networks"),
    "401": _error("An Authorization header was sent but the token is invalid, expired or revoked"),
    "404": _error("No such tenant or user (hidden users do not exist for the public)"),
    "503": _error("The database is unavailable"),
}
WRITE_ERRORS = {
    "400": _error("The body is not valid JSON"),
    "401": _error("No token, or the token is invalid, expired or revoked"),
    "403": _error("The token may not change this user"),
    "404": _error("No such tenant or user"),
    "408": _error("The body did not arrive within 30 seconds"),
    "413": _error("The body is larger than the configured limit"),
    "422": _error("The value breaks a rule (length, single line, control characters)"),
    "503": _error("The database is unavailable"),
}
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
OPTIONAL_BEARER: list[dict[str, list[str]]] = [{}, {"bearerAuth": []}]

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"],
              "properties": {"error": {"type": "string"}}},
    "UserSummary": {
        "type": "object",
        "required": ["username"],
        "description": "Without credentials (or with a token that is neither an admin's of "
                       "the tenant nor the user's own), the fields the tenant does not publish "
                       "are left out (tenant setting public_fields).",
        "properties": {
            "username": {"type": "string"},
            "full_name": {"type": "string"},
            "office": {"type": "string"},
            "phone": {"type": "string"},
            "project": {"type": "string"},
            "status": {"type": ["string", "null"], "maxLength": STATUS_MAX_CHARS},
            "status_set_at": {"type": ["string", "null"], "format": "date-time"},
            "expires_at": {"type": ["string", "null"], "format": "date-time",
                           "description": "When the status expires (RFC 3339); null: never. "
                                          "From then on the status reads as null."},
            "hidden": {"type": "boolean"},
        },
    },
    "User": {"allOf": [_ref("UserSummary"), {
        "type": "object", "required": ["plan"],
        "properties": {"plan": {"type": "string",
                                "description": f"At most {PLAN_MAX_BYTES} bytes"}},
    }]},
    "UserPage": {
        "type": "object", "required": ["tenant", "total", "users", "next_cursor"],
        "properties": {
            "tenant": {"type": "string"},
            "total": {"type": "integer"},
            "users": {"type": "array", "items": _ref("UserSummary")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "StatusChange": {
        "type": "object",
        "properties": {
            "status": {"type": ["string", "null"], "description": "null: the status was cleared"},
            "set_at": {"type": "string", "format": "date-time"},
            "actor": {"type": "string", "description": "only for the tenant's admins and "
                      "the user's own token; absent in public answers"},
            "channel": {"type": "string", "description": "as actor"},
            "expires_at": {"type": ["string", "null"], "format": "date-time",
                           "description": "The expiry this status was given, if any"},
        },
    },
    "History": {
        "type": "object",
        "properties": {"username": {"type": "string"},
                       "history": {"type": "array", "items": _ref("StatusChange")}},
    },
    "Fingered": {  # issue 16: who fingered me
        "type": "object",
        "properties": {
            "username": {"type": "string"},
            "fingered": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "channel": {"type": "string", "enum": [
                        "finger", "web", "api", "xmlrpc", "webfinger", "irc"]},
                    "network": {"type": "string", "description":
                                "The client's IPv4 /24 or IPv6 /48, never its address; "
                                "'unknown' when the channel has none (IRC)"},
                    "count": {"type": "integer", "minimum": 1, "description":
                              "How many lookups this entry stands for: the first at 'at', "
                              "the others through the same channel from the same network "
                              "within about a minute of it (repeats are counted when that "
                              "minute ends)"},
                },
            }},
        },
    },
    "AuditEvent": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "tenant": {"type": ["string", "null"]},
            "actor": {"type": "string"},
            "channel": {"type": "string"},
            "action": {"type": "string"},
            "target": {"type": "string"},
            "outcome": {"type": "string", "enum": ["ok", "denied", "failed"]},
            "before": {"type": ["object", "null"]},
            "after": {"type": ["object", "null"]},
            "remote_addr": {"type": ["string", "null"]},
            "detail": {"type": "string"},
            "tenant_id": {"type": ["integer", "null"],
                          "description": "the tenant's immutable id (null: platform event)"},
            "tenant_removed": {"type": "boolean",
                               "description": "that tenant has been removed since"},
            "hash": {"type": ["string", "null"],
                     "description": "SHA-256 of the event, chained to the previous one"},
        },
    },
    "AuditPage": {
        "type": "object",
        "properties": {"events": {"type": "array", "items": _ref("AuditEvent")},
                       "next_cursor": {"type": ["string", "null"]}},
    },
    "StatusBody": {
        "type": "object", "required": ["status"],
        "properties": {
            "status": {"type": "string", "maxLength": STATUS_MAX_CHARS,
                       "description": "One line, no control characters"},
            "if_status": {"type": ["string", "null"],
                          "description": "Optional compare-and-set: change only if the current "
                                         "status is exactly this (null: no status), else 409"},
            "expires_at": {"type": "string", "format": "date-time",
                           "description": "Optional: the status expires at this RFC 3339 time "
                                          "(in the future, at most 366 days ahead); 400 if not"},
            "expires_in": {"type": "number", "exclusiveMinimum": 0, "maximum": 31622400,
                           "description": "Optional: the status expires this many seconds from "
                                          "now; at most one of expires_at and expires_in"},
        },
    },
    "PlanBody": {
        "type": "object", "required": ["plan"],
        "properties": {"plan": {"type": "string",
                                "description": f"Free text, at most {PLAN_MAX_BYTES} bytes"}},
    },
}

T = "/api/v1/tenants/{tenant}"

PATHS: dict[str, Any] = {
    f"{T}/users": {"get": {
        "operationId": "listUsers",
        "summary": "The tenant's users, by username, in pages",
        "description": "Anonymous callers see visible users, and get 403 when the tenant does "
                       "not publish its list; admins of the tenant also see hidden users.",
        "security": OPTIONAL_BEARER,
        "parameters": [TENANT, _limit(100, 1000), CURSOR,
                       {"name": "q", "in": "query", "required": False,
                        "description": "Search in username and full name",
                        "schema": {"type": "string"}}],
        "responses": {"200": _json(_ref("UserPage"), "A page of users"),
                      "403": _error("The tenant does not publish its user list"),
                      "422": _error("Bad limit or cursor"), **COMMON_ERRORS},
    }},
    f"{T}/users/{{user}}": {"get": {
        "operationId": "getUser",
        "summary": "One user with status and plan",
        "security": OPTIONAL_BEARER,
        "parameters": [TENANT, USER],
        "responses": {"200": _json(_ref("User"), "The user"), **COMMON_ERRORS},
    }},
    f"{T}/users/{{user}}/history": {"get": {
        "operationId": "getHistory",
        "summary": "Recent status changes, newest first",
        "security": OPTIONAL_BEARER,
        "parameters": [TENANT, USER, _limit(20, 100)],
        "responses": {"200": _json(_ref("History"), "The history"),
                      "422": _error("Bad limit"), **COMMON_ERRORS},
    }},
    f"{T}/users/{{user}}/fingered": {"get": {
        "operationId": "getFingered",
        "summary": "Who fingered this user lately, newest first (the user's own token or an "
                   "admin's); recorded only while the tenant and the user opted in",
        "security": BEARER,
        "parameters": [TENANT, USER, _limit(100, 1000)],
        "responses": {
            "200": _json(_ref("Fingered"), "Recent lookups: time, channel, network"),
            "401": _error("No token, or the token is invalid"),
            "403": _error("The token is neither this user's nor an admin's of this tenant"),
            "404": _error("No such tenant or user"),
            "422": _error("Bad limit"),
            "503": _error("The database is unavailable"),
        },
    }},
    f"{T}/users/{{user}}/status": {
        "put": {
            "operationId": "setStatus",
            "summary": "Set the status",
            "security": BEARER,
            "parameters": [TENANT, USER],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("StatusBody")}}},
            "responses": {"200": _json(_ref("User"), "The user after the change"),
                          "409": _error("if_status was given and the status had changed"),
                          **WRITE_ERRORS,
                          "400": _error("The body is not valid JSON, or expires_at/expires_in "
                                        "is not a valid time or duration")},
        },
        "delete": {
            "operationId": "clearStatus",
            "summary": "Clear the status",
            "security": BEARER,
            "parameters": [TENANT, USER],
            "responses": {"200": _json(_ref("User"), "The user after the change"),
                          **{k: v for k, v in WRITE_ERRORS.items()
                             if k not in ("400", "408", "413", "422")}},
        },
    },
    f"{T}/users/{{user}}/plan": {"put": {
        "operationId": "setPlan",
        "summary": "Replace the plan",
        "security": BEARER,
        "parameters": [TENANT, USER],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _ref("PlanBody")}}},
        "responses": {"200": _json(_ref("User"), "The user after the change"), **WRITE_ERRORS},
    }},
    f"{T}/audit": {"get": {
        "operationId": "getAudit",
        "summary": "The tenant's audit log, newest first (tenant or platform admins)",
        "security": BEARER,
        "parameters": [
            TENANT, _limit(50, 1000), CURSOR,
            {"name": "user", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "action", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "e.g. status.set, user.create, auth.token"},
            {"name": "since", "in": "query", "required": False,
             "schema": {"type": "string", "format": "date-time"}},
            {"name": "until", "in": "query", "required": False,
             "schema": {"type": "string", "format": "date-time"}},
        ],
        "responses": {
            "200": _json(_ref("AuditPage"), "A page of audit events"),
            "401": _error("No token, or the token is invalid"),
            "403": _error("The token is not an admin of this tenant"),
            "404": _error("No such tenant"),
            "422": _error("Bad limit, cursor, user or time"),
            "503": _error("The database is unavailable"),
        },
    }},
    "/api/v1/openapi.json": {"get": {
        "operationId": "getOpenAPI",
        "summary": "This document",
        "security": [{}],
        "responses": {"200": {"description": "OpenAPI 3.1 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "fingerplat API",
        "version": "1",
        "description": "Read and set finger statuses and plans. Writes need "
                       "`Authorization: Bearer <token>` (see `fingerplat token create`). "
                       "Errors are JSON objects `{\"error\": \"...\"}`.",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                           "description": "A fingerplat API token"}},
    },
}


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
