-- fingerplat on PostgreSQL with two roles (run once, as a superuser, with psql):
--
--   psql -h DBHOST -U postgres -v ON_ERROR_STOP=1 \
--        -v owner=fingerplat_owner -v app=fingerplat_app -v db=fingerplat \
--        -v owner_password="$OWNER_PASSWORD" -v app_password="$APP_PASSWORD" \
--        -f deploy/postgres/roles.sql
--
-- * `owner` owns the database, its schema and every table. Only
--   `fingerplat db upgrade` connects as it.
-- * `app` is what `fingerplat serve` and the everyday CLI connect as. It may
--   read and write the application's tables, but may only INSERT and SELECT
--   audit events, and, not being the owner, can neither ALTER the audit table,
--   DROP or DISABLE its triggers, nor TRUNCATE it.
--
-- Every variable has a default (the names above); the passwords are optional
-- (leave them out with peer or certificate authentication). The script is
-- idempotent. After each `fingerplat db upgrade` the grants must be brought up
-- to date: `fingerplat db upgrade --grant-to fingerplat_app` does it, or run
-- deploy/postgres/grants.sql as the owner. See docs/operations.md.

\if :{?owner}
\else
  \set owner fingerplat_owner
\endif
\if :{?app}
\else
  \set app fingerplat_app
\endif
\if :{?db}
\else
  \set db fingerplat
\endif

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION', :'owner')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT',
              :'app')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app') \gexec
\if :{?owner_password}
  ALTER ROLE :"owner" PASSWORD :'owner_password';
\endif
\if :{?app_password}
  ALTER ROLE :"app" PASSWORD :'app_password';
\endif

SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'db', :'owner',
              'UTF8')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"app";

\connect :"db"
-- The owner creates the tables; nobody else creates anything.
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";
-- Tables a later upgrade adds are usable by the service at once; grants.sql
-- (or `db upgrade --grant-to`) then takes back what the audit table must not allow.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"app";
