#!/bin/sh
# Run once by the postgres image when it creates the primary's cluster
# (/docker-entrypoint-initdb.d): let postgres-standby take a base backup and
# stream, and make replication synchronous (a commit is acknowledged only once
# the standby has it). ALTER SYSTEM applies from the server's next start, after
# this initialisation: the image's temporary server, which creates the
# database, would otherwise wait for a standby that cannot exist yet.
set -e
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
    -c "ALTER SYSTEM SET synchronous_standby_names = '*'"
