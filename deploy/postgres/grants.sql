-- What the runtime role may do, brought up to date after a schema upgrade.
-- Run as the schema owner (or a superuser), connected to fingerplat's database:
--
--   psql -h DBHOST -U fingerplat_owner -d fingerplat -v ON_ERROR_STOP=1 \
--        -v app=fingerplat_app -f deploy/postgres/grants.sql
--
-- `fingerplat db upgrade --grant-to fingerplat_app` runs the same statements
-- (fingerplat/repository/roles.py); keep the two alike.

\if :{?app}
\else
  \set app fingerplat_app
\endif

GRANT USAGE ON SCHEMA public TO :"app";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app";
-- The schema version is the owner's to change; the service only checks it.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM :"app";
-- The audit trail: append and read, nothing else.
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_events FROM :"app";
